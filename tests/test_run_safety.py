"""A run never destroys a photo and never dies of one odd name or signal (issue 17).

Outputs that collide, OUTPUT inside the input tree, outputs that are other inputs, looping
links, temp files of a killed run, file names that are not UTF-8 or hold control characters,
SIGTERM while loading, a second Ctrl-C while stopping, tracebacks with PHOTOFIX_DEBUG and an
output folder that cannot be written. Models are random-initialised FFDNet files (no
download); where a run must stop before any file, the weights file is bogus, so loading it
would end the run with exit code 3 instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from tests.helpers import kair_ffdnet_state_dict

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def save_photo(path: Path, seed: int = 0, size: int = 32) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path)
    return path.read_bytes()


def lines_with(text: str, stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if text in line]


def failed_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("failed")]


def hidden_leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name != ".photofix" and ".photofix" not in p.parts]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "ffdnet_random.pth"
    torch.save(kair_ffdnet_state_dict(), path)
    return path


@pytest.fixture
def bogus(tmp_path: Path) -> Path:
    path = tmp_path / "bogus.pth"
    path.write_bytes(b"not weights")  # exit code 3 if anything loads it
    return path


def run_args(weights: Path) -> list[object]:
    return ["--weights", weights, "--sigma", "10", "--tile", "0"]


# --- 5: two inputs, one output ----------------------------------------------------------------


def test_two_inputs_mapped_to_one_output_are_refused(tmp_path: Path, bogus: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "a.png")
    PILImage.open(folder / "a.png").save(folder / "a.jpg")
    out = tmp_path / "out"

    result = invoke("denoise", folder, out, "--format", "png", *run_args(bogus))

    assert result.exit_code == 2, result.stderr
    errors = lines_with("error", result.stderr)
    assert len(errors) == 1
    assert str(folder / "a.jpg") in errors[0] and str(folder / "a.png") in errors[0] and str(out / "a.png") in errors[0]
    assert "--format" in errors[0]
    assert not out.exists()


# --- 6: OUTPUT inside the input tree, outputs that are inputs ----------------------------------


def test_output_folder_inside_the_input_tree_is_refused_with_r(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "a.png", seed=1)
    original = save_photo(folder / "sub" / "a.png", seed=2)  # a photo, not an earlier output

    result = invoke("denoise", "-r", folder, folder / "sub", "--force", *run_args(weights))

    assert result.exit_code == 2, result.stderr
    errors = lines_with("error", result.stderr)
    assert len(errors) == 1 and "inside the input folder" in errors[0] and "--suffix" in errors[0]
    assert (folder / "sub" / "a.png").read_bytes() == original
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == ["a.png", "sub/a.png"]


def test_output_folder_inside_the_input_tree_with_suffix_keeps_its_photos_as_inputs(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "a.png", seed=1)
    save_photo(folder / "sub" / "b.png", seed=2)

    first = invoke("denoise", "-r", folder, folder / "sub", "--suffix", "_x", "--json", *run_args(weights))

    assert first.exit_code == 0, first.stderr
    done = sorted(json.loads(line)["input"] for line in first.stdout.splitlines() if '"status"' in line)
    assert done == [str(folder / "a.png"), str(folder / "sub" / "b.png")]  # sub/b.png is not skipped silently
    assert (folder / "sub" / "a_x.png").is_file() and (folder / "sub" / "sub" / "b_x.png").is_file()

    again = invoke("denoise", "-r", folder, folder / "sub", "--suffix", "_x", "--json", *run_args(weights))

    assert again.exit_code == 0, again.stderr
    records = [json.loads(line) for line in again.stdout.splitlines() if '"status"' in line]
    assert sorted(r["input"] for r in records) == done  # its own outputs are not taken for photos
    assert {r["status"] for r in records} == {"skipped"}
    assert not list(folder.rglob("*_x_x*"))


def test_an_output_that_is_another_input_fails_alone(tmp_path: Path, weights: Path) -> None:
    base = tmp_path / "photos"
    original = save_photo(base / "2019" / "x.png", seed=1)
    save_photo(base / "2019" / "2019" / "x.png", seed=2)  # maps to 2019/x.png, an input, and sorts first

    result = invoke("denoise", "-r", base / "2019", base, "--force", *run_args(weights))

    assert result.exit_code == 1, result.stderr
    failed = failed_lines(result.stderr)
    assert len(failed) == 1
    assert str(base / "2019" / "2019" / "x.png") in failed[0] and "overwrite" in failed[0]
    assert str(base / "2019" / "x.png") in failed[0]
    assert (base / "2019" / "x.png").read_bytes() == original
    assert (base / "x.png").is_file()  # the other input was done


# --- 7: a looping link -------------------------------------------------------------------------


def test_a_looping_symlink_fails_alone(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "good.png")
    (folder / "loop.png").symlink_to("loop.png")
    out = tmp_path / "out"

    result = invoke("denoise", folder, out, *run_args(weights))

    assert result.exit_code == 1, result.stderr
    failed = failed_lines(result.stderr)
    assert len(failed) == 1 and "loop.png" in failed[0]
    assert (out / "good.png").is_file()


# --- 11: temp files of a killed run --------------------------------------------------------------


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    hour_ago = time.time() - 3600
    stale = [out / ".a.png.0123abcd.tmp", out / ".a.preview.jpg.89abcdef.tmp"]
    kept = [
        out / ".a.png.fedcba98.tmp",  # recent: a photofix running now may be writing it
        out / ".other.png.0123abcd.tmp",  # not an output of this run
        out / ".a.png.0123abcd.tmp.keep",  # not photofix's naming
        out / ".a.png.0123ABCD.tmp",
    ]
    for path in stale + kept:
        path.write_bytes(b"half an image")
        if path != kept[0]:
            os.utime(path, (hour_ago, hour_ago))

    result = invoke("denoise", folder, out, *run_args(weights))

    assert result.exit_code == 0, result.stderr
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert (out / "a.png").is_file()


# --- 12: names, signals, debug, unwritable folders ---------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as a name")
def test_a_file_name_that_is_not_utf8_is_processed_and_shown_safely(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "plain.png", seed=1)
    save_photo(folder / os.fsdecode(b"caf\xe9.png"), seed=2)
    out = tmp_path / "out"

    result = invoke("denoise", folder, out, *run_args(weights))

    assert result.exit_code == 0, result.stderr
    assert os.path.isfile(os.path.join(os.fsencode(out), b"caf\xe9.png"))
    assert len(lines_with("caf\\xe9.png", result.stderr)) == 1

    again = invoke("denoise", folder, out, "--json", *run_args(weights))

    assert again.exit_code == 0, again.stderr
    again.stdout.encode("utf-8")  # valid UTF-8, no lone surrogates
    assert "\\udc" not in again.stdout
    records = {Path(r["input"]).name: r for r in map(json.loads, again.stdout.splitlines()) if "status" in r}
    assert records["caf\\xe9.png"]["status"] == "skipped"  # its record was written: the re-run resumes
    for line in (out / ".photofix" / "runs.jsonl").read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        json.loads(line)


def test_control_characters_in_a_file_name_stay_on_one_line(tmp_path: Path, bogus: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "new\nline.png", seed=1)
    save_photo(folder / "\x1b[31mred.png", seed=2)

    result = invoke("denoise", folder, tmp_path / "out", "--dry-run", *run_args(bogus))

    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len([line for line in lines if line.startswith("planned")]) == 2
    assert len(lines_with("new\\nline.png", result.stderr)) == 1
    assert len(lines_with("\\x1b[31mred.png", result.stderr)) == 1
    assert "\x1b" not in result.stderr and not any(line.startswith("line.png") for line in lines)


@pytest.mark.parametrize(
    "module, launch",
    [
        # while torch loads, inside cli.main
        ("torch", "from photofix.cli import main\nmain()"),
        # before cli.main runs at all: the console script's entry guards the import of typer and rich
        ("typer", "import runpy\nrunpy.run_module('photofix', run_name='__main__')"),
    ],
)
def test_sigterm_while_loading_exits_130_cleanly(tmp_path: Path, weights: Path, module: str, launch: str) -> None:
    save_photo(tmp_path / "a.png")
    out = tmp_path / "out.png"
    args = ["denoise", str(tmp_path / "a.png"), str(out), *map(str, run_args(weights))]
    # The child sends itself SIGTERM as the module starts to load: right after start, every time.
    child = f"""
import os, signal, sys
class SigtermAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGTERM)
        return None
sys.meta_path.insert(0, SigtermAtImport())
sys.argv = ["photofix", *{args!r}]
{launch}
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)

    assert done.returncode == 130, (done.returncode, done.stderr)
    assert len(lines_with("interrupted", done.stderr)) == 1 and "Traceback" not in done.stderr
    assert not out.exists()


def test_a_second_ctrl_c_while_stopping_still_exits_130_cleanly(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "many"
    for i in range(30):
        save_photo(folder / f"p{i:02d}.png", seed=i, size=192)
    out = tmp_path / "out"
    args = ["denoise", str(folder), str(out), *map(str, run_args(weights)), "--jobs", "2"]
    # The first Ctrl-C comes from here, mid-folder. The second is sent by the process itself from
    # its last exit hook: while it is stopping, every time (from outside it could come too late).
    child = f"""
import atexit, os, signal, sys, time
def second_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
atexit.register(second_ctrl_c)
sys.argv = ["photofix", *{args!r}]
from photofix.cli import main
main()
"""
    proc = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("p*.png"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    errors = lines_with("error:", stderr)
    assert len(errors) == 1 and "interrupted" in errors[0]
    written = sorted(out.glob("p*.png"))
    assert 2 <= len(written) < 30
    assert hidden_leftovers(out) == []
    for path in written:
        PILImage.open(path).load()


def test_debug_shows_the_traceback_of_a_failed_file(tmp_path: Path, bogus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.png").write_text("this is a text file")
    out = tmp_path / "out"

    monkeypatch.delenv("PHOTOFIX_DEBUG", raising=False)
    quiet = invoke("denoise", folder, out, *run_args(bogus))
    monkeypatch.setenv("PHOTOFIX_DEBUG", "1")
    debug = invoke("denoise", folder, out, *run_args(bogus))

    assert quiet.exit_code == debug.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback (most recent call last)" in debug.stderr and "UnsupportedImage" in debug.stderr
    assert len(failed_lines(debug.stderr)) == 1


def test_an_output_folder_under_a_file_is_refused_before_the_first_file(tmp_path: Path, bogus: Path) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "a.png", seed=1)
    save_photo(folder / "b.png", seed=2)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")

    result = invoke("denoise", folder, blocker / "out", *run_args(bogus))

    assert result.exit_code == 2, result.stderr
    errors = lines_with("error", result.stderr)
    assert len(errors) == 1 and str(blocker) in errors[0] and "not a folder" in errors[0]
    assert not failed_lines(result.stderr)


def test_a_read_only_output_folder_is_refused_before_the_first_file(
    tmp_path: Path, bogus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    save_photo(folder / "a.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the folder read-only the way access(2) sees it
        real_access = os.access

        def access(path, mode, **kwargs):
            if Path(path) == out and mode & os.W_OK:
                return False
            return real_access(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)
    try:
        result = invoke("denoise", folder, out, *run_args(bogus))
    finally:
        out.chmod(0o755)

    assert result.exit_code == 2, result.stderr
    errors = lines_with("error", result.stderr)
    assert len(errors) == 1 and str(out) in errors[0] and "not writable" in errors[0]
