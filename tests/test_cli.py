"""The command line end to end: folders, bad files, skipping, stdio, JSON, exit codes, models."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from tests.helpers import add_noise, kair_ffdnet_state_dict

runner = CliRunner()


def invoke(*args: str, stdin: bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin, catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path, astronaut: np.ndarray, chelsea: np.ndarray) -> Path:
    """A folder of two small noisy photos, one in a sub-folder."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    PILImage.fromarray(add_noise(astronaut[100:164, 200:264], 20)).save(folder / "astronaut.png")
    PILImage.fromarray(add_noise(chelsea[50:114, 150:214], 20, seed=1)).save(folder / "sub" / "chelsea.jpg", quality=92)
    return folder


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PHOTOFIX_HOME", str(home))
    monkeypatch.delenv("PHOTOFIX_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return home


def no_temp_files(folder: Path) -> bool:
    """No atomic-write leftovers (hidden ``.NAME.xxxx.tmp``); the run log folder is expected."""
    names = [p.name for p in folder.rglob("*") if ".photofix" not in p.relative_to(folder).parts]
    return not any(".tmp" in n or n.startswith(".") for n in names)


def test_help_and_version_do_not_import_torch() -> None:
    code = "import sys; from photofix.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    version = subprocess.run([sys.executable, "-m", "photofix", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("photofix ")


def test_installed_entry_point_runs(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    exe = Path(sys.executable).with_name("photofix")
    out = tmp_path / "out.png"
    done = subprocess.run(
        [str(exe), "denoise", str(photos / "astronaut.png"), str(out), "--weights", str(ffdnet_weights["rgb"]), "--sigma", "20"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert PILImage.open(out).size == (64, 64)


def test_folder_with_bad_files_keeps_going(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    jpeg = io.BytesIO()
    PILImage.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(jpeg, format="JPEG")
    (photos / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (photos / "notes.jpg").write_text("this is a text file")
    (photos / "empty.png").write_bytes(b"")
    (photos / "broken-link.png").symlink_to(photos / "missing.png")
    out = tmp_path / "out"

    result = invoke("denoise", photos, out, "-r", "--weights", ffdnet_weights["rgb"])

    assert result.exit_code == 1
    assert (out / "astronaut.png").is_file() and (out / "sub" / "chelsea.jpg").is_file()
    for bad in ("truncated.jpg", "notes.jpg", "empty.png", "broken-link.png"):
        assert not (out / bad).exists()
        lines = [line for line in result.stderr.splitlines() if bad in line]
        assert len(lines) == 1 and lines[0].startswith("failed"), result.stderr
    assert no_temp_files(out)


def test_existing_outputs_are_skipped_unless_overwrite(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    out = tmp_path / "out"
    assert invoke("denoise", photos, out, "--weights", ffdnet_weights["rgb"]).exit_code == 0
    target = out / "astronaut.png"
    target.write_bytes(b"stale")
    again = invoke("denoise", photos, out, "--weights", ffdnet_weights["rgb"])
    assert again.exit_code == 0 and "skipped" in again.stderr
    assert target.read_bytes() == b"stale"
    redo = invoke("denoise", photos, out, "--weights", ffdnet_weights["rgb"], "--force")
    assert redo.exit_code == 0
    assert PILImage.open(target).size == (64, 64)


def test_input_is_never_overwritten(photos: Path, ffdnet_weights) -> None:
    source = photos / "astronaut.png"
    before = source.read_bytes()
    single = invoke("denoise", source, source, "--weights", ffdnet_weights["rgb"], "--force")
    same_folder = invoke("denoise", photos, photos, "--weights", ffdnet_weights["rgb"], "--force")
    assert single.exit_code == 1 and "overwrite the input" in single.stderr
    assert same_folder.exit_code == 2 and "--suffix" in same_folder.stderr
    assert source.read_bytes() == before


def test_same_folder_with_suffix_does_not_reprocess_outputs(photos: Path, ffdnet_weights) -> None:
    first = invoke("denoise", photos, photos, "--suffix", "_clean", "--weights", ffdnet_weights["rgb"])
    assert first.exit_code == 0 and (photos / "astronaut_clean.png").is_file()
    second = invoke("denoise", photos, photos, "--suffix", "_clean", "--weights", ffdnet_weights["rgb"], "--json")
    inputs = [json.loads(line).get("input") for line in second.stdout.splitlines()[:-1]]
    assert inputs == [str(photos / "astronaut.png")]
    assert not (photos / "astronaut_clean_clean.png").exists()


def test_suffix_and_format(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    out = tmp_path / "out"
    result = invoke("denoise", photos, out, "-r", "--format", "jpg", "--suffix", "_clean", "--weights", ffdnet_weights["rgb"])
    assert result.exit_code == 0, result.stderr
    assert PILImage.open(out / "astronaut_clean.jpg").format == "JPEG"
    assert (out / "sub" / "chelsea_clean.jpg").is_file()


def test_dry_run_loads_and_writes_nothing(photos: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not weights")  # would fail with exit code 3 if it were loaded
    out = tmp_path / "out"
    result = invoke("denoise", photos, out, "-r", "--dry-run", "--weights", bogus)
    assert result.exit_code == 0
    assert result.stderr.count("planned") >= 2
    assert not out.exists()


def test_json_records_on_stdout(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    result = invoke("denoise", photos, tmp_path / "out", "-r", "--json", "--weights", ffdnet_weights["rgb"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    files, summary = records[:-1], records[-1]["summary"]
    assert {Path(r["input"]).name for r in files} == {"astronaut.png", "chelsea.jpg"}
    assert all(r["status"] == "done" and r["details"]["sigma_estimated"] for r in files)
    assert summary["done"] == 2 and summary["failed"] == 0


def test_stdin_to_stdout(photos: Path, ffdnet_weights) -> None:
    data = (photos / "astronaut.png").read_bytes()
    result = invoke("denoise", "-", "-", "--weights", ffdnet_weights["rgb"], "--sigma", "20", "-q", stdin=data)
    assert result.exit_code == 0
    restored = PILImage.open(io.BytesIO(result.stdout_bytes))
    assert restored.format == "PNG" and restored.size == (64, 64)


def test_sigma_estimate_is_reported(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    result = invoke("denoise", photos / "astronaut.png", tmp_path / "a.png", "--weights", ffdnet_weights["rgb"])
    assert result.exit_code == 0 and "sigma=" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "ffdnet-color", "--weights", "{w}"], "give one of them"),
        (["--model", "ffdnet-colour"], "ffdnet-color"),
        (["--model", "dat-x4"], "is for upscale"),
    ],
)
def test_usage_errors_exit_2(photos: Path, tmp_path: Path, ffdnet_weights, isolated_home: Path, args: list[str], message: str) -> None:
    args = [a.replace("{w}", str(ffdnet_weights["rgb"])) for a in args]
    result = invoke("denoise", photos / "astronaut.png", tmp_path / "o.png", "--offline", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("denoise", tmp_path / "nope", tmp_path / "out")
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_offline_without_cached_weights_exits_3(photos: Path, tmp_path: Path, isolated_home: Path) -> None:
    out = tmp_path / "out"
    result = invoke("denoise", photos, out, "--offline")
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "photofix models download" in errors[0] and "models import" in errors[0]
    assert not out.exists() or not any(out.rglob("*.png"))


def test_models_import_then_run_offline(photos: Path, tmp_path: Path, isolated_home: Path) -> None:
    weights = tmp_path / "ffdnet_color.pth"
    torch.save(kair_ffdnet_state_dict(identity=True), weights)

    imported = invoke("models", "import", "ffdnet-color", weights)
    assert imported.exit_code == 0 and "no published sha256" in imported.stderr
    where = invoke("models", "path", "ffdnet-color")
    assert where.exit_code == 0 and Path(where.stdout.strip()).is_file()
    listed = invoke("models", "list", "--task", "denoise", "--json")
    cached = {r["id"]: r["cached"] for r in map(json.loads, listed.stdout.splitlines())}
    assert cached["ffdnet-color"] is True
    assert not any(v for k, v in cached.items() if k != "ffdnet-color")
    assert {"scunet-color-real", "ffdnet-gray", "drunet-color"} <= set(cached)

    out = tmp_path / "out.png"
    result = invoke("denoise", photos / "astronaut.png", out, "--model", "ffdnet-color", "--offline", "--sigma", "10")
    assert result.exit_code == 0, result.stderr
    # the identity-wired test weights return the input: proves the manifest path ran this file
    np.testing.assert_array_equal(np.array(PILImage.open(out)), np.array(PILImage.open(photos / "astronaut.png")))


def test_models_import_rejects_a_wrong_file(tmp_path: Path, isolated_home: Path) -> None:
    wrong = tmp_path / "scunet.pth"
    wrong.write_bytes(b"definitely not the published file")
    result = invoke("models", "import", "scunet-color-real", wrong)
    assert result.exit_code == 3
    assert "fa78899b" in result.stderr  # the expected hash is named
    assert invoke("models", "path", "scunet-color-real").exit_code == 3


def test_models_list_shows_licences(isolated_home: Path) -> None:
    result = invoke("models", "list")
    assert result.exit_code == 0
    for text in ("scunet-color-real", "Apache-2.0", "dat-x4", "BSD-3"):
        assert text in result.stdout


def test_upscale_rejects_a_1x_model(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    result = invoke("upscale", photos / "astronaut.png", tmp_path / "o.png", "--weights", ffdnet_weights["rgb"])
    assert result.exit_code == 2 and "cannot upscale" in result.stderr


def test_an_unexpected_error_fails_only_that_file(photos: Path, tmp_path: Path, ffdnet_weights, monkeypatch: pytest.MonkeyPatch) -> None:
    from photofix.tasks import restore as pipeline

    real_restore = pipeline.Restorer.restore

    def flaky(self, image, on_tile=None):
        if image.meta.source_name.endswith("astronaut.png"):
            raise RuntimeError("simulated kernel failure")
        return real_restore(self, image, on_tile)

    monkeypatch.setattr(pipeline.Restorer, "restore", flaky)
    out = tmp_path / "out"
    result = invoke("denoise", photos, out, "-r", "--weights", ffdnet_weights["rgb"])
    assert result.exit_code == 1
    assert "simulated kernel failure" in result.stderr
    assert (out / "sub" / "chelsea.jpg").is_file() and not (out / "astronaut.png").exists()


def test_metadata_survives_a_restoration(tmp_path: Path, astronaut: np.ndarray, ffdnet_weights) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored = astronaut[:48, :80]  # stored landscape; Orientation 6 means "rotate 90° clockwise to view"
    exif = PILImage.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2001:02:03 04:05:06"  # DateTimeOriginal
    src = tmp_path / "phone.jpg"
    PILImage.fromarray(stored).save(src, exif=exif.tobytes(), icc_profile=icc, quality=90)
    out = tmp_path / "out.jpg"

    assert invoke("denoise", src, out, "--weights", ffdnet_weights["rgb"], "--sigma", "5").exit_code == 0

    restored = PILImage.open(out)
    assert restored.size == (48, 80)  # upright: width and height swapped
    assert restored.getexif().get(0x0112, 1) == 1
    assert restored.getexif().get_ifd(0x8769).get(0x9003) == "2001:02:03 04:05:06"
    assert restored.info.get("icc_profile") == icc


def test_sixteen_bit_and_alpha_survive(tmp_path: Path, ffdnet_weights) -> None:
    ramp = np.linspace(0, 65535, 64 * 64, dtype=np.float64).reshape(64, 64).astype(np.uint16)
    grey16 = tmp_path / "grey16.png"
    PILImage.fromarray(ramp).save(grey16)
    rgba = tmp_path / "rgba.png"
    pixels = np.dstack([np.full((32, 32, 3), 120, np.uint8), np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))])
    PILImage.fromarray(pixels, "RGBA").save(rgba)
    out = tmp_path / "out"

    assert invoke("denoise", tmp_path, out, "--weights", ffdnet_weights["rgb"], "--sigma", "2").exit_code == 0

    grey_out = PILImage.open(out / "grey16.png")
    assert grey_out.mode.startswith("I") and np.asarray(grey_out).max() > 255  # still 16-bit grey
    assert len(np.unique(np.asarray(grey_out))) > 1000  # more levels than 8 bits could hold
    rgba_out = np.asarray(PILImage.open(out / "rgba.png"))
    assert rgba_out.shape == (32, 32, 4)
    np.testing.assert_array_equal(rgba_out[..., 3], pixels[..., 3])  # alpha untouched by a 1x task


def test_models_download_with_wrong_file_exits_3_and_keeps_nothing(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from photofix.store import weights
    from photofix.store.manifest import load_manifest
    from tests.helpers import FakeHub

    entry = load_manifest().get("scunet-color-real")
    hub = FakeHub(tmp_path / "upstream")
    hub.publish(entry.source.repo, entry.source.filename, b"tampered mirror", revision=entry.source.revision)
    monkeypatch.setattr(weights, "_hf_hub_download", hub)

    result = invoke("models", "download", "scunet-color-real")

    assert result.exit_code == 3
    assert entry.sha256 in result.stderr and "sha256" in result.stderr
    assert invoke("models", "path", "scunet-color-real").exit_code == 3  # the bad file was removed


def test_first_run_downloads_then_reports_recorded_hash(photos: Path, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from photofix.store import weights

    weights_file = tmp_path / "upstream-ffdnet.pth"
    torch.save(kair_ffdnet_state_dict(identity=True), weights_file)
    opened: list[str] = []

    def fake_open(url: str):
        opened.append(url)
        return weights_file.open("rb")

    monkeypatch.setattr(weights, "_open_url", fake_open)
    first = invoke("denoise", photos / "astronaut.png", tmp_path / "a.png", "--tier", "fast", "--sigma", "5")
    assert first.exit_code == 0, first.stderr
    assert "downloading ffdnet-color" in first.stderr and "recorded" in first.stderr
    assert opened == ["https://github.com/cszn/KAIR/releases/download/v1.0/ffdnet_color.pth"]
    second = invoke("denoise", photos / "astronaut.png", tmp_path / "b.png", "--tier", "fast", "--sigma", "5")
    assert second.exit_code == 0 and "downloading" not in second.stderr and len(opened) == 1


def test_sigterm_mid_folder_leaves_no_partial_file(tmp_path: Path, astronaut: np.ndarray, ffdnet_weights) -> None:
    import signal
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        PILImage.fromarray(add_noise(astronaut[:256, :256], 10, seed=i)).save(folder / f"p{i:02d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "photofix", "denoise", str(folder), str(out), "--weights", str(ffdnet_weights["rgb"]), "--sigma", "10", "--tile", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and len(list(out.glob("*.png"))) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    written = sorted(out.glob("*.png"))
    assert 2 <= len(written) < 40
    assert [p.name for p in out.iterdir() if p.name != ".photofix"] == [p.name for p in written]  # no temp files
    for path in written:
        PILImage.open(path).load()  # each finished output is whole
    assert "interrupted" in stderr


def test_cpu_runs_default_to_the_fast_tier(photos: Path, tmp_path: Path, isolated_home: Path) -> None:
    result = invoke("denoise", photos / "astronaut.png", tmp_path / "o.png", "--offline", "--device", "cpu")
    assert result.exit_code == 3 and "ffdnet-color" in result.stderr  # the fast tier's model was asked for
    balanced = invoke("denoise", photos / "astronaut.png", tmp_path / "o.png", "--offline", "--device", "cpu", "--tier", "balanced")
    assert balanced.exit_code == 3 and "scunet-color-real" in balanced.stderr


def test_include_and_exclude_select_inputs_by_name_or_relative_path(photos: Path, tmp_path: Path) -> None:
    (photos / "sub" / "thumb_small.png").write_bytes((photos / "astronaut.png").read_bytes())
    planned = invoke("denoise", photos, tmp_path / "a", "-r", "--dry-run", "--json", "--include", "*.png", "--exclude", "thumb_*")
    assert planned.exit_code == 0, planned.stderr
    inputs = [json.loads(line)["input"] for line in planned.stdout.splitlines() if json.loads(line).get("status") == "planned"]
    assert [Path(p).name for p in inputs] == ["astronaut.png"]

    by_path = invoke("denoise", photos, tmp_path / "b", "-r", "--dry-run", "--json", "--include", "sub/*")
    names = sorted(Path(json.loads(line)["input"]).name for line in by_path.stdout.splitlines() if json.loads(line).get("status") == "planned")
    assert names == ["chelsea.jpg", "thumb_small.png"]

    none = invoke("denoise", photos, tmp_path / "c", "-r", "--include", "*.tif")
    assert none.exit_code == 2 and "--include/--exclude" in none.stderr


def test_fail_fast_stops_at_the_first_bad_file(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    (photos / "a_broken.png").write_bytes(b"not an image")  # sorted first
    out = tmp_path / "out"
    result = invoke("denoise", photos, out, "-r", "--weights", ffdnet_weights["rgb"], "--fail-fast")
    assert result.exit_code == 1
    assert "a_broken.png" in result.stderr and "--fail-fast" in result.stderr
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))

    kept_going = invoke("denoise", photos, tmp_path / "out2", "-r", "--weights", ffdnet_weights["rgb"])
    assert kept_going.exit_code == 1 and (tmp_path / "out2" / "astronaut.png").is_file()


def test_preview_writes_a_small_before_and_after_beside_each_output(photos: Path, tmp_path: Path, ffdnet_weights) -> None:
    out = tmp_path / "out"
    result = invoke("denoise", photos, out, "-r", "--weights", ffdnet_weights["rgb"], "--sigma", "20", "--preview")
    assert result.exit_code == 0, result.stderr
    preview = out / "astronaut.preview.jpg"
    with PILImage.open(preview) as img:
        assert img.format == "JPEG"
        shown = np.asarray(img.convert("RGB")).astype(np.float64)
    assert (out / "sub" / "chelsea.preview.jpg").is_file()
    # Left half is the noisy input, right half the denoised output: the left keeps far more
    # pixel-to-pixel noise (JPEG smooths some of it), and both show the same photo.
    height, width = shown.shape[:2]
    assert height >= 64 and width >= 2 * 64
    left, right = shown[height // 2 :, : width // 2 - 4], shown[height // 2 :, width // 2 + 4 :]

    def roughness(a: np.ndarray) -> float:
        return float(np.abs(np.diff(a, axis=1)).mean())

    assert roughness(left) > 1.5 * roughness(right)
    assert abs(left.mean() - right.mean()) < 8
    # A later run over the output folder does not take the previews as photos.
    planned = invoke("denoise", out, tmp_path / "again", "-r", "--dry-run", "--json", "--weights", ffdnet_weights["rgb"])
    names = [Path(json.loads(line)["input"]).name for line in planned.stdout.splitlines() if '"status"' in line]
    assert sorted(names) == ["astronaut.png", "chelsea.jpg"]
