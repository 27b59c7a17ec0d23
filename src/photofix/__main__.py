"""``python -m photofix``."""

from photofix._entry import main

main()
