"""Weights files are data: nothing in one runs, a wrong one is never trusted, a damaged one never used.

The attack files are built here: a TorchScript archive whose scripted ``__setstate__`` creates a
file with ``torch.from_file(..., shared=True)`` (what ``torch.jit.load`` runs on load), and a
pickle whose ``__reduce__`` calls ``os.system``. Each test checks the side effect never happens.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.store import weights
from photofix.cli import app
from photofix.errors import ChecksumMismatch, ModelLoadError, WeightsDownloadFailed
from photofix.store.manifest import UrlSource, load_manifest
from photofix.engine.models import load_model, read_state_dict
from tests.helpers import FakeHub, add_noise, kair_ffdnet_state_dict, sha

runner = CliRunner()

_EVIL_SCRIPT = textwrap.dedent(
    """
    import sys
    from typing import Tuple
    import torch
    from torch import nn

    class Planted(nn.Module):
        def __init__(self, target: str):
            super().__init__()
            self.target = target
            self.weight = nn.Parameter(torch.zeros(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        @torch.jit.export
        def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
            return (self.target, self.weight, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
            self.target = state[0]
            self.training = state[2]
            planted = torch.from_file(state[0], shared=True, size=16)  # creates the file
            self.weight = state[1] + planted[:3] * 0

    torch.jit.script(Planted(sys.argv[1])).save(sys.argv[2])
    """
)


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PHOTOFIX_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    for var in ("PHOTOFIX_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the malicious archive, the file its load would create)."""
    folder = tmp_path_factory.mktemp("evil")
    script, archive, marker = folder / "make.py", folder / "ffdnet_color.pth", folder / "planted-by-weights"
    script.write_text(_EVIL_SCRIPT)
    subprocess.run([sys.executable, "-W", "ignore", str(script), str(marker), str(archive)], check=True)
    return archive, marker


@pytest.fixture
def photo(tmp_path: Path, astronaut: np.ndarray) -> Path:
    path = tmp_path / "photo.png"
    PILImage.fromarray(add_noise(astronaut[100:164, 200:264], 20)).save(path)
    return path


def test_the_planted_archive_really_runs_code_under_jit_load(planted) -> None:
    """The attack is real: torch.jit.load (what photofix used to fall back to) creates the file."""
    archive, marker = planted
    code = f"import torch; torch.jit.load({str(archive)!r})"
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)
    assert marker.exists()
    marker.unlink()


def test_a_torchscript_archive_with_loading_code_is_refused_unrun(planted) -> None:
    archive, marker = planted
    with pytest.raises(ModelLoadError, match="never runs code") as info:
        read_state_dict(archive)
    assert "weights_only" not in str(info.value)
    assert not marker.exists()


def test_a_pickle_that_calls_a_function_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = textwrap.dedent(
        f"""
        import os, torch
        class Boom:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        torch.save({{"weight": torch.zeros(2), "x": Boom()}}, {str(tmp_path / 'boom.pth')!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(ModelLoadError, match="system") as info:
        read_state_dict(tmp_path / "boom.pth")
    assert "weights_only" not in str(info.value) and "trusted source" not in str(info.value)
    assert not marker.exists()


def test_plain_torchscript_weights_are_read_as_data(tmp_path: Path) -> None:
    """Scripted and traced archives (big-LaMa ships as one) give the module's state dict."""
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    module.eval()
    expected = module.state_dict()
    for kind, make in (("script", lambda: torch.jit.script(module)), ("trace", lambda: torch.jit.trace(module, torch.rand(1, 3, 8, 8)))):
        path = tmp_path / f"{kind}.pt"
        make().save(str(path))
        got = read_state_dict(path)
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_cli_refuses_the_planted_archive_given_as_weights(planted, photo: Path, tmp_path: Path) -> None:
    archive, marker = planted
    result = invoke("denoise", photo, tmp_path / "out.png", "--weights", archive)
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "never runs code" in errors[0] and "weights_only" not in errors[0]
    assert not marker.exists() and not (tmp_path / "out.png").exists()


def test_models_import_then_run_never_runs_the_planted_archive(planted, photo: Path, tmp_path: Path, home: Path) -> None:
    archive, marker = planted
    imported = invoke("models", "import", "ffdnet-color", archive)  # an entry with no published hash
    assert imported.exit_code == 3 and "never runs code" in imported.stderr
    assert "ffdnet_color.pth" in imported.stderr or "FFDNet" in imported.stderr
    assert weights.recorded_hash(load_manifest().get("ffdnet-color")) is None  # nothing trusted
    ran = invoke("denoise", photo, tmp_path / "out.png", "--model", "ffdnet-color", "--offline")
    assert ran.exit_code == 3 and not marker.exists()


def test_a_planted_file_already_in_the_cache_is_refused_at_run(planted, photo: Path, tmp_path: Path, home: Path) -> None:
    """As if an older photofix had trusted it: the run still reads it as data only."""
    archive, marker = planted
    entry = load_manifest().get("ffdnet-color")
    weights.import_file(entry, archive)  # the library call below the architecture check
    ran = invoke("denoise", photo, tmp_path / "out.png", "--model", "ffdnet-color", "--offline")
    assert ran.exit_code == 3 and "never runs code" in ran.stderr
    assert not marker.exists()


# --- the first-use trust trap ---------------------------------------------------------------


def test_import_of_a_wrong_architecture_records_nothing_and_the_right_file_then_imports(
    tmp_path: Path, home: Path, photo: Path
) -> None:
    from spandrel.architectures.Compact import Compact

    wrong = tmp_path / "compact.pth"
    torch.save(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), wrong)
    refused = invoke("models", "import", "ffdnet-color", wrong)
    assert refused.exit_code == 3
    assert "FFDNet" in refused.stderr and "Compact" in refused.stderr
    entry = load_manifest().get("ffdnet-color")
    assert entry.source.filename in refused.stderr  # names the file the entry really expects
    assert weights.recorded_hash(entry) is None and weights.cached_path(entry) is None

    right = tmp_path / "ffdnet_color.pth"
    torch.save(kair_ffdnet_state_dict(identity=True), right)
    assert invoke("models", "import", "ffdnet-color", right).exit_code == 0
    assert weights.recorded_hash(entry) == sha(right.read_bytes())
    done = invoke("denoise", photo, tmp_path / "out.png", "--model", "ffdnet-color", "--offline", "--sigma", "10")
    assert done.exit_code == 0, done.stderr


def test_models_forget_undoes_a_first_use_record(tmp_path: Path, home: Path) -> None:
    entry = load_manifest().get("ffdnet-color")
    first = tmp_path / "first.pth"
    torch.save(kair_ffdnet_state_dict(identity=True), first)
    assert invoke("models", "import", "ffdnet-color", first).exit_code == 0
    second = tmp_path / "second.pth"
    torch.save(kair_ffdnet_state_dict(identity=False), second)
    refused = invoke("models", "import", "ffdnet-color", second)
    assert refused.exit_code == 3 and "photofix models forget ffdnet-color" in refused.stderr

    forgot = invoke("models", "forget", "ffdnet-color")
    assert forgot.exit_code == 0 and "trusted_hashes.json" in forgot.stderr
    assert weights.recorded_hash(entry) is None and weights.cached_path(entry) is None
    assert invoke("models", "import", "ffdnet-color", second).exit_code == 0
    assert weights.recorded_hash(entry) == sha(second.read_bytes())


def test_a_first_download_of_the_wrong_architecture_is_not_trusted(tmp_path: Path, home: Path) -> None:
    from spandrel.architectures.Compact import Compact

    from photofix.engine.models import fetch_checked

    wrong = tmp_path / "compact.pth"
    torch.save(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), wrong)
    listed = load_manifest().get("ffdnet-color")  # unverified; served from a local URL here
    entry = dataclasses.replace(listed, source=UrlSource(wrong.as_uri(), listed.source.filename))
    with pytest.raises(ModelLoadError, match="FFDNet"):
        fetch_checked(entry)
    assert weights.recorded_hash(entry) is None and weights.cached_path(entry) is None


# --- a damaged cache ----------------------------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, same name: only the content tells


def test_a_damaged_cached_file_is_caught_before_any_photo(tmp_path: Path, home: Path, photo: Path) -> None:
    entry = load_manifest().get("ffdnet-color")
    good = tmp_path / "ffdnet_color.pth"
    torch.save(kair_ffdnet_state_dict(identity=True), good)
    assert invoke("models", "import", "ffdnet-color", good).exit_code == 0
    out = tmp_path / "out"
    assert invoke("denoise", photo, out / "a.png", "--model", "ffdnet-color", "--offline", "--sigma", "5").exit_code == 0
    recorded = json.loads((out / ".photofix" / "runs.jsonl").read_text().splitlines()[0])
    assert recorded["steps"][0]["weights_sha256"] == sha(good.read_bytes())

    _flip_a_byte(weights.cached_path(entry).resolve())
    ran = invoke("denoise", photo, out / "b.png", "--model", "ffdnet-color", "--offline", "--sigma", "5")
    assert ran.exit_code == 3 and "Checksum mismatch" in ran.stderr
    assert not (out / "b.png").exists()


def test_cached_hub_file_is_hashed_once_then_again_only_when_changed(tmp_path: Path, home: Path, monkeypatch) -> None:
    from tests.test_weights import GOOD, hub_source, make_entry

    hub = FakeHub(tmp_path / "upstream")
    monkeypatch.setattr(weights, "_hf_hub_download", hub)
    source = hub_source()
    hub.publish(source.repo, source.filename, GOOD)
    entry = make_entry(source, GOOD, size=len(GOOD))
    first = weights.fetch(entry)

    hashed = []
    real_hash = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda path: hashed.append(path) or real_hash(path))
    assert weights.fetch(entry).sha256 == sha(GOOD) and hashed == []  # the stamp vouches for it
    _flip_a_byte(first.path.resolve())
    with pytest.raises(ChecksumMismatch):
        weights.fetch(entry)
    assert len(hashed) == 1 and weights.cached_path(entry) is None


def test_nan_weights_fail_the_run_once_with_exit_3(tmp_path: Path, photo: Path) -> None:
    state = kair_ffdnet_state_dict()
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = torch.full_like(state[first], float("nan"))
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError, match="NaN"):
        load_model(path)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(photo.read_bytes())
    result = invoke("denoise", folder, tmp_path / "out", "--weights", path)
    assert result.exit_code == 3 and "NaN" in result.stderr and "--precision fp32" not in result.stderr


def test_an_unreachable_hub_fails_in_seconds_without_retrying(home: Path, monkeypatch) -> None:
    import socket

    import huggingface_hub

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def never(*args, **kwargs):
        raise AssertionError("huggingface_hub was asked to retry against an unreachable host")

    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "create_connection", no_dns)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    entry = load_manifest().get("scunet-color-real")
    with pytest.raises(WeightsDownloadFailed, match="unreachable") as info:
        weights.fetch(entry)
    assert "models import scunet-color-real" in str(info.value)
