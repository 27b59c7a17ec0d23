"""``python -m photofix``."""

from photofix.cli import main

main()
