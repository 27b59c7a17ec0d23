"""Discovery says what it passes over, and a glob never turns a file name into a folder (issue 16, item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.errors import UsageError
from photofix.run.jobs import PassedOver, plan_jobs

runner = CliRunner()


def _photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(path)
    return path


def test_a_glob_matching_one_photo_writes_the_named_file(tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "one.png")
    out = tmp_path / "fixed.png"
    done = runner.invoke(app, ["scratch-repair", str(tmp_path / "in" / "o*.png"), str(out), "--model", "classical"])
    assert done.exit_code == 0, done.stderr
    assert out.is_file()  # not a folder called fixed.png/


def test_a_glob_of_several_photos_to_a_file_name_is_refused_before_any_work(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        _photo(tmp_path / "in" / name)
    with pytest.raises(UsageError, match="looks like a file name, but .* holds 2 photos"):
        plan_jobs(str(tmp_path / "in" / "*.png"), str(tmp_path / "fixed.png"))
    done = runner.invoke(app, ["scratch-repair", str(tmp_path / "in"), str(tmp_path / "fixed.png"), "--model", "classical"])
    assert done.exit_code == 2 and not (tmp_path / "fixed.png").exists()
    # a trailing slash says "this is a folder"
    assert len(plan_jobs(str(tmp_path / "in" / "*.png"), str(tmp_path / "fixed.png") + "/")) == 2


def test_what_discovery_passes_over_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    _photo(folder / "a.jpg")
    _photo(folder / "day2" / "b.jpg")
    (folder / "IMG_0001.CR2").write_bytes(b"raw")
    (folder / "IMG_0002.CR2").write_bytes(b"raw")
    (folder / "notes.txt").write_text("x")
    (folder / ".DS_Store").write_bytes(b"")
    (folder / "phone.heic").write_bytes(b"")  # read now, so not counted as passed over
    def passed_over(spec: str, recursive: bool = False) -> PassedOver:
        heard: list[PassedOver] = []
        plan_jobs(spec, str(tmp_path / "out"), recursive=recursive, on_passed_over=heard.append)
        return heard[0]

    skipped = passed_over(str(folder))
    assert skipped.folders == 1 and skipped.by_extension == ((".cr2", 2), (".txt", 1))
    assert skipped.describe() == ("1 sub-folder not searched (add -r); "
                                  "files that are not photos photofix reads: 2 .cr2, 1 .txt")
    recursive = passed_over(str(folder), recursive=True)
    assert recursive.folders == 0 and recursive.describe() == "files that are not photos photofix reads: 2 .cr2, 1 .txt"
    assert passed_over(str(folder / "a.jpg")).describe() is None

def test_a_folder_run_says_what_it_passed_over_and_what_the_output_lost(tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 120, 90  # half-transparent
    folder.mkdir()
    PILImage.fromarray(rgba, "RGBA").save(folder / "logo.png")
    _photo(folder / "day2" / "b.png")
    (folder / "IMG_0001.CR2").write_bytes(b"raw")
    done = runner.invoke(app, ["scratch-repair", str(folder), str(tmp_path / "out"), "--model", "classical",
                               "--format", "jpg", "--json"])
    assert done.exit_code == 0, done.stderr
    assert "passed over 1 sub-folder not searched (add -r); files that are not photos photofix reads: 1 .cr2" in done.stderr
    record = next(r for r in map(json.loads, done.stdout.splitlines()) if "status" in r)
    assert "transparency dropped: JPEG has none" in record["details"]["note"]
