"""The run log survives damage: unreadable lines are skipped with one warning, a full disk
never leaves a torn line (and never fails an output that was written), and file names
that are not UTF-8 round-trip."""

from __future__ import annotations

import errno
import json
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix import imageio
from photofix.run.batch import FileOptions, run_jobs
from photofix.cli import app
from photofix.errors import OutputWriteError
from photofix.run.jobs import DONE, Job
from photofix.run.provenance import Recipe, Record, RunLog, Step, new_record, record_from_xmp, with_record

RECIPE = Recipe((Step("denoise", "classical", None, {"sigma": 5.0}),))
runner = CliRunner()


def _good(output: str = "a.png", input_sha: str = "11" * 32) -> Record:
    record = new_record("in/a.png", input_sha, output, RECIPE, {"sigma": 5.0})
    record.output_sha256, record.seconds = "22" * 32, 0.5
    return record


def _line(record: Record | dict[str, Any]) -> bytes:
    data = asdict(record) if isinstance(record, Record) else record
    return json.dumps(data, sort_keys=True).encode() + b"\n"


def _write_log(root: Path, content: bytes) -> Path:
    path = root / ".photofix" / "runs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# --- reading a damaged log -----------------------------------------------------------------


def test_unreadable_lines_are_skipped_with_one_warning(tmp_path: Path) -> None:
    listed_output = {**asdict(_good("b.png")), "output": ["b.png"]}
    path = _write_log(tmp_path, b"".join([
        _line(_good("a.png")),
        b'{"input": "caf\xe9.png", "output": "x.png"}\n',  # Latin-1 bytes, not UTF-8
        _line(listed_output),  # a list where the output's name belongs
        b"null\n",
        b"\n",  # blank lines are not damage
        _line(_good("c.png")),
        b'{"input": "in/d.png", "inp',  # torn last line, no newline
    ]))
    log = RunLog(tmp_path)
    assert sorted(log.records()) == ["a.png", "c.png"]
    assert log.warnings == [f"{path}: 4 unreadable lines skipped"]
    log.records()
    assert len(log.warnings) == 1  # once per run, not once per look-up


_NOT_STR = [None, True, 0, -1, 10**30, 1.5e308, [], ["a.png"], {}, {"a.png": 1}, [[[[]]]]]
# For each field of a record, values of the wrong type for it.
_WRONG = {
    "input": _NOT_STR, "input_sha256": _NOT_STR, "output": _NOT_STR, "recipe": _NOT_STR,
    "version": _NOT_STR, "created": _NOT_STR, "output_sha256": _NOT_STR[1:],
    "seconds": [True, "0.5", [], {}, ["a.png"], [[[[]]]]],
    "steps": [None, True, 0, "denoise", {}, {"task": "denoise"}, [None], ["denoise"], [[]],
              [{"task": 1, "model": "m"}], [{"task": "t", "model": None}], [{"task": "t", "model": "m", "params": []}],
              [{"task": "t", "model": "m", "weights_sha256": 12}]],
    "details": [None, True, 0, "x", [], ["a.png"]],
}


def test_fuzzed_log_never_raises(tmp_path: Path) -> None:
    rng = random.Random(17)
    good = [_good(f"good{i}.png") for i in range(5)]
    lines: list[bytes] = [_line(r) for r in good]
    for _ in range(150):  # random bytes, newlines excluded so each is one line
        lines.append(bytes(rng.choice([b for b in range(256) if b != 10]) for _ in range(rng.randint(1, 80))) + b"\n")
    for name, values in _WRONG.items():
        assert name in asdict(good[0])
        for value in values:
            lines.append(_line({**asdict(good[0]), "output": f"wrong-{name}.png", name: value}))
    for name in ("input", "input_sha256", "output", "recipe", "steps"):  # a required field missing
        lines.append(_line({k: v for k, v in {**asdict(good[0]), "output": f"wrong-{name}.png"}.items() if k != name}))
    lines += [
        b"[" * 100_000 + b"\n",  # nesting deeper than the JSON parser's recursion
        b'{"seconds": ' + b"9" * 5000 + b"}\n",  # an integer too long to convert
        b"1e999\n", b'"just a string"\n', b"[1, 2, 3]\n", b"\xef\xbb\xbf{}\n", b"\xff\xfe\x00\n",
    ]
    lines.append(_line({**asdict(good[0]), "output": "huge.png", "seconds": 1e999, "details": {"n": 10**40}}))
    rng.shuffle(lines)
    _write_log(tmp_path, b"".join(lines) + b'{"torn": tr')
    expected = sum(1 for line in lines if line.strip()) - len(good) - 1 + 1  # all but the valid ones, plus the torn tail

    log = RunLog(tmp_path)
    records = log.records()
    assert sorted(records) == sorted([r.output for r in good] + ["huge.png"])
    assert log.warnings == [f"{log.path}: {expected} unreadable lines skipped"]
    output = tmp_path / "good0.png"
    output.write_bytes(b"not what was logged")
    assert log.record_for(output) is None  # the records read are safe to use


def test_a_log_that_cannot_be_read_at_all_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / ".photofix" / "runs.jsonl").mkdir(parents=True)  # a folder where the log belongs
    log = RunLog(tmp_path)
    assert log.records() == {}
    assert len(log.warnings) == 1 and "runs.jsonl" in log.warnings[0]


# --- writing when the disk is full --------------------------------------------------------


def _log_fd(log: RunLog, fd: int) -> bool:
    return log.path.exists() and os.path.samestat(os.fstat(fd), os.stat(log.path))


def test_short_writes_are_continued_until_the_line_is_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RunLog(tmp_path)
    real_write = os.write
    calls = []

    def short_write(fd: int, data: bytes) -> int:
        if _log_fd(log, fd):
            calls.append(len(data))
            return real_write(fd, bytes(data[:7]))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", short_write)
    log.append(_good("a.png"))
    log.append(_good("b.png"))
    monkeypatch.undo()
    assert len(calls) > 2
    assert log.path.read_bytes() == _line(_good("a.png")) + _line(_good("b.png"))


@pytest.mark.parametrize("failure", ["raises", "writes nothing"])
def test_disk_full_leaves_the_log_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    log = RunLog(tmp_path)
    log.append(_good("a.png"))
    before = log.path.read_bytes()
    real_write = os.write
    calls = []

    def full_disk(fd: int, data: bytes) -> int:
        if not _log_fd(log, fd):
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # part of the line fits
        if failure == "writes nothing":
            return 0
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OutputWriteError, match="runs.jsonl"):
        log.append(_good("b.png"))
    monkeypatch.undo()
    assert log.path.read_bytes() == before  # no fragment left to glue the next record onto
    log.append(_good("c.png"))
    assert sorted(RunLog(tmp_path).records()) == ["a.png", "c.png"]


def test_an_append_after_a_torn_line_starts_on_a_fresh_line(tmp_path: Path) -> None:
    path = _write_log(tmp_path, _line(_good("a.png")) + b'{"input": "in/b.png", "outp')
    RunLog(tmp_path).append(_good("c.png"))
    fresh = RunLog(tmp_path)
    assert sorted(fresh.records()) == ["a.png", "c.png"]
    assert fresh.warnings == [f"{path}: 1 unreadable line skipped"]


class _Same:
    label = "same"

    def restore(self, image: imageio.Image, on_tile: Any = None) -> tuple[imageio.Image, dict[str, Any]]:
        return image, {}


def _png(path: Path, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path)


def test_an_output_whose_log_line_failed_is_done_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    _png(source / "a.png")
    log = RunLog(out)
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if _log_fd(log, fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    [result] = run_jobs([Job(source / "a.png", out / "a.png")], _Same, FileOptions(history=log, recipe=RECIPE))
    monkeypatch.undo()
    assert result.status == DONE, result.reason
    assert "written, but the run log could not be updated" in result.reason and "No space left" in result.reason
    PILImage.open(out / "a.png").load()
    assert log.path.read_bytes() == b""
    # The XMP record carries it: the next run skips the file and logs it then.
    [again] = run_jobs([Job(source / "a.png", out / "a.png")], _Same, FileOptions(history=RunLog(out), recipe=RECIPE))
    assert again.status == "skipped" and sorted(RunLog(out).records()) == ["a.png"]


# --- file names that are not UTF-8 ----------------------------------------------------------


def test_a_non_utf8_file_name_round_trips_through_xmp_and_log(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.png")  # what Linux hands over for a Latin-1 name
    record = new_record(f"in/{name}", "11" * 32, name, RECIPE, {})
    xmp = with_record(None, record)
    assert record_from_xmp(xmp)["Input"] == "caf\\xe9.png"  # shown escaped, the packet stays UTF-8
    log = RunLog(tmp_path)
    log.append(record)
    assert log.path.read_bytes().isascii()
    assert RunLog(tmp_path).records()[name].input == f"in/{name}"


def test_a_folder_run_over_a_non_utf8_file_name_logs_it(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    try:
        raw = source / os.fsdecode(b"caf\xe9.png")
        _png(raw)
    except (UnicodeError, OSError):
        pytest.skip("this file system does not take non-UTF-8 names")
    log = RunLog(out)
    [result] = run_jobs([Job(raw, out / raw.name)], _Same, FileOptions(history=log, recipe=RECIPE))
    assert result.status == DONE, result.reason
    assert RunLog(out).records()[raw.name].input == str(raw)
    [again] = run_jobs([Job(raw, out / raw.name)], _Same, FileOptions(history=RunLog(out), recipe=RECIPE))
    assert again.status == "skipped"


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_warns_once_about_a_damaged_log_and_carries_on(tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for i in range(2):
        _png(source / f"p{i}.png", seed=i)
    log_path = _write_log(out, b'\xff\xfe{"not": utf8}\n{"output": ["p0.png"], "input": 1}\n{"torn')
    result = runner.invoke(app, ["scratch-repair", str(source), str(out), "--model", "classical"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("unreadable lines skipped") == 1, result.stderr
    assert f"{log_path}: 3 unreadable lines skipped" in " ".join(result.stderr.split())
    assert sorted(RunLog(out).records()) == ["p0.png", "p1.png"]
    again = runner.invoke(app, ["scratch-repair", str(source), str(out), "--model", "classical", "--json"])
    assert again.exit_code == 0 and [json.loads(line)["status"] for line in again.stdout.splitlines()[:2]] == ["skipped"] * 2
    assert again.stderr.count("unreadable lines skipped") == 1  # still damaged, still said once


def test_cli_shows_that_the_log_could_not_be_updated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    _png(source / "p0.png")
    log_path = out / ".photofix" / "runs.jsonl"
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if log_path.exists() and os.path.samestat(os.fstat(fd), os.stat(log_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    result = runner.invoke(app, ["scratch-repair", str(source), str(out), "--model", "classical"])
    monkeypatch.undo()
    assert result.exit_code == 0, result.stderr
    assert "done" in result.stderr and "run log could not be updated" in result.stderr, result.stderr

