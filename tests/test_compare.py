"""Before/after pictures (side by side, split, preview), folder pairing, and ``photofix compare``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image as PILImage
from PIL import ImageCms
from skimage import data
from typer.testing import CliRunner

from photofix.review import compare
from photofix.cli import compare_cmd
from photofix.errors import UsageError
from photofix.imageio import Image, ImageMeta
from photofix.run.provenance import Record, RunLog, sha256_file

runner = CliRunner()


def photo(u8: np.ndarray, alpha: np.ndarray | None = None, icc: bytes | None = None) -> Image:
    pixels = u8.astype(np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    grey = pixels.shape[2] == 1
    meta = ImageMeta(format="PNG", mode="L" if grey else "RGB", bit_depth=8, grayscale=grey, icc_profile=icc, source_name="test.png")
    return Image(pixels=pixels, alpha=alpha, meta=meta)


def resized(u8: np.ndarray, width: int, height: int, resample=PILImage.Resampling.LANCZOS) -> np.ndarray:
    return np.asarray(PILImage.fromarray(u8).resize((width, height), resample))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def degraded(astronaut: np.ndarray) -> np.ndarray:
    """A clearly different copy: darker and noisy."""
    noise = np.random.default_rng(0).normal(0, 12, astronaut.shape)
    return np.clip(astronaut * 0.6 + noise, 0, 255).astype(np.uint8)


# --- pictures --------------------------------------------------------------------------


def test_side_by_side_puts_before_left_and_after_right(astronaut: np.ndarray, degraded: np.ndarray) -> None:
    out = compare.side_by_side(photo(degraded), photo(astronaut))
    assert out.dtype == np.uint8 and out.shape[0] == 512 and out.shape[2] == 3
    gap = out.shape[1] - 1024
    assert 2 <= gap <= 10
    below_labels = slice(128, None)
    assert np.array_equal(out[below_labels, :512], degraded[below_labels])
    assert np.array_equal(out[below_labels, -512:], astronaut[below_labels])
    assert np.all(out[:, 512:512 + gap] == compare.GAP_GREY)


def test_labels_are_drawn_as_white_text_on_a_dark_box() -> None:
    grey = np.full((300, 300, 3), 128, np.uint8)
    labelled = compare.side_by_side(photo(grey), photo(grey))
    plain = compare.side_by_side(photo(grey), photo(grey), labels=None)
    width = 300
    panels = {"before": labelled[:60, :width], "after": labelled[:60, -width:]}
    for name, corner in panels.items():
        assert (corner < 100).all(axis=2).sum() > 200, f"no dark box behind the {name} label"
        assert (corner > 220).all(axis=2).sum() > 20, f"no white text in the {name} label"
    assert np.all(labelled[100:, :width] == 128)  # the photo away from the label is untouched
    assert np.all(plain[:, :width] == 128) and np.all(plain[:, -width:] == 128)
    other = compare.side_by_side(photo(grey), photo(grey), labels=("original", "restored"))
    assert not np.array_equal(other, labelled)
    with pytest.raises(UsageError, match="two texts"):
        compare.side_by_side(photo(grey), photo(grey), labels=("only one",))


def test_smaller_before_is_enlarged_with_lanczos_to_the_after_size(astronaut: np.ndarray) -> None:
    after = resized(astronaut, 256, 256)
    before = resized(astronaut, 64, 64)
    out = compare.side_by_side(photo(before), photo(after), labels=None)
    assert out.shape[:2] == (256, 256 + (out.shape[1] - 512) + 256)
    left = out[:, :256].astype(float)
    nearest = np.repeat(np.repeat(before, 4, axis=0), 4, axis=1).astype(float)
    lanczos_error = np.abs(left - after).mean()
    nearest_error = np.abs(nearest - after).mean()
    assert lanczos_error < 0.85 * nearest_error  # smooth enlargement, not blocks
    assert np.array_equal(out[:, -256:], after)


def test_different_aspect_keeps_the_before_undistorted(astronaut: np.ndarray) -> None:
    before = resized(astronaut, 100, 50)
    out = compare.side_by_side(photo(before), photo(resized(astronaut, 200, 200)), labels=None)
    gap = out.shape[1] - 600
    assert out.shape[0] == 200 and 2 <= gap <= 10  # before at 400 x 200, not squeezed to 200 x 200


def test_grey_before_becomes_neutral_rgb(astronaut: np.ndarray) -> None:
    grey = (astronaut @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    out = compare.side_by_side(photo(grey), photo(astronaut), labels=None)
    left = out[:, :512]
    assert np.array_equal(left[..., 0], grey) and np.array_equal(left[..., 1], grey) and np.array_equal(left[..., 2], grey)


def test_alpha_is_composited_over_neutral_grey() -> None:
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    alpha = np.zeros((64, 64), np.float32)
    alpha[:, 32:] = 1.0
    alpha[:, 16:32] = 0.5
    rgb = compare.to_rgb8(photo(red, alpha))
    assert np.all(rgb[:, :16] == compare.NEUTRAL_GREY)
    assert np.all(rgb[:, 32:] == [255, 0, 0])
    assert np.allclose(rgb[:, 16:32], [192, 64, 64], atol=1)
    out = compare.side_by_side(photo(red, alpha), photo(red), labels=None)
    assert np.all(out[:, :16] == compare.NEUTRAL_GREY) and np.all(out[:, -64:] == [255, 0, 0])


def _swapped_primaries_profile() -> bytes:
    """A minimal ICC v2 RGB profile whose red colorant is sRGB's green (and green sRGB's red), linear TRCs."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    text = b"swapped primaries\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 0)  # no entries: identity
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"gXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, blobs = b"", b""
    for signature, blob in tags:
        blob += b"\0" * (-len(blob) % 4)
        table += signature + struct.pack(">II", offset + len(blobs), len(blob))
        blobs += blob
    size = offset + len(blobs)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blobs


def test_icc_tagged_photos_are_shown_in_srgb() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    swapped = compare.to_rgb8(photo(red, icc=_swapped_primaries_profile()))
    assert swapped[0, 0, 1] > 240 and swapped[0, 0, 0] < 25 and swapped[0, 0, 2] < 25  # its "red" is sRGB green
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(compare.to_rgb8(photo(red, icc=srgb)), red)
    assert np.array_equal(compare.to_rgb8(photo(red, icc=b"not a profile")), red)


def test_split_view_shows_before_left_of_the_divider_and_after_right(astronaut: np.ndarray, degraded: np.ndarray) -> None:
    out = compare.split_view(photo(degraded), photo(astronaut), position=0.3)
    assert out.shape == astronaut.shape
    x = round(0.3 * 512)
    rows = slice(128, None)
    assert np.array_equal(out[rows, : x - 4], degraded[rows, : x - 4])
    assert np.array_equal(out[rows, x + 4:], astronaut[rows, x + 4:])
    assert np.all(out[:, x] > 200)  # the divider line
    # the labels sit in the top corners
    assert not np.array_equal(out[:40, :80], degraded[:40, :80]) and not np.array_equal(out[:40, -80:], astronaut[:40, -80:])
    moved = compare.split_view(photo(degraded), photo(astronaut), position=0.7, labels=None)
    assert np.array_equal(moved[:, : round(0.7 * 512) - 4], degraded[:, : round(0.7 * 512) - 4])
    with pytest.raises(UsageError, match="outside 0"):
        compare.split_view(photo(degraded), photo(astronaut), position=1.5)


def test_split_view_enlarges_a_smaller_before(astronaut: np.ndarray) -> None:
    out = compare.split_view(photo(resized(astronaut, 64, 64)), photo(resized(astronaut, 256, 256)), labels=None)
    assert out.shape == (256, 256, 3)
    assert np.abs(out[:, :120].astype(float) - resized(astronaut, 256, 256)[:, :120]).mean() < 12


def test_preview_fits_the_long_side(astronaut: np.ndarray, degraded: np.ndarray) -> None:
    out = compare.preview(photo(degraded), photo(astronaut))
    assert max(out.shape[:2]) <= 1024 and out.shape[1] >= 1020
    side = out.shape[0]  # square photos: each panel is as wide as it is high
    assert np.abs(out[100:, :side].astype(float) - resized(degraded, side, side)[100:]).mean() < 2
    assert np.abs(out[100:, -side:].astype(float) - resized(astronaut, side, side)[100:]).mean() < 2
    small = compare.preview(photo(degraded), photo(astronaut), long_side=300)
    assert max(small.shape[:2]) <= 300 and small.shape[1] >= 296
    tiny = compare.preview(photo(degraded[:64, :64]), photo(astronaut[:64, :64]))
    assert tiny.shape[0] == 64  # never enlarged
    assert compare.preview_path("out/photo_x4.png") == Path("out/photo_x4.preview.jpg")


# --- pairing folders -------------------------------------------------------------------


def save(path: Path, seed: int, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path)
    return path


def names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def pair_names(pairs: list[compare.Pair], before: Path, after: Path) -> dict[str, tuple[str, str]]:
    return {p.after.relative_to(after).as_posix(): (p.before.relative_to(before).as_posix(), p.matched_by) for p in pairs}


def log(after: Path, output: str, input_name: str, input_sha: str) -> None:
    RunLog(after).append(Record(input=input_name, input_sha256=input_sha, output=output, recipe="r" * 16,
                                steps=[{"task": "denoise", "model": "m", "params": {}}],
                                output_sha256=sha256_file(after / output)))


def test_pair_folders_uses_run_records_then_names(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    a = save(before / "a.png", 1)
    save(before / "b.png", 2)
    save(before / "sub" / "c.png", 3)
    save(before / "lonely.png", 4)
    save(after / "result-1.png", 11)
    save(after / "weird" / "result-2.png", 12)
    save(after / "b_x4.png", 13)
    save(after / "orphan.png", 14)
    log(after, "result-1.png", "/somewhere/else/a.png", sha256_file(a))  # found by the input's hash
    log(after, "weird/result-2.png", "before/sub/c.png", "0" * 64)  # hash differs: by the recorded path
    # never candidates: the log folder, previews, a contact sheet's renditions
    save(after / ".photofix" / "a.png", 5)
    save(after / "b_x4.preview.jpg", 6)
    (after / "compare.html").write_text("<html></html>")
    save(after / "compare_files" / "001-b_x4-after.jpg", 7)

    pairs, lonely_outputs, lonely_inputs = compare.pair_folders(before, after)

    assert pair_names(pairs, before, after) == {
        "b_x4.png": ("b.png", "name"),
        "result-1.png": ("a.png", "record"),
        "weird/result-2.png": ("sub/c.png", "record path"),
    }
    by_after = {p.after.name: p for p in pairs}
    assert by_after["result-1.png"].record is not None and by_after["result-1.png"].record.input_sha256 == sha256_file(a)
    assert by_after["b_x4.png"].record is None
    assert names(lonely_outputs, after) == ["orphan.png"]
    assert names(lonely_inputs, before) == ["lonely.png"]


def test_pair_folders_by_name_with_suffix_and_extension_change(tmp_path: Path) -> None:
    before, after = tmp_path / "in", tmp_path / "out"
    save(before / "photo.jpg", 1)
    save(before / "photo_2.png", 2)
    save(before / "sub" / "Scan.tif", 3)
    save(before / "IMG_10.png", 4)
    save(after / "photo_x4.png", 5)
    save(after / "photo_2_clean.png", 6)  # photo_2, not photo: the longest stem wins
    save(after / "sub" / "scan.png", 7)  # same stem, new extension, case-insensitive
    save(after / "scan_x4.png", 8)  # a scan at the top level has no original there
    save(after / "IMG_10-fixed.webp", 9)

    pairs, lonely_outputs, lonely_inputs = compare.pair_folders(before, after)

    assert pair_names(pairs, before, after) == {
        "IMG_10-fixed.webp": ("IMG_10.png", "name"),
        "photo_2_clean.png": ("photo_2.png", "name"),
        "photo_x4.png": ("photo.jpg", "name"),
        "sub/scan.png": ("sub/Scan.tif", "name"),
    }
    assert names(lonely_outputs, after) == ["scan_x4.png"] and lonely_inputs == []
    flat, _, _ = compare.pair_folders(before, after, recursive=False)
    assert [p.after.name for p in flat] == ["IMG_10-fixed.webp", "photo_2_clean.png", "photo_x4.png"]


def test_pair_folders_in_place_and_nested(tmp_path: Path) -> None:
    folder = tmp_path / "album"
    save(folder / "photo.jpg", 1)
    save(folder / "photo_clean.jpg", 2)
    save(folder / "other.png", 3)
    pairs, lonely_outputs, lonely_inputs = compare.pair_folders(folder, folder)
    assert pair_names(pairs, folder, folder) == {"photo_clean.jpg": ("photo.jpg", "name")}
    assert lonely_outputs == [] and names(lonely_inputs, folder) == ["other.png"]

    root = tmp_path / "nested"
    save(root / "a.png", 4)
    save(root / "out" / "a_x2.png", 5)
    pairs, lonely_outputs, lonely_inputs = compare.pair_folders(root, root / "out")
    assert pair_names(pairs, root, root / "out") == {"a_x2.png": ("a.png", "name")}
    assert lonely_outputs == [] and lonely_inputs == []

    with pytest.raises(UsageError, match="not a folder"):
        compare.pair_folders(root / "a.png", root / "out")


# --- the command -----------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Test root, so 'compare' stays a sub-command."""

    compare_cmd.register(app)
    return app


def invoke(*args: object):
    return runner.invoke(cli(), ["compare", *(str(a) for a in args)], catch_exceptions=False)


def test_cli_two_files_writes_a_comparison_image(tmp_path: Path, astronaut: np.ndarray, degraded: np.ndarray) -> None:
    before, after = tmp_path / "scan.png", tmp_path / "clean.png"
    PILImage.fromarray(resized(degraded, 128, 128)).save(before)
    PILImage.fromarray(resized(astronaut, 256, 256)).save(after)

    result = invoke(before, after)
    assert result.exit_code == 0, result.output
    written = tmp_path / "clean_compare.jpg"
    assert "clean_compare.jpg" in result.output
    with PILImage.open(written) as img:
        assert img.format == "JPEG" and img.height == 256 and 512 < img.width < 530

    split = invoke(before, after, "--mode", "split", "--position", "0.25", "-o", tmp_path / "check.png")
    assert split.exit_code == 0, split.output
    pixels = np.asarray(PILImage.open(tmp_path / "check.png"))
    assert pixels.shape == (256, 256, 3)
    assert np.abs(pixels[100:, 70:].astype(float) - resized(astronaut, 256, 256)[100:, 70:]).mean() < 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_cli_refuses_to_overwrite_an_input(tmp_path: Path, astronaut: np.ndarray) -> None:
    before, after = tmp_path / "a.png", tmp_path / "b.jpg"
    PILImage.fromarray(astronaut[:64, :64]).save(before)
    PILImage.fromarray(astronaut[64:128, :64]).save(after)
    original = before.read_bytes(), after.read_bytes()
    for target in (before, after, tmp_path / "." / "a.png"):
        result = invoke(before, after, "-o", target)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "is an input" in lines[0] and target.name in lines[0]
    assert (before.read_bytes(), after.read_bytes()) == original


def test_cli_usage_errors_are_one_line(tmp_path: Path, astronaut: np.ndarray) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    photo_file = tmp_path / "a.png"
    PILImage.fromarray(astronaut[:32, :32]).save(photo_file)
    cases = [
        ((photo_file, tmp_path / "missing.png"), "missing.png: no such file or folder"),
        ((photo_file, folder), "give two files or two folders"),
        ((folder, folder, "-o", tmp_path / "x.png"), "give -o NAME.html"),
        ((folder, tmp_path), "no output matches"),
        ((photo_file, photo_file, "-o", tmp_path / "out.xyz"), "not an image format"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_cli_two_folders_writes_the_contact_sheet(tmp_path: Path, astronaut: np.ndarray, degraded: np.ndarray) -> None:
    before, after = tmp_path / "scans", tmp_path / "restored"
    before.mkdir()
    after.mkdir()
    PILImage.fromarray(resized(degraded, 96, 96)).save(before / "one.png")
    PILImage.fromarray(resized(astronaut, 192, 192)).save(after / "one_x2.png")
    PILImage.fromarray(astronaut[:32, :32]).save(after / "stray.png")

    result = invoke(before, after)
    assert result.exit_code == 0, result.output
    sheet = after / "compare.html"
    assert sheet.is_file() and "compare.html" in result.output and "(1 pair)" in result.output
    assert "1 output had no matching input: stray.png" in result.output
    assert "one_x2.png" in sheet.read_text(encoding="utf-8")

    again = invoke(before, after, "--position", "0.25")  # the sheet's own renditions are not taken for outputs
    assert again.exit_code == 0 and "(1 pair)" in again.output
    assert 'aria-valuenow="25"' in sheet.read_text(encoding="utf-8")  # where the dividers start

    single = invoke(before / "one.png", after / "one_x2.png", "-o", tmp_path / "one.html")
    assert single.exit_code == 0 and (tmp_path / "one_files").is_dir()


def test_cli_help_has_examples() -> None:
    result = runner.invoke(cli(), ["compare", "--help"], terminal_width=120)
    assert result.exit_code == 0
    assert "photofix compare scans/ restored/" in result.output and "--position" in result.output


def test_identical_copies_pair_with_their_own_outputs(tmp_path: Path) -> None:
    # issue 16: two byte-identical inputs were both paired with the first, the second called missing
    from typer.testing import CliRunner

    from photofix.cli import app
    from photofix.review.compare import pair_folders

    photos = tmp_path / "in"
    photos.mkdir()
    pixels = np.random.default_rng(3).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    for name in ("a.png", "b.png"):
        PILImage.fromarray(pixels).save(photos / name)
    PILImage.fromarray(pixels[::-1].copy()).save(photos / "c.png")
    done = CliRunner().invoke(app, ["scratch-repair", str(photos), str(tmp_path / "out"), "--model", "classical"])
    assert done.exit_code == 0, done.stderr
    pairing = pair_folders(photos, tmp_path / "out")
    assert sorted((p.before.name, p.after.name, p.matched_by) for p in pairing.pairs) == [
        ("a.png", "a.png", "record"), ("b.png", "b.png", "record"), ("c.png", "c.png", "record")]
    assert pairing.inputs_without_output == [] and pairing.outputs_without_input == []
