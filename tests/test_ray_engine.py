"""``--engine ray`` on a local Ray cluster started here (2 CPUs, no dashboard, no external service).

A tiny random NAFNet saved to a file (``--weights``) runs in the Ray actors, so nothing is
downloaded; every check compares the Ray run with a local run of the same command. Ray comes
with the ``ray`` extra: without it these tests skip, unless ``PHOTOFIX_REQUIRE_TOOLS=1`` (CI)
makes it mandatory. The message for a missing Ray is checked with Ray hidden, installed or not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix import restore_path
from photofix.api import RayEngine
from photofix.cli.app import app
from photofix.errors import UsageError
from photofix.run.provenance import LOG_FOLDER, LOG_NAME, read_xmp_record
from tests.conftest import REQUIRE_TOOLS
from tests.test_model_lineup import BUILDERS, _save

PHOTOS = ("a.png", "b.jpg", "sub/c.png")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray for the module (starting it costs ~15 s on 2 cores); workers offline, own home."""
    if importlib.util.find_spec("ray") is None:
        reason = 'ray not installed: pip install -e ".[test,ray]"'
        if os.environ.get(REQUIRE_TOOLS) == "1":
            pytest.fail(f"{reason} ({REQUIRE_TOOLS}=1 makes it mandatory)", pytrace=False)
        pytest.skip(reason)
    import ray

    home = tmp_path_factory.mktemp("ray-home")
    env = {"PHOTOFIX_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "PHOTOFIX_OFFLINE": "1"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "home" / "hub"))
    monkeypatch.setenv("PHOTOFIX_OFFLINE", "1")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "nafnet.pth"
    _save(BUILDERS["NAFNet"](), path)
    return path


@pytest.fixture
def photos(astronaut: np.ndarray, chelsea: np.ndarray, tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    PILImage.fromarray(astronaut[:96, :128]).save(folder / "a.png")
    PILImage.fromarray(chelsea[:80, :112]).save(folder / "b.jpg", quality=90)
    PILImage.fromarray(astronaut[200:264, 200:264]).save(folder / "sub" / "c.png")
    return folder


def deblur(source: str | Path, output: str | Path, weights: Path, **kwargs) -> dict[str, object]:
    """One result per input name (as given), from ``restore_path`` with the tiny NAFNet."""
    results = restore_path("deblur", source, output, recursive=True, weights=weights, device="cpu", tile=64, **kwargs)
    base = Path(str(source).removeprefix("file://"))
    return {Path(r.input.removeprefix("file://")).relative_to(base).as_posix(): r for r in results}


def log_lines(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / LOG_FOLDER / LOG_NAME).read_text().splitlines()]


def pixels(path: Path) -> np.ndarray:
    with PILImage.open(path) as image:
        return np.asarray(image)


def assert_same_outputs(ours: Path, local: Path, scheme: str = "") -> None:
    """Every output pixel for pixel the local one, with the same provenance (but its creation time);
    the log names inputs as the run was given them (``scheme``: file:// for URIs)."""
    for name in PHOTOS:
        assert np.array_equal(pixels(ours / name), pixels(local / name)), name
        record, expected = read_xmp_record(ours / name), read_xmp_record(local / name)
        for found in (record, expected):
            found.pop("Created")
        assert record == expected, name
    ours_log = {r["output"]: r for r in log_lines(ours)}
    for r in log_lines(local):
        theirs = ours_log[r["output"]]
        assert theirs["input"] == scheme + r["input"]
        for key in ("input_sha256", "recipe", "steps", "details", "version"):
            assert theirs[key] == r[key], (r["output"], key)


def test_a_ray_run_matches_the_local_run_photo_for_photo(ray_cluster, photos: Path, weights: Path, tmp_path: Path) -> None:
    local = deblur(photos, tmp_path / "local", weights)
    on_ray = deblur(photos, tmp_path / "ray", weights, engine="ray")
    assert {n: r.status for n, r in on_ray.items()} == {n: r.status for n, r in local.items()} == dict.fromkeys(PHOTOS, "done")
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")
    records = log_lines(tmp_path / "ray")
    assert sorted(r["output"] for r in records) == sorted(PHOTOS)  # one record per photo, whole lines
    for record in records:
        from photofix._files import sha256_file

        assert record["output_sha256"] == sha256_file(tmp_path / "ray" / record["output"])
    assert all(r.model == local[n].model for n, r in on_ray.items())

    again = deblur(photos, tmp_path / "ray", weights, engine="ray")
    assert {r.status for r in again.values()} == {"skipped"}
    assert len(log_lines(tmp_path / "ray")) == len(PHOTOS)  # nothing redone, nothing logged twice


def test_a_corrupt_photo_fails_alone(ray_cluster, photos: Path, weights: Path, tmp_path: Path) -> None:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    results = deblur(photos, tmp_path / "out", weights, engine=RayEngine(workers=2))
    assert results["broken.png"].status == "failed" and "broken.png" in results["broken.png"].reason
    assert {n: r.status for n, r in results.items() if n != "broken.png"} == dict.fromkeys(PHOTOS, "done")
    assert not (tmp_path / "out" / "broken.png").exists()
    assert sorted(r["output"] for r in log_lines(tmp_path / "out")) == sorted(PHOTOS)


def test_an_interrupted_run_resumes_where_it_stopped(ray_cluster, photos: Path, weights: Path, tmp_path: Path) -> None:
    for extra in range(13):  # enough photos that the run is usually still going when it is stopped
        PILImage.fromarray(pixels(photos / "a.png")[:, extra * 4:]).save(photos / f"more{extra}.png")
    total = len(PHOTOS) + 13
    out = tmp_path / "out"
    run = restore_path("deblur", photos, out, recursive=True, weights=weights, device="cpu", tile=64, engine="ray")
    first = [next(run), next(run)]
    run.close()  # what Ctrl-C does: the CLI closes the run, the cluster's work stops
    assert [r.status for r in first] == ["done", "done"]

    def outputs() -> list[str]:
        return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and LOG_FOLDER not in p.parts)

    # A write task already running when the run is closed finishes its photo (atomically, with its
    # XMP record); wait until nothing more appears before counting what the re-run must skip.
    written, settled_since = outputs(), time.monotonic()
    while time.monotonic() - settled_since < 3:
        time.sleep(0.5)
        now = outputs()
        if now != written:
            written, settled_since = now, time.monotonic()
    assert len(written) >= 2 and not any(name.startswith(".") for name in map(os.path.basename, written))  # no temp files
    assert len(log_lines(out)) >= 2  # what the driver received is logged; outputs written after that carry XMP

    rest = deblur(photos, out, weights, engine="ray")
    statuses = [r.status for r in rest.values()]
    assert len(rest) == total
    assert statuses.count("skipped") == len(written) and statuses.count("done") == total - len(written)
    logged = [r["output"] for r in log_lines(out)]
    assert sorted(logged) == sorted(set(logged)) and len(logged) == total  # each photo once
    local = deblur(photos, tmp_path / "local", weights)
    assert len(local) == total
    for name in local:
        assert np.array_equal(pixels(out / name), pixels(tmp_path / "local" / name)), name


def test_file_uris_are_read_and_written_through_pyarrow(ray_cluster, photos: Path, weights: Path, tmp_path: Path) -> None:
    deblur(photos, tmp_path / "local", weights)
    source, target = f"file://{photos}", f"file://{tmp_path / 'uri'}"
    results = deblur(source, target, weights, engine="ray", preview=True)
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(PHOTOS, "done")
    assert results["a.png"].input == f"{source}/a.png" and results["a.png"].output == f"{target}/a.png"
    assert_same_outputs(tmp_path / "uri", tmp_path / "local", scheme="file://")
    assert (tmp_path / "uri" / "sub" / "c.preview.jpg").is_file()
    assert {r.status for r in deblur(source, target, weights, engine="ray").values()} == {"skipped"}
    assert len(log_lines(tmp_path / "uri")) == len(PHOTOS)


def test_uris_need_the_ray_engine(photos: Path, weights: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--engine ray"):
        list(restore_path("deblur", f"file://{photos}", f"file://{tmp_path}/out", weights=weights))


def test_the_command_line_runs_on_ray_with_json_records(ray_cluster, photos: Path, weights: Path, tmp_path: Path) -> None:
    (photos / "broken.png").write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["deblur", "-r", str(photos), str(tmp_path / "out"), "--weights", str(weights),
                                      "--device", "cpu", "--tile", "64", "--engine", "ray", "--workers", "1", "--json"])
    assert result.exit_code == 1, result.output  # one photo failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_status = sorted((Path(r["input"]).name, r["status"]) for r in lines[:-1])
    assert by_status == [("a.png", "done"), ("b.jpg", "done"), ("broken.png", "failed"), ("c.png", "done")]
    assert lines[-1]["summary"]["done"] == 3 and lines[-1]["summary"]["failed"] == 1


def test_ray_options_without_the_ray_engine_are_refused(photos: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deshadow", str(photos), str(tmp_path / "out"), "--workers", "2"])
    assert result.exit_code == 2 and "--engine ray" in result.output
    assert not (tmp_path / "out").exists()


def test_without_ray_the_engine_says_how_to_install_it(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now raises ImportError, installed or not
    result = CliRunner().invoke(app, ["deshadow", str(photos), str(tmp_path / "out"), "--engine", "ray"])
    assert result.exit_code == 2
    assert 'pip install "photofix[ray]"' in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match=r'pip install "photofix\[ray\]"'):
        list(restore_path("deshadow", photos, tmp_path / "out", engine="ray"))


def test_a_stop_keeps_writes_that_finish_and_removes_those_cut_short(tmp_path: Path) -> None:
    # After a stop the cluster's tasks end on their own time: a write still going must be allowed
    # to rename its temp file into place; one killed mid-file leaves a temp file nobody touches.
    import threading

    from photofix.run.ray_engine import _clear_cut_writes

    finishing, killed = tmp_path / "a.png", tmp_path / "b.png"
    going, left = tmp_path / ".a.png.0123abcd.tmp", tmp_path / ".b.png.89abcdef.tmp"
    left.write_bytes(b"half a photo")

    def write_slowly() -> None:
        with open(going, "wb") as out:
            for _ in range(5):
                out.write(b"x" * 1000)
                out.flush()
                os.utime(going)
                time.sleep(0.3)
        os.replace(going, finishing)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    time.sleep(0.1)  # the write has begun when the run is stopped
    started = time.monotonic()
    _clear_cut_writes([finishing, killed])
    writer.join()
    assert finishing.read_bytes() == b"x" * 5000  # its temp file was not taken from under it
    assert not left.exists() and not going.exists()
    assert time.monotonic() - started < 10.0  # measured about 2.2 s: the killed write's 2 s of quiet


def test_a_stop_removes_a_write_that_begins_after_it_and_is_cut_short(tmp_path: Path) -> None:
    # A write task the stop has not reached yet may start its photo a moment later and then be
    # killed: the folder showed no temp file when the stop began, one appears after.
    import threading

    from photofix.run.ray_engine import _clear_cut_writes

    late = tmp_path / ".c.png.0123abcd.tmp"

    def begin_late_and_die() -> None:
        time.sleep(0.5)
        late.write_bytes(b"the start of a photo")

    writer = threading.Thread(target=begin_late_and_die)
    writer.start()
    started = time.monotonic()
    _clear_cut_writes([tmp_path / "c.png"])
    writer.join()
    assert not late.exists()
    assert time.monotonic() - started < 10.0
