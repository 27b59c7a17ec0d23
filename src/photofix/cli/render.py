"""Everything a run shows: progress, per-file lines, JSON records, the summary.

Human-readable text goes to stderr so stdout stays clean for ``--json`` records
or image bytes (``OUTPUT`` = ``-``).
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.status import Status
from rich.table import Table

from photofix import settings
from photofix.errors import PhotofixError

if TYPE_CHECKING:
    from photofix.api import FileResult, Job

_STYLE = {"done": "green", "skipped": "yellow", "failed": "bold red", "planned": "cyan"}

# Result details worth showing without -v: the user should know these happened.
_NOTABLE_DETAILS = ("sigma_estimated", "converted_to_grey", "icc_profile_dropped", "classical_fallback", "redone", "preview_failed", "note")


# Characters that would break a line or reorder what the terminal shows: C0/C1 controls (newline,
# escape sequences), line/paragraph separators and the bidirectional overrides.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` on one line, safe for any terminal and valid UTF-8.

    A file name's undecodable bytes (surrogate escapes) show as ``\\xNN``, control characters as
    ``\\n``, ``\\x1b``, ``\\u202e``: names are shown, never obeyed.
    """
    return _UNSAFE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return match.group().encode("unicode_escape").decode("ascii")


def _json_safe(text: Any) -> Any:
    """Strings for ``--json`` must be valid UTF-8: undecodable bytes as ``\\xNN`` (json escapes the rest)."""
    return _SURROGATE.sub(_escape_char, text) if isinstance(text, str) else text


def _notable(details: dict[str, Any]) -> bool:
    """A chain reports ``task.key``: the key after the dot decides."""
    return any(value and key.rpartition(".")[2] in _NOTABLE_DETAILS for key, value in details.items())


def make_console(*, stderr: bool) -> Console:
    """A console that wraps to the terminal, but never to 80 columns when piped or captured."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 200
    return console


class Reporter:
    """Renders a run for a person (rich or plain) or a program (``--json``)."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False, verbose: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.err = make_console(stderr=True)
        self.interactive = self.err.is_terminal and not quiet and not json_mode
        self.results: list[FileResult] = []
        self.started = time.perf_counter()
        self._progress: Progress | None = None
        self._status: Status | None = None
        self._files_task: Any = None
        self._tiles_task: Any = None

    # --- messages ---------------------------------------------------------------

    def info(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            self.err.print(text)
            if self._status is not None:  # "loading X" and the like: what start-up is busy with now
                self._status.update(f"[dim]{escape(printable(text))}[/dim]")

    def detail(self, text: str) -> None:
        if self.verbose and not self.quiet:
            self.err.print(f"[dim]{escape(printable(text))}[/dim]")

    def event(self, kind: str, text: str) -> None:
        """The library's messages (``on_event``): info, note or detail."""
        {"info": self.info, "note": self.note}.get(kind, self.detail)(text)

    def note(self, text: str) -> None:
        """Something the user should know even in --json mode (on stderr)."""
        if not self.quiet:
            self.err.print(f"[yellow]note:[/yellow] {escape(printable(text))}")

    def error(self, text: str) -> None:
        self.stop_waiting()
        self.err.print(f"[bold red]error:[/bold red] {escape(printable(text))}")

    # --- progress ---------------------------------------------------------------

    def waiting(self) -> None:
        """A spinner until the files bar: loading torch and a model takes seconds before any file starts."""
        if self.interactive and self._status is None:
            self._status = self.err.status("[dim]starting: loading the model[/dim]")
            self._status.start()

    def stop_waiting(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def start(self, total_files: int) -> None:
        self.stop_waiting()
        if not self.interactive:
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
        )
        self._progress.start()
        self._files_task = self._progress.add_task("files", total=total_files)

    def file_started(self, job: Job) -> None:
        if self._progress is not None:
            name = job.input.name if job.input else "<stdin>"
            self._progress.update(self._files_task, description=f"files [dim]{escape(printable(name))}[/dim]")
            if self._tiles_task is not None:
                self._progress.remove_task(self._tiles_task)
                self._tiles_task = None

    def tile_done(self, done: int, total: int) -> None:
        if self._progress is None or total <= 1:
            return
        if self._tiles_task is None:
            self._tiles_task = self._progress.add_task("  tiles", total=total)
        self._progress.update(self._tiles_task, completed=done, total=total)

    def result(self, result: FileResult) -> None:
        self.results.append(result)
        if self._progress is not None:
            self._progress.advance(self._files_task)
        if self.json_mode:
            record = {key: _json_safe(value) for key, value in result.to_dict().items()}
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        if result.status == "failed":
            reason = result.reason or "unknown error"
            # library messages already name the file; don't say it twice
            text = reason if reason.startswith(result.input) else f"{result.input}: {reason}"
            self._print(f"[bold red]failed[/bold red]  {escape(printable(text))}", always=True)
            if result.trace and settings.debug():
                self._print_trace(result.trace)
        elif not self.json_mode:
            self._print_result(result)

    def _print_result(self, result: FileResult) -> None:
        style = _STYLE.get(result.status, "")
        arrow = f" → {escape(printable(result.output))}" if result.output else ""
        extra = f" ({result.seconds:.1f}s)" if result.status == "done" else ""
        reason = f" [dim]{escape(printable(result.reason))}[/dim]" if result.reason else ""
        details = ""
        if result.details and (self.verbose or _notable(result.details)):
            details = " [dim]" + escape(printable(", ".join(f"{k}={v}" for k, v in result.details.items()))) + "[/dim]"
        self._print(f"[{style}]{result.status:<7}[/{style}] {escape(printable(result.input))}{arrow}{extra}{reason}{details}")

    def _print_trace(self, trace: str) -> None:
        """PHOTOFIX_DEBUG=1: where a file's failure came from, each line made printable."""
        console = self._progress.console if self._progress is not None else self.err
        for line in trace.rstrip("\n").split("\n"):
            console.print(printable(line), markup=False, highlight=False)

    def _print(self, text: str, *, always: bool = False) -> None:
        if self.quiet and not always:
            return
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            self.err.print(text)

    # --- end ----------------------------------------------------------------------

    def finish(self, *, interrupted: bool = False) -> dict[str, Any]:
        self.stop_waiting()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        counts = Counter(r.status for r in self.results)
        summary = {
            "done": counts["done"],
            "skipped": counts["skipped"],
            "failed": counts["failed"],
            "planned": counts["planned"],
            "seconds": round(time.perf_counter() - self.started, 3),
            "interrupted": interrupted,
        }
        if self.json_mode:
            sys.stdout.write(json.dumps({"summary": summary}) + "\n")
            sys.stdout.flush()
        elif not self.quiet and len(self.results) > 1 or interrupted:
            self._summary_table(summary)
        return summary

    def _summary_table(self, summary: dict[str, Any]) -> None:
        if self.quiet:
            return
        table = Table(title="interrupted" if summary["interrupted"] else None, show_edge=False)
        for column in ("done", "skipped", "failed", "planned", "time"):
            table.add_column(column, justify="right")
        table.add_row(
            f"[green]{summary['done']}[/green]",
            f"[yellow]{summary['skipped']}[/yellow]",
            f"[red]{summary['failed']}[/red]" if summary["failed"] else "0",
            str(summary["planned"]),
            f"{summary['seconds']:.1f}s",
        )
        self.err.print(table)


@contextmanager
def reported_errors(reporter: Reporter) -> Iterator[None]:
    """Turn photofix errors into one line and their exit code; keep tracebacks for PHOTOFIX_DEBUG=1."""
    try:
        yield
    except PhotofixError as error:
        if settings.debug():
            traceback.print_exc()
        reporter.error(str(error))
        raise typer.Exit(error.exit_code) from None
