"""Provenance records: XMP that other readers understand, the run log, and the --steps language."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from photofix import imageio
from photofix.errors import UsageError
from photofix.run.provenance import Recipe, Record, RunLog, Step, new_record, read_xmp_record, record_from_xmp, with_record
from photofix.tasks import PRESETS, parse_steps, preset_steps

RECIPE = Recipe((Step("denoise", "ffdnet-color", "ab" * 32, {"sigma": 15.0}), Step("upscale", "dat-light-x2", "cd" * 32, {"scale": 2.0})))

LIGHTROOM_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b'  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">\n'
    b'   <dc:creator><rdf:Seq><rdf:li>Ada Lovelace</rdf:li></rdf:Seq></dc:creator>\n'
    b'   <xmp:Rating>4</xmp:Rating>\n  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>'
)


def _record(input_sha: str = "11" * 32) -> Record:
    return new_record("scans/grandma <1>.tif", input_sha, "grandma.tif", RECIPE, {"denoise.sigma": 15.0})


def test_fingerprint_changes_with_any_setting_and_only_then() -> None:
    same = Recipe((Step("denoise", "ffdnet-color", "ab" * 32, {"sigma": 15.0}), Step("upscale", "dat-light-x2", "cd" * 32, {"scale": 2.0})))
    assert same.fingerprint == RECIPE.fingerprint
    changed = [
        Recipe((Step("denoise", "ffdnet-color", "ab" * 32, {"sigma": 16.0}), RECIPE.steps[1])),
        Recipe((RECIPE.steps[1], RECIPE.steps[0])),  # order matters
        Recipe((Step("denoise", "ffdnet-color", "ef" * 32, {"sigma": 15.0}), RECIPE.steps[1])),  # other weights
        Recipe(RECIPE.steps, output_format="JPEG"),
        Recipe(RECIPE.steps, quality=80),
    ]
    assert len({r.fingerprint for r in changed} | {RECIPE.fingerprint}) == len(changed) + 1


def test_xmp_record_is_added_to_a_source_packet_without_losing_it() -> None:
    merged = with_record(LIGHTROOM_XMP, _record())
    assert b"Ada Lovelace" in merged and b"<xmp:Rating>4</xmp:Rating>" in merged
    found = record_from_xmp(merged)
    assert found["InputSHA256"] == "11" * 32 and found["Recipe"] == RECIPE.fingerprint
    assert found["Input"] == "grandma <1>.tif"  # escaped on the way in, read back intact
    assert [s["task"] for s in found["Steps"]] == ["denoise", "upscale"]
    assert found["Steps"][0]["params"] == {"sigma": 15.0} and found["Steps"][1]["weights_sha256"] == "cd" * 32
    # A second run replaces photofix's description instead of adding another.
    again = with_record(merged, _record("22" * 32))
    assert again.count(b"xmlns:photofix=") == 1 and record_from_xmp(again)["InputSHA256"] == "22" * 32


def test_unextendable_xmp_is_kept_as_it_was() -> None:
    broken = b"<x:xmpmeta><rdf:RDF>not closed"
    assert with_record(broken, _record()) == broken


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_record_written_with_the_image_is_readable_by_pillow(tmp_path: Path, astronaut: np.ndarray, fmt: str) -> None:
    image = imageio.decode_image(_png(astronaut[:48, :48]), name="a.png")
    image.meta.xmp = with_record(LIGHTROOM_XMP, _record())
    target = tmp_path / f"out.{fmt.lower()}"
    imageio.write_image(image, target, format=fmt)
    assert read_xmp_record(target)["Recipe"] == RECIPE.fingerprint
    with PILImage.open(target) as img:
        xmp = img.getxmp()
    descriptions = xmp["xmpmeta"]["RDF"]["Description"]
    ours = next(d for d in descriptions if "InputSHA256" in d)
    assert ours["InputSHA256"] == "11" * 32 and ours["Recipe"] == RECIPE.fingerprint


def test_record_is_readable_by_exiftool(tmp_path: Path, astronaut: np.ndarray, require_program) -> None:
    exiftool = require_program("exiftool", "libimage-exiftool-perl")
    image = imageio.decode_image(_png(astronaut[:48, :48]), name="a.png")
    image.meta.xmp = with_record(None, _record())
    target = tmp_path / "out.jpg"
    imageio.write_image(image, target)
    shown = json.loads(subprocess.run([exiftool, "-j", "-struct", "-XMP:all", str(target)], capture_output=True, text=True, check=True).stdout)[0]
    assert shown["InputSHA256"] == "11" * 32 and shown["Recipe"] == RECIPE.fingerprint
    assert [s["Task"] for s in shown["Steps"]] == ["denoise", "upscale"]
    assert shown["Steps"][0]["Model"] == "ffdnet-color"


def test_run_log_keeps_the_latest_record_and_checks_the_file(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    output = tmp_path / "sub" / "a.png"
    output.parent.mkdir()
    output.write_bytes(b"first")
    first = _record()
    first.output, first.output_sha256 = log.key(output), __import__("hashlib").sha256(b"first").hexdigest()
    log.append(first)
    with log.path.open("a") as fp:
        fp.write('{"torn": ')  # a run killed mid-line leaves at most this
    fresh = RunLog(tmp_path)
    assert fresh.record_for(output).matches("11" * 32, RECIPE.fingerprint)
    output.write_bytes(b"edited by hand")  # no XMP, and no longer what was logged
    assert RunLog(tmp_path).record_for(output) is None


def test_steps_language() -> None:
    steps = parse_steps("scratch-repair:model=classical:dilate=3, denoise:sigma=15 ,upscale:scale=2,colorize:render-size=512")
    assert [s.task for s in steps] == ["scratch-repair", "denoise", "upscale", "colorize"]
    assert steps[0].model == "classical" and steps[0].task_options == {"dilate": 3}
    assert steps[1].task_options == {"sigma": 15.0} and steps[3].task_options == {"render_size": 512}
    assert [s.task for s in preset_steps("old-photo")] == ["scratch-repair", "denoise", "colorize", "upscale", "faces"]
    assert preset_steps("old-photo")[-2].task_options == {"scale": 2.0}
    assert set(PRESETS) == {"old-photo", "phone"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("denoise,sharpen", "step 2 'sharpen': unknown task"),
        ("denoise:sigma=loud", "sigma='loud': must be a number from 0 to 255"),
        ("denoise:sigma=300", "must be between 0 and 255"),
        ("upscale:sigma=3", "unknown option 'sigma'; upscale takes model, weights, scale"),
        ("denoise:sigma", "is not key=value"),
        ("denoise,,upscale", "separated by commas"),
        ("denoise:model=a:weights=/etc/hostname", "model and weights both choose"),
        ("denoise:weights=/no/such.pth", "does not exist"),
        ("deshadow:match-texture=maybe", "must be true or false"),
    ],
)
def test_steps_language_errors_name_the_step(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_steps(text)


def _png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
