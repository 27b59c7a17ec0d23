"""weights_manifest.toml: the packaged file, lookups, defaults and every validation rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from photofix.errors import ManifestError, UnknownModel, UsageError
from photofix.store.manifest import HubSource, UrlSource, load_manifest, parse_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECTED_IDS = {
    "gfpgan-v1.4",
    "codeformer",
    "restoreformer",
    "yunet-2023mar",
    "shadowformer-istd-plus",
    "fdrnet-sbu",
    "bopb-scratch-detect",
    "big-lama",
    "ddcolor-tiny",
    "ddcolor-large",
    "ddcolor-artistic",
    "scunet-color-real",
    "ffdnet-color",
    "ffdnet-gray",
    "realesrgan-x4plus",
    "realesrgan-general-x4v3",
    "dat-x4",
    "nafnet-sidd-width64",
    "nafnet-sidd-width32",
    "drunet-color",
    "restormer-real-denoise",
    "nafnet-gopro-width64",
    "nafnet-gopro-width32",
    "restormer-motion-deblur",
    "restormer-derain",
    "restormer-defocus-deblur",
}

# A small valid manifest; each validation test breaks exactly one thing in it.
VALID = """
schema = 1

[defaults.denoise]
default = "balanced"
fast = "small"
balanced = "big"

[defaults.upscale]
default = "fast"
fast = "up"

[[model]]
id = "small"
task = "denoise"
arch = "FFDNet"
tier = "fast"
license = "MIT"
commercial_use = true
sha256 = "unverified"
tile_overlap = 16
notes = "tiny"

[model.source]
url = "https://example.org/small.pth"
filename = "small.pth"

[model.params]
blind = false
sigma_range = [0, 75]

[[model]]
id = "big"
task = "denoise"
arch = "SCUNet"
tier = "balanced"
license = "Apache-2.0"
commercial_use = true
sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
size_bytes = 100
tile_overlap = 32

[model.source]
hf = "owner/repo"
filename = "big.pth"
revision = "0123456789abcdef0123456789abcdef01234567"

[[model]]
id = "up"
task = "upscale"
arch = "ESRGAN"
tier = "fast"
license = "BSD-3-Clause"
commercial_use = true
sha256 = "unverified"
tile_overlap = 32

[model.source]
hf = "owner/up"
filename = "sub/up.pth"
revision = "0123456789abcdef0123456789abcdef01234567"
repo_type = "dataset"

[model.params]
scale = 4
"""


def test_valid_fixture_parses():
    m = parse_manifest(VALID)
    assert [e.id for e in m.entries] == ["small", "big", "up"]
    big = m.get("big")
    assert big.sha256 == "a" * 64  # normalised to lowercase
    assert big.verified and not m.get("small").verified
    assert m.get("up").source == HubSource("owner/up", "sub/up.pth", "0123456789abcdef0123456789abcdef01234567", "dataset")
    assert m.get("small").source == UrlSource("https://example.org/small.pth", "small.pth")
    assert m.get("small").params["sigma_range"] == (0, 75)


# --- the packaged manifest ----------------------------------------------------


def test_packaged_manifest_loads_with_expected_models():
    m = load_manifest()
    assert {e.id for e in m.entries} == EXPECTED_IDS
    for e in m.entries:
        if isinstance(e.source, HubSource):
            assert re.fullmatch(r"[0-9a-f]{40}", e.source.revision), e.id
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.id
        assert e.license and isinstance(e.commercial_use, bool)


def test_packaged_manifest_facts():
    m = load_manifest()
    scunet = m.get("scunet-color-real")
    assert scunet.source == HubSource(
        "deepinv/scunet", "scunet_color_real_psnr.pth", "cb7773c9a39df182a3cc22f20b974b314c28cbbd"
    )
    assert scunet.sha256.startswith("fa78899b") and scunet.size_bytes == 71982841
    assert scunet.params["blind"] is True and scunet.arch == "SCUNet"
    ffdnet = m.get("ffdnet-color")
    assert isinstance(ffdnet.source, UrlSource) and ffdnet.source.url.endswith("/ffdnet_color.pth")
    assert not ffdnet.verified and ffdnet.params["blind"] is False and ffdnet.arch == "FFDNet"
    assert m.get("ffdnet-gray").source.filename == "ffdnet_gray.pth"
    compact = m.get("realesrgan-general-x4v3")
    assert compact.arch == "Compact" and not compact.verified
    assert compact.source.filename == "RealESRGAN_x4plus.pth" and "compact" in compact.notes.lower()
    assert m.get("realesrgan-x4plus").sha256.startswith("4fa0d389")
    dat = m.get("dat-x4")
    assert dat.source.filename.endswith(".safetensors") and dat.tier == "best"
    assert all(m.get(i).params["scale"] == 4 for i in ("realesrgan-x4plus", "realesrgan-general-x4v3", "dat-x4"))


def test_packaged_resource_is_the_top_level_file():
    packaged = REPO_ROOT / "src" / "photofix" / "weights_manifest.toml"
    assert packaged.read_bytes() == (REPO_ROOT / "weights_manifest.toml").read_bytes()


def test_packaged_defaults():
    m = load_manifest()
    assert m.default_for("denoise").id == "scunet-color-real"
    assert m.default_for("upscale").id == "realesrgan-x4plus"
    assert m.default_for("upscale", "fast").id == "realesrgan-general-x4v3"
    assert m.default_for("upscale", "best").id == "dat-x4"
    assert m.default_for("denoise", "fast").id == "ffdnet-color"
    assert m.default_for("denoise", "best").id == "nafnet-sidd-width64"
    assert m.default_for("deblur").id == "nafnet-gopro-width64"
    assert m.default_for("deblur", "fast").id == "nafnet-gopro-width32"


def test_non_commercial_models_are_never_defaults():
    m = load_manifest()
    defaults = {m.default_for(t, tier).id for t in m.defaults for tier in m.tiers(t)}
    non_commercial = {e.id for e in m.entries if not e.commercial_use}
    assert non_commercial >= {"restormer-derain", "restormer-motion-deblur", "restormer-real-denoise"}
    assert not defaults & non_commercial
    assert "derain" not in m.defaults  # its only model is non-commercial
    assert m.tiers("upscale") == ("fast", "balanced", "best")


# --- lookups ------------------------------------------------------------------


def test_get_unknown_suggests_close_ids():
    m = load_manifest()
    with pytest.raises(UnknownModel) as info:
        m.get("scunet")
    assert "scunet-color-real" in str(info.value)
    assert "photofix models list" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_for_task_filters():
    m = parse_manifest(VALID)
    assert [e.id for e in m.for_task("denoise")] == ["small", "big"]
    assert [e.id for e in m.for_task("upscale")] == ["up"]
    assert m.for_task("colorize") == ()


def test_default_for_tiers_and_errors():
    m = parse_manifest(VALID)
    assert m.default_for("denoise").id == "big"
    assert m.default_for("denoise", "fast").id == "small"
    assert m.default_for("upscale").id == "up"
    assert m.tiers("denoise") == ("fast", "balanced")
    with pytest.raises(UsageError, match="best"):
        m.default_for("upscale", "best")
    with pytest.raises(UsageError, match="colorize"):
        m.default_for("colorize")


def test_entries_are_read_only():
    entry = parse_manifest(VALID).get("up")
    with pytest.raises(TypeError):
        entry.params["scale"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        entry.tier = "best"  # type: ignore[misc]


# --- validation ---------------------------------------------------------------

REV = 'revision = "0123456789abcdef0123456789abcdef01234567"'


def _break(old: str, new: str, count: int = 1) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, count)


BAD = {
    "duplicate id": (_break('id = "big"', 'id = "small"'), ["'small'", "duplicate"]),
    "short revision": (_break(REV, 'revision = "0123456789ab"'), ["'big'", "revision", "40"]),
    "uppercase revision": (_break(REV, REV.upper().replace("REVISION", "revision")), ["'big'", "revision"]),
    "bad sha": (_break('sha256 = "AAAA', 'sha256 = "zzzz'), ["'big'", "sha256"]),
    "short sha": (_break('sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"', 'sha256 = "abc"'), ["'big'", "sha256"]),
    "unknown tier": (_break('tier = "balanced"', 'tier = "ultra"'), ["'big'", "tier", "ultra"]),
    "default to missing id": (_break('balanced = "big"', 'balanced = "huge"'), ["defaults.denoise", "balanced", "huge"]),
    "default wrong task": (_break('fast = "up"', 'fast = "small"'), ["defaults.upscale", "small", "denoise"]),
    "default tier absent": (_break('default = "fast"', 'default = "best"'), ["defaults.upscale", "default"]),
    "unknown defaults tier": (_break('fast = "up"', 'fast = "up"\nturbo = "up"'), ["defaults.upscale", "turbo"]),
    "cpu_default tier absent": (_break('default = "fast"', 'default = "fast"\ncpu_default = "best"'), ["defaults.upscale", "cpu_default"]),
    "both hf and url": (_break('url = "https://example.org/small.pth"', 'url = "https://example.org/small.pth"\nhf = "a/b"'), ["'small'", "source", "both"]),
    "neither hf nor url": (_break('url = "https://example.org/small.pth"\n', ""), ["'small'", "source", "neither"]),
    "no source": (_break('[model.source]\nurl = "https://example.org/small.pth"\nfilename = "small.pth"\n', ""), ["'small'", "source"]),
    "http url": (_break("https://example.org/small.pth", "http://example.org/small.pth"), ["'small'", "source.url"]),
    "url filename with folder": (_break('filename = "small.pth"', 'filename = "../small.pth"'), ["'small'", "filename"]),
    "bad repo id": (_break('hf = "owner/repo"', 'hf = "just-a-name"'), ["'big'", "source.hf"]),
    "bad repo type": (_break('repo_type = "dataset"', 'repo_type = "bucket"'), ["'up'", "repo_type"]),
    "typo in source key": (_break(REV, REV.replace("revision", "revison"), 1), ["'big'", "revison"]),
    "commercial_use not bool": (_break("commercial_use = true", 'commercial_use = "yes"'), ["'small'", "commercial_use"]),
    "negative size": (_break("size_bytes = 100", "size_bytes = -1"), ["'big'", "size_bytes"]),
    "missing tile_overlap": (_break("tile_overlap = 32\n", ""), ["'big'", "tile_overlap"]),
    "bad scale": (_break("scale = 4", "scale = 0"), ["'up'", "params.scale"]),
    "bad sigma range": (_break("sigma_range = [0, 75]", "sigma_range = [75, 0]"), ["'small'", "sigma_range"]),
    "blind not bool": (_break("blind = false", 'blind = "no"'), ["'small'", "params.blind"]),
    "unknown entry key": (_break('notes = "tiny"', 'notes = "tiny"\nlicence = "MIT"'), ["'small'", "licence"]),
    "bad id": (_break('id = "small"', 'id = "Small Model"'), ["model #1", "id"]),
    "missing license": (_break('license = "MIT"\n', ""), ["'small'", "license"]),
    "schema 2": (_break("schema = 1", "schema = 2"), ["schema", "2"]),
    "toml syntax": (_break("schema = 1", "schema = = 1"), ["not valid TOML"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validation_errors_name_entry_and_field(case):
    text, fragments = BAD[case]
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, origin="test.toml")
    message = str(info.value)
    assert message.startswith("test.toml")
    for fragment in fragments:
        assert fragment in message, (case, message)


# --- caching ------------------------------------------------------------------


def test_load_manifest_caches_per_path_and_rereads_edits(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(VALID)
    first = load_manifest(path)
    assert load_manifest(path) is first
    assert load_manifest(str(path)) is first
    other = tmp_path / "other.toml"
    other.write_text(VALID)
    assert load_manifest(other) is not first
    path.write_text(VALID.replace('notes = "tiny"', 'notes = "edited, and longer"'))
    assert load_manifest(path).get("small").notes == "edited, and longer"


def test_load_manifest_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="Cannot read"):
        load_manifest(tmp_path / "nope.toml")


def test_cpu_default_tier_applies_only_on_cpu_and_only_without_a_tier():
    m = parse_manifest(VALID.replace('default = "balanced"', 'default = "balanced"\ncpu_default = "fast"'))
    assert m.default_for("denoise").id == "big"
    assert m.default_for("denoise", on_cpu=True).id == "small"
    assert m.default_for("denoise", "balanced", on_cpu=True).id == "big"
    assert m.default_for("upscale", on_cpu=True).id == "up"  # no cpu_default: the default tier


def test_colorize_defaults_pick_the_tiny_model_on_cpu():
    m = load_manifest()
    assert m.default_for("colorize", on_cpu=True).id == "ddcolor-tiny"
    assert m.default_for("colorize").id == "ddcolor-large"
    tiny = m.get("ddcolor-tiny")
    assert tiny.source == HubSource("piddnad/DDColor-models", "ddcolor_paper_tiny.pth", "e9e7b527709c8aeb2f5e1bf701e72fd468a13baa")
    assert tiny.sha256 == "81dd643904f4664c3718513e3320ae3db0c567f0d3e18398606659adee7bfc17" and tiny.size_bytes == 220393145


def test_manifest_params_that_are_task_options_pass_the_options_own_checks() -> None:
    """One definition of each option: a model's params (scale, kind, render_size...) are held to the
    range and choices its task declares, so the manifest cannot promise what the command refuses."""
    from photofix.store.manifest import load_manifest
    from photofix.tasks import TASKS

    checked, wrong = 0, []
    for entry in load_manifest().entries:
        spec = TASKS.get(entry.task)
        if spec is None:
            continue  # helper models (scratch-detect, inpaint, face-detect, shadow-detect) have no options of their own
        fields = {field.name: field for field in spec.option_fields()}
        for key, value in entry.params.items():
            if key in fields:
                checked += 1
                try:
                    fields[key].check(value)
                except ValueError as error:
                    wrong.append(f"{entry.id}.{key}={value!r}: {error}")
    assert wrong == [] and checked >= 5
