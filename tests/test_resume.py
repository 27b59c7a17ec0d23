"""Resume by record: a run killed mid-folder (SIGINT to a real process) and run again makes
every output exactly once; a changed parameter or input redoes only what it touches."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.run.provenance import RunLog
from tests.helpers import add_noise

runner = CliRunner()
COUNT = 30


@pytest.fixture
def library(tmp_path: Path, astronaut: np.ndarray) -> Path:
    folder = tmp_path / "library"
    (folder / "2019").mkdir(parents=True)
    for i in range(COUNT):
        sub = folder / "2019" if i % 3 == 0 else folder
        PILImage.fromarray(add_noise(astronaut[i * 8 : i * 8 + 128, 100:228], 10, seed=i)).save(sub / f"p{i:02d}.png")
    return folder


def _command(library: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["denoise", str(library), str(out), "-r", "--weights", str(weights), "--sigma", "10", "--tile", "0", *extra]


def _statuses(result) -> dict[str, str]:
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {Path(r["output"]).name: r["status"] for r in lines if "status" in r}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_killed_run_resumes_where_it_stopped(library: Path, tmp_path: Path, ffdnet_weights, jobs: str) -> None:
    out = tmp_path / "out"
    args = _command(library, out, ffdnet_weights["rgb"], "--jobs", jobs)
    proc = subprocess.Popen([sys.executable, "-m", "photofix", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.rglob("p*.png"))) < 4:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command to resume" in stderr

    first = sorted(p.relative_to(out) for p in out.rglob("p*.png"))
    assert 4 <= len(first) < COUNT, "the run should have been stopped part-way"
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") and p.name != ".photofix" and ".photofix" not in p.parts]
    assert leftovers == []  # no temp file of the file that was being written
    for path in out.rglob("p*.png"):
        PILImage.open(path).load()  # every output there is whole

    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.stderr
    statuses = _statuses(again)
    assert sorted(n for n, s in statuses.items() if s == "skipped") == sorted(p.name for p in first)
    assert sorted(n for n, s in statuses.items() if s == "done") == sorted(
        f"p{i:02d}.png" for i in range(COUNT) if Path(("2019/" if i % 3 == 0 else "") + f"p{i:02d}.png") not in first
    )
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("p*.png"))
    assert outputs == sorted(("2019/" if i % 3 == 0 else "") + f"p{i:02d}.png" for i in range(COUNT))  # each exactly once

    log_lines = (out / ".photofix" / "runs.jsonl").read_text().splitlines()
    logged = [json.loads(line)["output"] for line in log_lines if line.strip().endswith("}")]
    assert sorted(set(logged)) == outputs
    assert len(logged) == COUNT  # nothing was made twice, and every output is in the log


def test_changed_settings_or_input_redo_only_what_they_touch(library: Path, tmp_path: Path, ffdnet_weights) -> None:
    out = tmp_path / "out"
    weights = ffdnet_weights["rgb"]
    assert runner.invoke(app, _command(library, out, weights, "--include", "p0*")).exit_code == 0
    made = {p.name: p.stat().st_mtime_ns for p in out.rglob("p0*.png")}
    assert len(made) == 10

    # A touched input with the same content is still up to date: content, not mtime or name, decides.
    (library / "p01.png").touch()
    same = runner.invoke(app, [*_command(library, out, weights, "--include", "p0*"), "--json"])
    assert set(_statuses(same).values()) == {"skipped"}

    # New content for one input: only its output is redone, and says why.
    PILImage.fromarray(np.zeros((128, 128, 3), np.uint8)).save(library / "p01.png")
    changed = runner.invoke(app, [*_command(library, out, weights, "--include", "p0*"), "--json"])
    records = [json.loads(line) for line in changed.stdout.splitlines() if '"status"' in line]
    redone = [r for r in records if r["status"] == "done"]
    assert [Path(r["output"]).name for r in redone] == ["p01.png"] and redone[0]["details"]["redone"] == "input changed"

    # A changed parameter redoes every output it covers.
    sigma = runner.invoke(app, [*_command(library, out, weights, "--include", "p0*"), "--sigma", "12", "--json"])
    assert set(_statuses(sigma).values()) == {"done"} and "settings changed" in sigma.stdout

    # A file photofix did not make is kept unless --force.
    foreign = out / "p10.png"
    foreign.write_bytes((library / "p10.png").read_bytes())
    kept = runner.invoke(app, [*_command(library, out, weights, "--include", "p10*"), "--json"])
    assert _statuses(kept) == {"p10.png": "skipped"} and "no record" in kept.stdout
    assert foreign.read_bytes() == (library / "p10.png").read_bytes()
    forced = runner.invoke(app, [*_command(library, out, weights, "--include", "p10*"), "--force", "--json"])
    assert _statuses(forced) == {"p10.png": "done"}

    # Without the run log the record in each output's XMP still says it is up to date.
    (out / ".photofix" / "runs.jsonl").unlink()
    from_xmp = runner.invoke(app, [*_command(library, out, weights, "--include", "p0*"), "--sigma", "12", "--json"])
    assert set(_statuses(from_xmp).values()) == {"skipped"}
    assert RunLog(out).record_for(out / "2019" / "p00.png") is not None


def test_dry_run_reports_what_would_be_redone(library: Path, tmp_path: Path, ffdnet_weights) -> None:
    out = tmp_path / "out"
    weights = ffdnet_weights["rgb"]
    assert runner.invoke(app, _command(library, out, weights, "--include", "p1*")).exit_code == 0
    planned = runner.invoke(app, [*_command(library, out, weights, "--include", "p1*"), "--sigma", "5", "--dry-run", "--json"])
    records = [json.loads(line) for line in planned.stdout.splitlines() if '"status"' in line]
    assert {r["status"] for r in records} == {"planned"} and {r["reason"] for r in records} == {"settings changed"}
