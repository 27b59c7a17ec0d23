"""Hostile and odd inputs: memory bombs, truncated files, frames left out, noise on stderr, huge XMP."""

from __future__ import annotations

import hashlib
import io
import json
import resource
import struct
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image as PILImage
from PIL import ImageCms
from typer.testing import CliRunner

from photofix import imageio
from photofix.cli import app
from photofix.errors import ImageTooLarge, NotEnoughMemory, UnsupportedImage
from photofix.imageio import decode, jpeg_xmp, memory
from tests.helpers import add_noise

# Enough address space for Python + torch + a small photo (torch alone maps ~3.5 GiB), far
# below what the 30000 x 30000 bomb would take: a regressed guard fails, the machine lives.
CAP_BYTES = 6 * 2**30


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A few hundred bytes declaring ``width`` x ``height`` RGB: four zero rows, the rest missing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def encoded(img: PILImage.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def small_photo(astronaut: np.ndarray) -> np.ndarray:
    return add_noise(astronaut[100:164, 200:264], 20)


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))


# --- the memory guard ------------------------------------------------------------------


def test_a_tiny_png_declaring_30000x30000_fails_alone_under_a_memory_cap(tmp_path: Path, small_photo, ffdnet_weights) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    bomb = bomb_png()
    assert len(bomb) < 1000
    (folder / "bomb.png").write_bytes(bomb)
    PILImage.fromarray(small_photo).save(folder / "photo.png")

    done = subprocess.run(
        [sys.executable, "-m", "photofix", "denoise", str(folder), str(out), "--weights", str(ffdnet_weights["rgb"]),
         "--sigma", "20", "--json"],
        capture_output=True, text=True, timeout=600, preexec_fn=_capped,
    )

    assert done.returncode == 1, done.stderr
    assert (out / "photo.png").is_file() and not (out / "bomb.png").exists()
    lines = [line for line in done.stderr.splitlines() if "bomb.png" in line]
    assert len(lines) == 1 and lines[0].startswith("failed"), done.stderr
    for text in ("30000x30000", "900.0 megapixels", "would need about 36.9 GiB", "available", "--memory-limit"):
        assert text in lines[0]
    records = {Path(r["input"]).name: r for r in map(json.loads, done.stdout.splitlines()[:-1])}
    assert records["photo.png"]["status"] == "done" and records["bomb.png"]["status"] == "failed"


def test_the_memory_check_reads_only_the_header_and_names_size_need_budget_and_option(monkeypatch) -> None:
    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(decode, "load_upright", no_decoding)
    with pytest.raises(NotEnoughMemory) as caught:
        imageio.decode_image(bomb_png(), name="bomb.png", memory_limit="8G")
    assert isinstance(caught.value, ImageTooLarge)  # fails that one file, like other bad inputs
    message = str(caught.value)
    assert "\n" not in message
    for text in ("bomb.png: image is 30000x30000", "900.0 megapixels", "about 36.9 GiB",
                 "8.0 GiB is allowed by --memory-limit", "--memory-limit 37G", "--memory-limit off"):
        assert text in message


def test_the_estimate_grows_with_the_square_of_the_output_scale(small_photo) -> None:
    data = encoded(PILImage.fromarray(small_photo), "PNG")
    budget = memory.needed_bytes(64, 64, output_scale=2)  # room for a 2x output, not a 4x one
    assert memory.needed_bytes(64, 64, output_scale=4) > budget > memory.needed_bytes(64, 64)
    assert imageio.decode_image(data, memory_limit=budget, output_scale=2).pixels.shape == (64, 64, 3)
    with pytest.raises(NotEnoughMemory, match="with a 4x larger output"):
        imageio.decode_image(data, memory_limit=budget, output_scale=4)
    assert imageio.decode_image(data, memory_limit="off", output_scale=4).width == 64


def test_available_memory_respects_an_address_space_limit(monkeypatch) -> None:
    used = psutil.Process().memory_info().vms
    monkeypatch.setattr(resource, "getrlimit", lambda which: (used + 2**30, resource.RLIM_INFINITY))
    assert 2**30 - 2**28 < memory.address_space_headroom() <= 2**30
    assert memory.available_bytes(cgroup_root=Path("/nonexistent")) <= 2**30


def test_available_memory_respects_a_cgroup_limit(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("2147483648\n")
    (v2 / "memory.current").write_text("1073741824\n")
    (v2 / "memory.stat").write_text("anon 536870912\ninactive_file 536870912\n")  # page cache counts as free
    assert memory.cgroup_headroom(v2) == 3 * 2**29
    assert memory.available_bytes(cgroup_root=v2) <= 3 * 2**29

    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("1073741824\n")
    (v1 / "memory.usage_in_bytes").write_text("268435456\n")
    assert memory.cgroup_headroom(tmp_path / "v1") == 3 * 2**28

    (v2 / "memory.max").write_text("max\n")
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert memory.cgroup_headroom(v2) is None and memory.cgroup_headroom(tmp_path / "v1") is None


def test_a_memory_limit_that_is_not_a_size_is_a_usage_error(tmp_path: Path, small_photo) -> None:
    PILImage.fromarray(small_photo).save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["denoise", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--memory-limit", "lots"])
    assert result.exit_code == 2 and "'lots' is not a size" in result.stderr


def test_running_out_of_memory_while_decoding_is_that_files_one_line_failure(monkeypatch, small_photo) -> None:
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(decode, "upright_pixels", exhausted)
    with pytest.raises(NotEnoughMemory, match=r"^photo\.png: ran out of memory decoding this 64x64 image; [^\n]+$"):
        imageio.decode_image(encoded(PILImage.fromarray(small_photo), "PNG"), name="photo.png")


def test_running_out_of_memory_while_restoring_is_that_files_one_line_failure(tmp_path: Path, small_photo, ffdnet_weights, monkeypatch) -> None:
    from photofix.tasks import restore as pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    PILImage.fromarray(small_photo).save(folder / "big.png")
    PILImage.fromarray(small_photo).save(folder / "small.png")
    real_restore = pipeline.Restorer.restore

    def exhausted(self, image, on_tile=None):
        if image.meta.source_name.endswith("big.png"):
            raise MemoryError
        return real_restore(self, image, on_tile)

    monkeypatch.setattr(pipeline.Restorer, "restore", exhausted)
    result = CliRunner().invoke(app, ["denoise", str(folder), str(tmp_path / "out"), "--weights", str(ffdnet_weights["rgb"])])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if "big.png" in line]
    assert len(lines) == 1 and "ran out of memory restoring it" in lines[0] and "unexpected" not in lines[0]
    assert (tmp_path / "out" / "small.png").is_file()


# --- truncated files and noise on stderr -----------------------------------------------------


def _tiff(pixels: np.ndarray) -> bytes:
    """Our own TIFF writer puts the directory first, so a cut file keeps its header."""
    image = imageio.Image(pixels.astype(np.float32) / 255, None, imageio.ImageMeta("TIFF", "RGB", 8, False))
    return imageio.encode_image(image, format="TIFF")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "PNG16"])
def test_truncated_pixel_data_is_an_error(fmt: str, small_photo) -> None:
    if fmt == "TIFF":
        data = _tiff(small_photo)
    elif fmt == "PNG16":
        data = encoded(PILImage.fromarray(small_photo[..., 0].astype(np.uint16) * 257), "PNG")
    else:
        data = encoded(PILImage.fromarray(small_photo), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    with pytest.raises(UnsupportedImage, match="cut.img: file is truncated or corrupt"):
        imageio.decode_image(data[: len(data) * 3 // 4], name="cut.img")


def test_a_truncated_tiff_fails_without_libtiff_printing_to_stderr(small_photo, capfd) -> None:
    data = _tiff(small_photo)
    with pytest.raises(UnsupportedImage, match="truncated or corrupt"):
        imageio.decode_image(data[: len(data) // 2], name="cut.tif")
    assert capfd.readouterr().err == ""


def test_pillow_warnings_about_a_file_do_not_leak(small_photo) -> None:
    # An EXIF entry whose value lies past the end of the EXIF block: Pillow warns and skips it.
    exif = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010F, 2, 40, 5000) + struct.pack("<I", 0)
    data = encoded(PILImage.fromarray(small_photo), "JPEG", exif=b"Exif\x00\x00" + exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = imageio.decode_image(data, name="odd.jpg")
    assert image.width == 64
    assert [str(w.message) for w in caught] == []


# --- several frames: the first is restored, and the user is told -----------------------------


def _frames(small_photo: np.ndarray) -> list[PILImage.Image]:
    return [PILImage.fromarray(np.roll(small_photo, 8 * i, axis=1)) for i in range(3)]


def test_animated_webp_and_multi_page_tiff_give_the_first_frame_with_a_note(small_photo) -> None:
    first, *rest = _frames(small_photo)
    webp = imageio.decode_image(encoded(first, "WEBP", save_all=True, append_images=rest, lossless=True))
    assert webp.meta.note == "animated WebP: 3 frames, only the first was restored"
    np.testing.assert_array_equal(np.rint(webp.pixels * 255).astype(np.uint8), small_photo)
    tiff = imageio.decode_image(encoded(first, "TIFF", save_all=True, append_images=rest[:1]))
    assert tiff.meta.note == "multi-page TIFF: 2 pages, only the first was restored"
    assert imageio.decode_image(encoded(first, "PNG")).meta.note is None


def test_the_frames_note_reaches_the_per_file_line_and_json(tmp_path: Path, small_photo, ffdnet_weights) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    first, *rest = _frames(small_photo)
    first.save(folder / "clip.webp", save_all=True, append_images=rest, lossless=True)
    runner, weights = CliRunner(), str(ffdnet_weights["rgb"])

    shown = runner.invoke(app, ["denoise", str(folder), str(tmp_path / "a"), "--weights", weights, "--sigma", "20"])
    listed = runner.invoke(app, ["denoise", str(folder), str(tmp_path / "b"), "--weights", weights, "--sigma", "20", "--json"])

    note = "animated WebP: 3 frames, only the first was restored"
    assert shown.exit_code == 0 and any(line.startswith("done") and note in line for line in shown.stderr.splitlines())
    assert json.loads(listed.stdout.splitlines()[0])["details"]["note"] == note


# --- XMP larger than a JPEG segment ---------------------------------------------------------


def _big_xmp(ancestors: int = 3000) -> bytes:
    bag = "".join(f"<rdf:li>xmp.did:{i:040d}</rdf:li>" for i in range(ancestors))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5">'
        '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Holiday</rdf:li></rdf:Alt></dc:title>'
        f"<photoshop:DocumentAncestors><rdf:Bag>{bag}</rdf:Bag></photoshop:DocumentAncestors>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def _app1_payloads(jpeg: bytes) -> list[bytes]:
    """Payloads of the APP1 segments before the first non-APP marker."""
    payloads, pos = [], 2
    while jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        length = struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        if jpeg[pos + 1] == 0xE1:
            payloads.append(jpeg[pos + 4:pos + 2 + length])
        pos += 2 + length
    return payloads


def test_xmp_over_64kb_is_written_to_jpeg_as_extended_xmp_and_other_metadata_survives(tmp_path: Path, small_photo) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = PILImage.Exif()
    exif[0x010F] = "Camera Maker"  # Pillow writes no EXIF to a PNG without an IFD0 tag
    exif.get_ifd(0x8769)[0x9003] = "2001:02:03 04:05:06"  # DateTimeOriginal
    xmp = _big_xmp()
    assert len(xmp) > 150_000
    source = tmp_path / "scan.png"
    PILImage.fromarray(small_photo).save(source, icc_profile=icc, exif=exif, dpi=(300, 300),
                                         pnginfo=_itxt_xmp(xmp))

    written = imageio.write_image(imageio.read_image(source), tmp_path / "scan.jpg")

    with PILImage.open(written) as jpeg:
        assert jpeg.info["icc_profile"] == icc
        assert jpeg.getexif().get_ifd(0x8769)[0x9003] == "2001:02:03 04:05:06"
        assert jpeg.info["dpi"] == pytest.approx((300, 300))
        standard = jpeg.info["xmp"]
    assert len(standard) <= 65504
    ns = {"rdf": jpeg_xmp.RDF, "xmpNote": jpeg_xmp.NOTE, "dc": "http://purl.org/dc/elements/1.1/"}
    root = ET.fromstring(standard)
    assert root.find(".//dc:title/rdf:Alt/rdf:li", ns).text == "Holiday"  # small properties stay visible
    guid = next(d.get(f"{{{jpeg_xmp.NOTE}}}HasExtendedXMP") for d in root.iter(f"{{{jpeg_xmp.RDF}}}Description")
                if d.get(f"{{{jpeg_xmp.NOTE}}}HasExtendedXMP"))

    header = jpeg_xmp.EXTENSION_HEADER
    chunks = [p[len(header):] for p in _app1_payloads(written.read_bytes()) if p.startswith(header)]
    assert len(chunks) >= 3 and {c[:32].decode() for c in chunks} == {guid}
    full_length = struct.unpack(">I", chunks[0][32:36])[0]
    extended = bytearray(full_length)
    for chunk in chunks:
        offset = struct.unpack(">I", chunk[36:40])[0]
        extended[offset:offset + len(chunk) - 40] = chunk[40:]
    assert hashlib.md5(extended).hexdigest().upper() == guid
    ancestors = ET.fromstring(bytes(extended)).findall(".//rdf:Bag/rdf:li", ns)
    assert len(ancestors) == 3000 and ancestors[-1].text == f"xmp.did:{2999:040d}"


def _itxt_xmp(xmp: bytes):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
    return info
