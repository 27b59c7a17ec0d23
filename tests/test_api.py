"""Every task from Python alone: ``make_processor`` and ``restore_path``, offline, no CLI.

Real weights where the registry has them (FFDNet, DAT-light); elsewhere randomly initialised
checkpoints in the released layouts (``tests/test_model_lineup.py`` builds them) or the
classical methods that need no download.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

import photofix
from photofix import Image, make_processor, read_image, restore_path
from photofix.errors import UsageError
from tests.helpers import add_noise, psnr
from tests.test_model_lineup import BUILDERS, _save


@pytest.fixture(autouse=True)
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "home" / "hub"))
    monkeypatch.setenv("PHOTOFIX_OFFLINE", "1")


@pytest.fixture
def crop(astronaut: np.ndarray, tmp_path: Path) -> Path:
    path = tmp_path / "crop.png"
    PILImage.fromarray(astronaut[80:176, 180:276]).save(path)
    return path


def checkpoint(tmp_path: Path, arch: str) -> Path:
    path = tmp_path / f"{arch.lower()}.pth"
    _save(BUILDERS[arch](), path)
    return path


def test_denoise_with_real_ffdnet_weights_gains(astronaut: np.ndarray, ffdnet_weights, tmp_path: Path) -> None:
    clean = astronaut[100:228, 150:278]
    noisy_path = tmp_path / "noisy.png"
    PILImage.fromarray(add_noise(clean, 25)).save(noisy_path)
    processor = make_processor("denoise", weights=ffdnet_weights["rgb"], sigma=25, device="cpu")
    restored, details = processor.restore(read_image(noisy_path))
    before = psnr(read_image(noisy_path).pixels, clean / 255)
    after = psnr(restored.pixels, clean / 255)
    assert after - before > 5, (before, after)
    assert processor.steps[0].task == "denoise" and processor.steps[0].params == {"sigma": 25.0}


@pytest.mark.parametrize(("task", "arch"), [("deblur", "NAFNet"), ("derain", "Restormer")])
def test_one_network_tasks_run_from_python(task: str, arch: str, crop: Path, tmp_path: Path) -> None:
    processor = make_processor(task, weights=checkpoint(tmp_path, arch), device="cpu", tile=64)
    image = read_image(crop)
    restored, _ = processor.restore(image)
    assert restored.pixels.shape == image.pixels.shape and np.isfinite(restored.pixels).all()


def test_upscale_with_real_dat_weights_doubles(crop: Path, dat_weights) -> None:
    processor = make_processor("upscale", weights=dat_weights[2], device="cpu")
    image = read_image(crop)
    restored, details = processor.restore(image)
    assert restored.pixels.shape[:2] == (2 * image.height, 2 * image.width) and details["scale"] == 2


def test_colorize_gives_a_grey_photo_colour_at_full_size(astronaut: np.ndarray, tmp_path: Path) -> None:
    grey = cv2.cvtColor(astronaut[:128, :128], cv2.COLOR_RGB2GRAY)
    path = tmp_path / "grey.png"
    PILImage.fromarray(grey).save(path)
    processor = make_processor("colorize", weights=checkpoint(tmp_path, "DDColor"), device="cpu", render_size=64)
    restored, _ = processor.restore(read_image(path))
    assert restored.pixels.shape == (128, 128, 3) and np.isfinite(restored.pixels).all()
    assert np.abs(restored.pixels[..., 0] - restored.pixels[..., 2]).mean() > 0.01  # colour, not grey


def test_scratch_repair_classical_changes_only_the_damage(astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = astronaut[200:328, 200:328].copy()
    cv2.line(photo, (10, 20), (120, 90), (255, 255, 255), 2)
    path = tmp_path / "scratched.png"
    PILImage.fromarray(photo).save(path)
    processor = make_processor("scratch-repair", model="classical", dilate=2)
    image = read_image(path)
    restored, details = processor.restore(image)
    changed = np.any(restored.pixels != image.pixels, axis=2)
    assert changed.any() and changed.mean() < 0.2
    assert processor.steps[0].model == "classical"


def test_deshadow_runs_classically_without_weights(astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = astronaut[:128, :128].astype(np.float32)
    photo[32:96, 32:96] *= 0.45  # a hard-edged, grey "shadow": the detector is not sure of it
    path, mask = tmp_path / "shadow.png", tmp_path / "shadow_mask.png"
    PILImage.fromarray(photo.round().astype(np.uint8)).save(path)
    drawn = np.zeros((128, 128), np.uint8)
    drawn[32:96, 32:96] = 255
    PILImage.fromarray(drawn).save(mask)
    left, details = make_processor("deshadow").restore(read_image(path))
    assert np.array_equal(left.pixels, read_image(path).pixels) and "unchanged:" in details["note"]
    restored, _ = make_processor("deshadow", mask=mask).restore(read_image(path))  # the user's mask: relit
    assert restored.pixels[40:88, 40:88].mean() > read_image(path).pixels[40:88, 40:88].mean() + 0.1


def test_a_chain_from_python_denoises_then_upscales(crop: Path, ffdnet_weights, dat_weights) -> None:
    steps = f"denoise:weights={ffdnet_weights['rgb']}:sigma=10,upscale:weights={dat_weights[2]}"
    processor = make_processor(steps=steps, device="cpu")
    image = read_image(crop)
    restored, details = processor.restore(image)
    assert [s.task for s in processor.steps] == ["denoise", "upscale"]
    assert restored.pixels.shape[:2] == (2 * image.height, 2 * image.width)


def test_bad_options_are_usage_errors_naming_them() -> None:
    with pytest.raises(UsageError, match="unknown option 'sharpness'; denoise takes sigma"):
        make_processor("denoise", sharpness=3)
    with pytest.raises(UsageError, match="between 1 and 16"):
        make_processor("upscale", scale=40)
    with pytest.raises(UsageError, match="unknown task"):
        make_processor("sharpen")
    with pytest.raises(UsageError, match="one of them"):
        make_processor("denoise", steps="denoise")


def test_restore_path_over_a_folder_resumes_and_fails_bad_files_alone(
    astronaut: np.ndarray, chelsea: np.ndarray, ffdnet_weights, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    PILImage.fromarray(add_noise(astronaut[:64, :64], 15)).save(folder / "a.png")
    PILImage.fromarray(add_noise(chelsea[:64, :64], 15)).save(folder / "sub" / "b.jpg", quality=92)
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    events: list[tuple[str, str]] = []

    results = list(restore_path("denoise", folder, out, recursive=True, weights=ffdnet_weights["rgb"], sigma=15,
                                on_event=lambda kind, text: events.append((kind, text))))
    by_name = {Path(r.input).name: r for r in results}
    assert by_name["a.png"].status == "done" and by_name["b.jpg"].status == "done"
    assert by_name["broken.png"].status == "failed" and "broken.png" in by_name["broken.png"].reason
    assert (out / "a.png").is_file() and (out / "sub" / "b.jpg").is_file()
    assert (out / ".photofix" / "runs.jsonl").is_file()

    again = list(restore_path("denoise", folder, out, recursive=True, weights=ffdnet_weights["rgb"], sigma=15))
    assert {Path(r.input).name: r.status for r in again} == {"a.png": "skipped", "b.jpg": "skipped", "broken.png": "failed"}


def test_restore_path_refuses_usage_errors_before_the_first_file(crop: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError):
        list(restore_path("upscale", crop, out / "x.png", scale=99))
    assert not out.exists()


def test_the_public_surface_lists_the_entry_points() -> None:
    for name in ("make_processor", "restore_path", "TASKS", "read_image", "write_image"):
        assert name in photofix.__all__ and getattr(photofix, name) is not None
    assert set(photofix.TASKS) == {"denoise", "deblur", "derain", "upscale", "colorize", "scratch-repair", "deshadow", "faces"}
    assert isinstance(Image, type)


def test_a_bad_mask_fails_its_photo_alone_and_the_folder_goes_on(astronaut: np.ndarray, tmp_path: Path) -> None:
    folder, masks = tmp_path / "in", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for name in ("good", "odd"):
        PILImage.fromarray(astronaut[:96, :128]).save(folder / f"{name}.png")
    square = np.zeros((96, 96), np.uint8)  # another aspect ratio than the photo
    wide = np.zeros((96, 128), np.uint8)
    wide[30:60, 40:90] = 255
    PILImage.fromarray(wide).save(masks / "good.png")
    PILImage.fromarray(square).save(masks / "odd.png")
    results = {Path(r.input).stem: r for r in restore_path("deshadow", folder, tmp_path / "out", mask=masks)}
    assert results["good"].status == "done"
    assert results["odd"].status == "failed" and "aspect ratio" in results["odd"].reason


def test_classical_scratch_repair_grows_its_mask_by_nothing_unless_asked() -> None:
    """benchmarks/SCRATCH_EVAL.md: the classical mask holds the rim already; growing it cost dB."""
    assert make_processor("scratch-repair", model="classical").steps[0].params["dilate"] == 0
    assert make_processor("scratch-repair", model="classical", dilate=3).steps[0].params["dilate"] == 3
