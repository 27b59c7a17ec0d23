"""The command-line interface: the only place that imports typer and rich."""

from __future__ import annotations

from photofix.cli.app import app, main

__all__ = ["app", "main"]
