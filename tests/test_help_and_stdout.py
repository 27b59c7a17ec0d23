"""--help reads cleanly and image bytes never go to a terminal (issue 16, items 9 and 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.tasks import TASKS

runner = CliRunner()


def test_task_help_has_no_type_tags_no_odd_aliases_and_one_summary() -> None:
    for name, spec in TASKS.items():
        shown = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        text = shown.output
        assert "<bool>" not in text and "<str>" not in text, name
        assert "--force,--overwrite" not in text and "--force" in text
        first_line = spec.description.strip().splitlines()[0]
        assert text.count(first_line) == 1, name  # the description's own first line, once
        if spec.summary.split(".")[0] != first_line.split(".")[0]:
            assert spec.summary not in text  # the listing's wording is not repeated under it
    listing = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert all(spec.summary.split(".")[0] in listing for spec in TASKS.values())
    assert "NUMBER [0.0<=x<=255.0]" in runner.invoke(app, ["denoise", "--help"], env={"COLUMNS": "200"}).output


def test_image_bytes_are_refused_on_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    PILImage.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(source)
    main, terminal = os.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "photofix", "scratch-repair", str(source), "-", "--model", "classical"],
                              stdout=terminal, stderr=subprocess.PIPE, text=True, timeout=300,
                              env={**os.environ, "PHOTOFIX_HOME": str(tmp_path / "home")})
    finally:
        os.close(terminal)
        os.close(main)
    assert done.returncode == 2
    assert "stdout, which is a terminal" in done.stderr
    piped = subprocess.run([sys.executable, "-m", "photofix", "scratch-repair", str(source), "-", "--model", "classical"],
                           capture_output=True, timeout=300, env={**os.environ, "PHOTOFIX_HOME": str(tmp_path / "home")})
    assert piped.returncode == 0 and piped.stdout.startswith(b"\x89PNG")  # a pipe still gets the image


def test_help_paragraphs_wrap_at_the_terminal_not_where_the_source_broke_its_lines() -> None:
    import re

    import typer

    from photofix.cli.options import flowed

    assert flowed("""First line.

        A paragraph wrapped
        in the source.

        Examples: a   ·   b""") == "First line.\n\nA paragraph wrapped in the source.\n\nExamples: a   ·   b"
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    shown_commands = [commands[name] for name in TASKS] + list(commands["models"].commands.values())
    for command in shown_commands:
        assert command.help, command.name
        assert re.search(r"(?<!\n)\n(?!\n)", command.help) is None, command.name  # only blank lines between paragraphs
    # at 80 columns a sentence the source split across lines reads on one screen line
    shown = runner.invoke(app, ["scratch-repair", "--help"], env={"COLUMNS": "80"}).output
    assert "downloads about 660 MB once" in " ".join(shown.split())
    assert not any(line.rstrip().endswith("downloads") for line in shown.splitlines())
