"""Round trips through photofix.imageio: pixels, orientation, metadata, depth, errors."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import ExifTags, ImageCms, ImageFile, ImageOps
from PIL import Image as PILImage
from skimage import data as skdata

from photofix import imageio
from photofix.errors import ImageTooLarge, OutputWriteError, UnsupportedImage, UsageError
from photofix.imageio import Image, ImageMeta
from photofix.imageio.containers import write_png16, write_tiff
from photofix.imageio.decode import orient
from photofix.imageio.metadata import Extras

DATE_TAKEN = "2003:04:05 06:07:08"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6" '
       b'dc:creator="Ada"/></rdf:RDF></x:xmpmeta>')
DATE_TIME_ORIGINAL = ExifTags.Base.DateTimeOriginal
ORIENTATION = ExifTags.Base.Orientation


# --- fixtures ----------------------------------------------------------------


@cache
def photo() -> np.ndarray:
    """A real photo, not square, so a wrong rotation changes the shape."""
    return np.ascontiguousarray(skdata.astronaut()[40:136, 150:278])  # 96 x 128 x 3


@cache
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int | None = None, width: int | None = None) -> bytes:
    exif = PILImage.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[DATE_TIME_ORIGINAL] = DATE_TAKEN
    if width is not None:
        sub[ExifTags.Base.ExifImageWidth] = width
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 0.0)
    return exif.tobytes()


def encoded(img: PILImage.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def write_file(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def gradient16(height: int = 64, width: int = 80) -> np.ndarray:
    """16-bit values using thousands of distinct levels, which 8 bits cannot hold."""
    ramp = np.arange(height * width, dtype=np.uint32).reshape(height, width) * 13 % 65536
    return ramp.astype(np.uint16)


def rgb16() -> np.ndarray:
    g = gradient16()
    return np.dstack([g, g[::-1], 65535 - g])


def as_uint16(pixels: np.ndarray) -> np.ndarray:
    return np.rint(pixels * 65535).astype(np.uint16)


def cv2_bytes(ext: str, rgb_or_grey: np.ndarray) -> bytes:
    arr = rgb_or_grey
    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    ok, buffer = cv2.imencode(ext, np.ascontiguousarray(arr))
    assert ok
    return buffer.tobytes()


def png_bit_depth(payload: bytes) -> int:
    return payload[24]


def pillow_exif_date(img: PILImage.Image) -> str | None:
    return img.getexif().get_ifd(ExifTags.IFD.Exif).get(DATE_TIME_ORIGINAL)


def rgb_image(pixels: np.ndarray, **meta) -> Image:
    fields = dict(format="PNG", mode="RGB", bit_depth=8, grayscale=False)
    fields.update(meta)
    return Image(pixels=pixels, alpha=None, meta=ImageMeta(**fields))


# --- contract ----------------------------------------------------------------


def test_pixels_are_float32_contiguous_unit_range():
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()), "PNG"))
    assert img.pixels.dtype == np.float32 and img.pixels.flags.c_contiguous
    assert (img.height, img.width, img.pixels.shape[2]) == (96, 128, 3)
    assert img.alpha is None and img.meta.bit_depth == 8 and not img.meta.grayscale
    np.testing.assert_array_equal(np.rint(img.pixels * 255).astype(np.uint8), photo())


def test_format_for_path():
    assert imageio.format_for_path("a/B.JPG") == "JPEG"
    assert imageio.format_for_path("x.tif") == "TIFF"
    assert sorted(imageio.WRITABLE_EXTENSIONS) == [
        ".avif", ".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"]
    assert sorted(imageio.SUPPORTED_EXTENSIONS - imageio.WRITABLE_EXTENSIONS) == [".heic", ".heif", ".hif"]  # read only
    with pytest.raises(UsageError, match=r"out\.heic.*not an image format photofix writes"):
        imageio.format_for_path("out.heic")
    with pytest.raises(UsageError, match=r"out\.gif.*\.gif"):
        imageio.format_for_path("out.gif")


# --- orientation -------------------------------------------------------------


def test_orientation_6_jpeg_is_read_upright_and_written_upright(tmp_path):
    source = write_file(tmp_path / "rotated.jpg", encoded(
        PILImage.fromarray(photo()), "JPEG", quality=95, exif=camera_exif(orientation=6), xmp=XMP))

    img = imageio.read_image(source)

    assert img.pixels.shape == (128, 96, 3)  # turned a quarter, as a viewer shows it
    upright = np.rot90(photo(), -1) / 255
    wrong_way = np.rot90(photo(), 1) / 255
    assert np.abs(img.pixels - upright).mean() < 0.02 < np.abs(img.pixels - wrong_way).mean()
    stored = PILImage.Exif()
    stored.load(img.meta.exif)
    assert stored[ORIENTATION] == 1

    out = imageio.write_image(img, tmp_path / "out.jpg")

    with PILImage.open(out) as written:
        assert written.size == (96, 128)
        assert written.getexif().get(ORIENTATION, 1) == 1
        assert b'tiff:Orientation="6"' not in written.info["xmp"]
        again = np.asarray(ImageOps.exif_transpose(written))
    assert again.shape == (128, 96, 3)  # a viewer applying EXIF does not rotate it again
    assert np.abs(again / 255 - upright).mean() < 0.03


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_for_every_orientation(orientation):
    arr = photo()[:5, :7]
    exif = PILImage.Exif()
    exif[ORIENTATION] = orientation
    with PILImage.open(io.BytesIO(encoded(PILImage.fromarray(arr), "PNG", exif=exif))) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    np.testing.assert_array_equal(orient(arr, orientation), expected)


@pytest.mark.parametrize("writer,ext", [(write_png16, "png"),
                                        (write_tiff, "tiff")])
def test_16bit_colour_with_orientation_6_is_read_upright(writer, ext):
    rgb = rgb16()
    buffer = io.BytesIO()
    writer(buffer, rgb, Extras(exif=camera_exif(orientation=6),
                                icc_profile=None, xmp=None, dpi=None))

    img = imageio.decode_image(buffer.getvalue(), name=f"turned.{ext}")

    assert img.meta.bit_depth == 16
    np.testing.assert_array_equal(as_uint16(img.pixels), np.rot90(rgb, -1))


# --- metadata ----------------------------------------------------------------


@pytest.mark.parametrize("out_ext", ["jpg", "png", "tif", "webp"])
def test_icc_profile_is_kept(tmp_path, out_ext):
    source = write_file(tmp_path / "in.png", encoded(
        PILImage.fromarray(photo()), "PNG", icc_profile=srgb_icc()))
    img = imageio.read_image(source)
    assert img.meta.icc_profile == srgb_icc()

    out = imageio.write_image(img, tmp_path / f"out.{out_ext}")

    with PILImage.open(out) as written:
        assert written.info.get("icc_profile") == srgb_icc()


@pytest.mark.parametrize("out_ext", ["jpg", "png", "tif", "webp"])
def test_exif_date_taken_and_gps_are_kept(tmp_path, out_ext):
    source = write_file(tmp_path / "in.jpg", encoded(
        PILImage.fromarray(photo()), "JPEG", exif=camera_exif()))
    img = imageio.read_image(source)

    out = imageio.write_image(img, tmp_path / f"out.{out_ext}")

    with PILImage.open(out) as written:
        exif = written.getexif()
        assert exif.get_ifd(ExifTags.IFD.Exif)[DATE_TIME_ORIGINAL] == DATE_TAKEN
        assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert exif[ExifTags.Base.Make] == "Canon"


def test_exif_of_a_tiff_source_keeps_photo_tags_not_layout_tags(tmp_path):
    source = write_file(tmp_path / "in.tif", encoded(
        PILImage.fromarray(photo()), "TIFF", exif=camera_exif()))
    img = imageio.read_image(source)

    exif = PILImage.Exif()
    exif.load(img.meta.exif)
    assert exif.get_ifd(ExifTags.IFD.Exif)[DATE_TIME_ORIGINAL] == DATE_TAKEN
    assert ExifTags.Base.StripOffsets not in exif and ExifTags.Base.ImageWidth not in exif
    with PILImage.open(imageio.write_image(img, tmp_path / "out.jpg")) as written:
        assert pillow_exif_date(written) == DATE_TAKEN


def test_exif_pixel_dimensions_follow_the_output_size(tmp_path):
    source = write_file(tmp_path / "in.jpg", encoded(
        PILImage.fromarray(photo()), "JPEG", exif=camera_exif(width=128)))
    img = imageio.read_image(source)
    img.pixels = np.ascontiguousarray(img.pixels.repeat(2, axis=0).repeat(2, axis=1))  # "upscaled"

    with PILImage.open(imageio.write_image(img, tmp_path / "out.jpg")) as written:
        assert written.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifImageWidth] == 256


@pytest.mark.parametrize("src_fmt,out_ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "tif"),
                                             ("JPEG", "webp")])
def test_xmp_is_kept(tmp_path, src_fmt, out_ext):
    options = {"pnginfo": _png_xmp(XMP)} if src_fmt == "PNG" else {"xmp": XMP}
    payload = encoded(PILImage.fromarray(photo()), src_fmt, **options)
    source = write_file(tmp_path / "in.img", payload)
    img = imageio.read_image(source)
    assert b'dc:creator="Ada"' in img.meta.xmp

    with PILImage.open(imageio.write_image(img, tmp_path / f"out.{out_ext}")) as written:
        assert b'dc:creator="Ada"' in written.info["xmp"]


def _png_xmp(xmp: bytes):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


@pytest.mark.parametrize("src_fmt,out_ext", [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif"),
                                             ("PNG", "jpg")])
def test_dpi_is_kept(tmp_path, src_fmt, out_ext):
    source = write_file(tmp_path / "in.img", encoded(
        PILImage.fromarray(photo()), src_fmt, dpi=(300, 150)))
    img = imageio.read_image(source)

    with PILImage.open(imageio.write_image(img, tmp_path / f"out.{out_ext}")) as written:
        assert written.info["dpi"] == pytest.approx((300, 150), rel=1e-3)  # PNG: whole dots/metre


# --- 16 bits -----------------------------------------------------------------


@pytest.mark.parametrize("values", [gradient16(), rgb16()], ids=["grey", "rgb"])
def test_16bit_png_stays_16bit_with_exact_values(tmp_path, values):
    assert len(np.unique(values)) > 256
    source = write_file(tmp_path / "in.png", cv2_bytes(".png", values))
    img = imageio.read_image(source)
    assert img.meta.bit_depth == 16
    assert img.meta.grayscale == (values.ndim == 2)

    out = imageio.write_image(img, tmp_path / "out.png")

    payload = out.read_bytes()
    assert png_bit_depth(payload) == 16
    back = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = values if values.ndim == 2 else values[..., ::-1]  # OpenCV is BGR
    np.testing.assert_array_equal(back, expected)
    np.testing.assert_array_equal(as_uint16(imageio.read_image(out).pixels).squeeze(), values)


@pytest.mark.parametrize("values",
                         [gradient16(), rgb16(), np.dstack([rgb16(), gradient16()[::-1]])],
                         ids=["grey", "rgb", "rgba"])
def test_16bit_tiff_stays_16bit_with_exact_values(tmp_path, values):
    source = write_file(tmp_path / "in.tif", cv2_bytes(".tiff", values))
    img = imageio.read_image(source)
    assert img.meta.bit_depth == 16 and img.pixels.shape[2] == (1 if values.ndim == 2 else 3)

    out = imageio.write_image(img, tmp_path / "out.tiff")

    back = cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    if values.ndim == 3:
        back = back[..., [2, 1, 0, 3][: values.shape[2]]]  # OpenCV is BGR(A)
    np.testing.assert_array_equal(back, values)
    again = imageio.read_image(out)
    colour = values[..., :3] if values.ndim == 3 else values[..., None]
    np.testing.assert_array_equal(as_uint16(again.pixels), colour)
    if values.ndim == 3 and values.shape[2] == 4:
        np.testing.assert_array_equal(as_uint16(again.alpha), values[..., 3])


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_writers_carry_metadata(tmp_path, ext):
    img = rgb_image(rgb16() / np.float32(65535), bit_depth=16, exif=camera_exif(),
                    icc_profile=srgb_icc(), xmp=XMP, dpi=(300.0, 300.0))

    out = imageio.write_image(img, tmp_path / f"out.{ext}")

    with PILImage.open(out) as written:
        assert pillow_exif_date(written) == DATE_TAKEN
        assert written.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert written.info["icc_profile"] == srgb_icc()
        assert b'dc:creator="Ada"' in written.info["xmp"]
        assert written.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    back = imageio.read_image(out)
    assert back.meta.bit_depth == 16
    np.testing.assert_array_equal(as_uint16(back.pixels), rgb16())


def test_16bit_png_grey_with_alpha_is_read_as_grey(tmp_path):
    grey, alpha = gradient16(), gradient16()[::-1]
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in np.dstack([grey, alpha]))
    payload = (b"\x89PNG\r\n\x1a\n"
               + _chunk(b"IHDR", struct.pack(">IIBBBBB", 80, 64, 16, 4, 0, 0, 0))
               + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))

    img = imageio.decode_image(payload, name="la16.png")

    assert img.meta.grayscale and img.meta.bit_depth == 16 and img.pixels.shape[2] == 1
    np.testing.assert_array_equal(as_uint16(img.pixels[..., 0]), grey)
    np.testing.assert_array_equal(as_uint16(img.alpha), alpha)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_8bit_source_is_written_8bit_even_to_png(tmp_path):
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()), "JPEG"))
    assert png_bit_depth(imageio.encode_image(img, format="PNG")) == 8


# --- alpha, grey, palette, CMYK, odd modes ------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_rgba_keeps_alpha(fmt):
    ramp = np.linspace(0, 255, 32 * 40).reshape(32, 40).astype(np.uint8)  # includes alpha 0
    rgba = np.dstack([photo()[:32, :40], ramp])
    img = imageio.decode_image(encoded(PILImage.fromarray(rgba), "PNG"))
    assert img.alpha is not None and img.alpha.shape == (32, 40)

    back = imageio.decode_image(imageio.encode_image(img, format=fmt))

    np.testing.assert_array_equal(np.rint(back.alpha * 255).astype(np.uint8), rgba[..., 3])
    np.testing.assert_array_equal(np.rint(back.pixels * 255).astype(np.uint8), rgba[..., :3])


def test_jpeg_output_drops_alpha():
    rgba = np.dstack([photo(), np.full(photo().shape[:2], 128, np.uint8)])
    img = imageio.decode_image(encoded(PILImage.fromarray(rgba), "PNG"))
    with PILImage.open(io.BytesIO(imageio.encode_image(img, format="JPEG"))) as written:
        assert written.mode == "RGB"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_grey_stays_grey(fmt):
    grey = photo()[..., 1]
    img = imageio.decode_image(encoded(PILImage.fromarray(grey), fmt))
    assert img.meta.grayscale and img.pixels.shape == (96, 128, 1)

    with PILImage.open(io.BytesIO(imageio.encode_image(img, format=fmt))) as written:
        assert written.mode == "L"


def test_grey_source_processed_as_rgb_is_written_grey_unless_colourised():
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()[..., 1]), "PNG"))
    img.pixels = np.ascontiguousarray(np.repeat(img.pixels, 3, axis=2))
    with PILImage.open(io.BytesIO(imageio.encode_image(img, format="PNG"))) as written:
        assert written.mode == "L"

    img.pixels[..., 0] *= 0.5  # a colourised result must keep its colour
    with PILImage.open(io.BytesIO(imageio.encode_image(img, format="PNG"))) as written:
        assert written.mode == "RGB"


def test_palette_converts_to_rgb_and_transparency_to_alpha():
    palette_img = PILImage.fromarray(photo()).quantize(16)
    plain = imageio.decode_image(encoded(palette_img, "PNG"))
    assert plain.meta.mode == "P" and plain.pixels.shape[2] == 3 and plain.alpha is None
    expected = np.asarray(palette_img.convert("RGB"))
    np.testing.assert_array_equal(np.rint(plain.pixels * 255).astype(np.uint8), expected)

    with_hole = imageio.decode_image(encoded(palette_img, "PNG", transparency=0))
    index = np.asarray(palette_img)
    assert with_hole.alpha is not None
    np.testing.assert_array_equal(with_hole.alpha == 0, index == 0)


def test_cmyk_jpeg_converts_to_rgb_and_drops_its_profile():
    cmyk = PILImage.fromarray(photo()).convert("CMYK")
    img = imageio.decode_image(encoded(cmyk, "JPEG", quality=95, icc_profile=b"fake CMYK profile"))

    assert img.meta.mode == "CMYK" and img.pixels.shape == (96, 128, 3)
    assert img.meta.icc_profile is None
    assert np.abs(img.pixels - photo() / 255).mean() < 0.03


def test_phone_mpo_jpeg_reads_as_jpeg():
    first, second = PILImage.fromarray(photo()), PILImage.fromarray(photo()[::-1])
    img = imageio.decode_image(encoded(first, "MPO", save_all=True, append_images=[second],
                                       quality=90))
    assert img.meta.format == "JPEG" and img.meta.quality == 90
    assert np.abs(img.pixels - photo() / 255).mean() < 0.02  # the first frame


def test_bilevel_float_and_int_modes_become_grey():
    bilevel = imageio.decode_image(encoded(PILImage.fromarray(photo()[..., 0] > 128), "PNG"))
    assert bilevel.meta.grayscale and set(np.unique(bilevel.pixels)) == {0.0, 1.0}

    ramp = np.linspace(0, 1, 64 * 80, dtype=np.float32).reshape(64, 80)
    floats = imageio.decode_image(encoded(PILImage.fromarray(ramp, "F"), "TIFF"))
    assert floats.meta.grayscale and floats.meta.bit_depth == 16
    np.testing.assert_allclose(floats.pixels[..., 0], ramp, atol=1e-6)

    ints = imageio.decode_image(encoded(PILImage.fromarray(gradient16().astype(np.int32)), "TIFF"))
    assert ints.meta.mode == "I" and ints.meta.bit_depth == 16
    np.testing.assert_array_equal(as_uint16(ints.pixels[..., 0]), gradient16())


# --- writing rules -----------------------------------------------------------


def _jpeg_quality_of(payload: bytes) -> int:
    return imageio.decode_image(payload).meta.quality


def test_jpeg_quality_defaults():
    source80 = imageio.decode_image(encoded(PILImage.fromarray(photo()), "JPEG", quality=80))
    assert source80.meta.quality == 80
    assert _jpeg_quality_of(imageio.encode_image(source80, format="JPEG")) == 80
    assert _jpeg_quality_of(imageio.encode_image(source80, format="JPEG", quality=60)) == 60

    from_png = imageio.decode_image(encoded(PILImage.fromarray(photo()), "PNG"))
    assert _jpeg_quality_of(imageio.encode_image(from_png, format="JPEG")) == 95

    source100 = imageio.decode_image(encoded(PILImage.fromarray(photo()), "JPEG", quality=100))
    assert _jpeg_quality_of(imageio.encode_image(source100, format="JPEG")) == 95

    with pytest.raises(UsageError, match="quality"):
        imageio.encode_image(from_png, format="JPEG", quality=0)


def test_jpeg_subsampling_of_the_source_is_kept():
    from PIL import JpegImagePlugin

    source = imageio.decode_image(encoded(PILImage.fromarray(photo()), "JPEG", subsampling=0))
    assert source.meta.subsampling == 0
    with PILImage.open(io.BytesIO(imageio.encode_image(source, format="JPEG"))) as written:
        assert JpegImagePlugin.get_sampling(written) == 0


def test_values_are_clipped_and_rounded_not_truncated():
    pixels = np.array([[[100.6 / 255, -0.2, 1.3]], [[np.nan, 254.5001 / 255, 0.4 / 255]]],
                      dtype=np.float32)
    payload = imageio.encode_image(rgb_image(pixels), format="PNG")
    with PILImage.open(io.BytesIO(payload)) as written:
        np.testing.assert_array_equal(np.asarray(written), [[[101, 0, 255]], [[0, 255, 0]]])


def test_bad_pixel_arrays_are_refused_before_writing(tmp_path):
    with pytest.raises(UsageError, match="H x W"):
        imageio.write_image(rgb_image(np.zeros((4, 4, 2), np.float32)), tmp_path / "x.png")
    with pytest.raises(UsageError, match="floats"):
        imageio.write_image(rgb_image(np.zeros((4, 4, 3), np.int32)), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_write_creates_folders_and_returns_the_path(tmp_path):
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()), "PNG"))
    target = tmp_path / "nested" / "déjà vu" / "photo.png"

    assert imageio.write_image(img, target) == target

    assert [p.name for p in target.parent.iterdir()] == ["photo.png"]  # no temp file left
    np.testing.assert_array_equal(imageio.read_image(target).pixels, img.pixels)


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_output(tmp_path, monkeypatch):
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()), "PNG"))
    target = write_file(tmp_path / "out.png", b"previous run")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(PILImage.Image, "save", broken_save)
    with pytest.raises(OutputWriteError, match=r"out\.png.*disk full"):
        imageio.write_image(img, target)

    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert target.read_bytes() == b"previous run"


def test_write_format_override_and_unknown_format(tmp_path):
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()), "PNG"))
    out = imageio.write_image(img, tmp_path / "photo.out", format="jpg")
    with PILImage.open(out) as written:
        assert written.format == "JPEG"
    with pytest.raises(UsageError, match="GIF"):
        imageio.encode_image(img, format="GIF")


# --- bad inputs --------------------------------------------------------------


def _truncated_jpeg(path: Path) -> Path:
    payload = encoded(PILImage.fromarray(photo()), "JPEG")
    return write_file(path, payload[: len(payload) // 2])


@pytest.mark.parametrize("make,expected", [
    (_truncated_jpeg, "truncated or corrupt"),
    (lambda p: write_file(p, b"just some notes, not a photo\n"), "not an image"),
    (lambda p: write_file(p, b""), "empty"),
    (lambda p: (p.mkdir(), p)[1], "cannot read"),
    (lambda p: p, "cannot read"),  # missing
    (lambda p: write_file(p, encoded(PILImage.fromarray(photo()), "GIF")), "not an image"),
], ids=["truncated", "text", "zero-bytes", "directory", "missing", "gif"])
def test_bad_inputs_raise_unsupported_image_naming_the_file(tmp_path, make, expected):
    path = make(tmp_path / "holiday.jpg")
    with pytest.raises(UnsupportedImage, match=expected) as caught:
        imageio.read_image(path)
    assert str(path) in str(caught.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_unreadable_file_raises_unsupported_image(tmp_path, monkeypatch):
    path = write_file(tmp_path / "secret.png", encoded(PILImage.fromarray(photo()), "PNG"))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(imageio, "open", denied, raising=False)  # root ignores chmod 000
    with pytest.raises(UnsupportedImage, match=r"secret\.png.*Permission denied"):
        imageio.read_image(path)


def test_decompression_bomb_is_refused_with_a_way_out():
    small = encoded(PILImage.fromarray(photo()), "PNG")
    with pytest.raises(ImageTooLarge, match=r"scan\.png.*--max-pixels"):
        imageio.decode_image(small, name="scan.png", max_pixels=1000)

    # 10 gigapixels declared in the header; refused before any pixel is decoded.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    header_only = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                   + _chunk(b"IDAT", zlib.compress(b"\0" * 10)) + _chunk(b"IEND", b""))
    with pytest.raises(ImageTooLarge, match="100000x100000"):
        imageio.decode_image(header_only, name="bomb.png")


def test_our_limit_not_pillows_decides(monkeypatch):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)
    img = imageio.decode_image(encoded(PILImage.fromarray(photo()), "PNG"), max_pixels=None)
    assert img.pixels.shape == (96, 128, 3)
    assert PILImage.MAX_IMAGE_PIXELS == 100  # Pillow's setting is left as it was
