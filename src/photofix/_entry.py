"""The console script and ``python -m photofix``: interruptible from the first instant.

Importing the CLI (typer, rich) takes a fraction of a second in which ``cli.main`` has not yet
installed its handlers; a SIGTERM there would kill the process by signal (exit 143). This
module imports only the standard library, turns SIGTERM into an interruption at once, and
hands over to ``cli.main``, which installs the full handlers.
"""

from __future__ import annotations

import signal
import sys


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        from photofix.cli.app import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; nothing half-written was left\n")
        sys.exit(130)
    run_cli()
