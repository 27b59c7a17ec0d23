"""Looking at results: side-by-side comparisons and the HTML contact sheet."""
