"""Phone photos (HEIC/HEIF) and AVIF are read, not skipped in silence (issue 16, item 9).

HEIC samples are real files from phones and cameras that ship in pi-heif's source package
(fetched with pip, unpacked into pytest's cache, never installed); AVIF files are written here
by Pillow's own encoder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.errors import UnsupportedImage
from photofix.imageio import output_extension, read_image

runner = CliRunner()


@pytest.fixture(scope="session")
def heif_samples(request: pytest.FixtureRequest) -> Path:
    cache = Path(request.config.cache.mkdir("heif-samples"))
    images = cache / "images"
    if not (images / ".complete").exists():
        downloads = cache / "downloads"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                        "--disable-pip-version-check", "-d", str(downloads), "pi-heif==1.4.0"], check=True)
        archive = next(downloads.glob("pi_heif-1.4.0.tar.gz"))
        with tarfile.open(archive) as tf:
            wanted = [m for m in tf.getmembers() if "/tests/images/" in m.name and m.isfile() and "200MP" not in m.name]
            for member in wanted:
                member.name = member.name.split("/tests/images/", 1)[1]
            tf.extractall(images, members=wanted, filter="data")
        (images / ".complete").touch()
    return images


def test_a_phone_heic_reads_upright_with_its_exif(heif_samples: Path) -> None:
    image = read_image(heif_samples / "heif_special" / "xiaomi.heic")
    assert image.pixels.shape == (1944, 2592, 3) and image.pixels.dtype == np.float32
    assert image.meta.format == "HEIF" and image.meta.exif and 0.05 < image.pixels.mean() < 0.95
    grey = read_image(heif_samples / "heif_other" / "L_exif_xmp_iptc.heic")
    assert grey.pixels.shape[2] == 1 and grey.meta.grayscale and grey.meta.xmp


def test_heic_rotation_is_applied_once(heif_samples: Path) -> None:
    # a camera file stored landscape with a 90-degree turn: photofix gives it portrait, as viewers show it
    from photofix.imageio import decode

    decode._register_heif()
    with PILImage.open(heif_samples / "heif_special" / "guitar_cw90.hif") as shown:
        width, height = shown.size
    assert height > width  # the decoder applied the file's rotation
    image = read_image(heif_samples / "heif_special" / "guitar_cw90.hif")
    assert image.pixels.shape[:2] == (height, width)


def test_damaged_heic_fails_alone_with_one_line(heif_samples: Path) -> None:
    with pytest.raises(UnsupportedImage, match="corrupted.heic"):
        read_image(heif_samples / "heif_corrupted" / "corrupted.heic")


def test_a_folder_of_heic_photos_is_restored_to_jpeg(heif_samples: Path, tmp_path: Path) -> None:
    photos = tmp_path / "phone"
    photos.mkdir()
    for name in ("heif/RGB_8__128x128.heif", "heif/L_8__29x100.heif", "heif_other/L_exif_xmp_iptc.heic",
                 "heif_corrupted/corrupted.heic"):
        (photos / Path(name).name).write_bytes((heif_samples / name).read_bytes())
    out = tmp_path / "out"
    done = runner.invoke(app, ["scratch-repair", str(photos), str(out), "--model", "classical", "--json"])
    assert done.exit_code == 1, done.stderr  # the damaged one fails; the others are done
    records = {Path(r["input"]).name: r for r in map(json.loads, done.stdout.splitlines()) if "status" in r}
    assert records["corrupted.heic"]["status"] == "failed"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "L_8__29x100.jpg", "L_exif_xmp_iptc.jpg", "RGB_8__128x128.jpg"]
    with PILImage.open(out / "L_exif_xmp_iptc.jpg") as written:
        assert written.mode == "L" and written.getexif()  # grey kept grey, EXIF carried over
    assert output_extension("IMG_0001.HEIC") == ".jpg" and output_extension("x.avif") == ".avif"


def test_avif_is_read_and_written(tmp_path: Path) -> None:
    from skimage import data

    source = tmp_path / "in" / "astronaut.avif"
    source.parent.mkdir()
    PILImage.fromarray(data.astronaut()[:128, :160]).save(source, quality=90)
    image = read_image(source)
    assert image.pixels.shape == (128, 160, 3) and image.meta.format == "AVIF"
    out = tmp_path / "out"
    done = runner.invoke(app, ["scratch-repair", str(source.parent), str(out), "--model", "classical"])
    assert done.exit_code == 0, done.stderr
    with PILImage.open(out / "astronaut.avif") as written:
        assert written.format == "AVIF" and written.size == (160, 128)
        assert np.abs(np.asarray(written, np.float32) - data.astronaut()[:128, :160]).mean() < 12
    png = tmp_path / "in2" / "rocket.png"
    png.parent.mkdir()
    PILImage.fromarray(data.rocket()[:96, :96]).save(png)
    converted = runner.invoke(app, ["scratch-repair", str(png), str(tmp_path / "rocket.avif"), "--model", "classical"])
    assert converted.exit_code == 0, converted.stderr
    with PILImage.open(tmp_path / "rocket.avif") as written:
        assert written.format == "AVIF"
