"""weights.py with the Hub and the network isolated.

The Hub is replaced by ``FakeHub``, which serves files from a local folder and writes the
real huggingface_hub cache layout; URL downloads use ``file://`` URLs or a patched
``_open_url``. Any socket connection fails the test.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import pytest

from photofix.store import weights
from photofix.errors import (
    ChecksumMismatch,
    ManifestError,
    WeightsDownloadFailed,
    WeightsError,
    WeightsNotCached,
)
from photofix.store.manifest import HubSource, ModelEntry, UrlSource
from tests.helpers import REV, FakeHub, sha

GOOD = b"good weights " * 1000
BAD = b"evil weights " * 1000  # same size as GOOD on purpose


def make_entry(source, data: bytes | None, *, model_id: str = "m1", size: int | None = None) -> ModelEntry:
    """An entry whose manifest hash is sha(data), or unverified when data is None."""
    return ModelEntry(
        id=model_id,
        task="denoise",
        arch="X",
        tier="fast",
        source=source,
        sha256=sha(data) if data is not None else None,
        size_bytes=size,
        license="MIT",
        commercial_use=True,
        params=MappingProxyType({}),
        tile_overlap=16,
        notes="",
    )


def hub_source(repo: str = "owner/repo", filename: str = "w.pth") -> HubSource:
    return HubSource(repo, filename, REV)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PHOTOFIX_HOME", str(home))
    for var in ("PHOTOFIX_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def hub(tmp_path, monkeypatch, home) -> FakeHub:
    fake = FakeHub(tmp_path / "upstream")
    monkeypatch.setattr(weights, "_hf_hub_download", fake)
    return fake


def hub_pointer(home: Path, source: HubSource) -> Path:
    return home / "hub" / f"models--{source.repo.replace('/', '--')}" / "snapshots" / REV / source.filename


def trusted(home: Path) -> dict:
    return json.loads((home / "trusted_hashes.json").read_text())["models"]


def leftovers(folder: Path) -> list[str]:
    """Partial downloads (hidden ``.part`` files) left beside the result."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# --- hashing and import cost ----------------------------------------------------


def test_sha256_file_streams_large_files(tmp_path):
    data = os.urandom(weights.CHUNK_SIZE * 2 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert weights.sha256_file(path) == sha(data)


def test_importing_weights_does_not_import_huggingface_hub():
    src = Path(__file__).resolve().parents[1] / "src"
    code = "import sys, photofix.store.weights; sys.exit('huggingface_hub' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(src)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


# --- Hub sources ----------------------------------------------------------------


def test_fetch_from_hub_places_and_verifies(hub, home):
    source = hub_source()
    hub.publish(source.repo, source.filename, GOOD)
    entry = make_entry(source, GOOD)

    got = weights.fetch(entry)

    assert got.downloaded and not got.first_use_hash
    assert got.sha256 == sha(GOOD)
    assert got.path == hub_pointer(home, source) and got.path.read_bytes() == GOOD
    (call,) = hub.calls
    assert call["revision"] == REV and call["local_files_only"] is False
    assert call["cache_dir"] == str(home / "hub")
    assert weights.cached_path(entry) == got.path


def test_cached_hub_file_needs_no_call_and_no_rehash(hub, monkeypatch):
    source = hub_source()
    hub.publish(source.repo, source.filename, GOOD)
    entry = make_entry(source, GOOD, size=len(GOOD))
    weights.fetch(entry)

    def no_hashing(path):
        raise AssertionError("a cached, verified file was re-hashed")

    monkeypatch.setattr(weights, "sha256_file", no_hashing)
    again = weights.fetch(entry)
    assert not again.downloaded and again.sha256 == sha(GOOD)
    assert len(hub.calls) == 1


def test_hub_checksum_mismatch_removes_blob_and_link(hub, home):
    source = hub_source()
    hub.publish(source.repo, source.filename, BAD)
    entry = make_entry(source, GOOD)

    with pytest.raises(ChecksumMismatch) as info:
        weights.fetch(entry)

    message = str(info.value)
    assert sha(GOOD) in message and sha(BAD) in message and "removed" in message
    pointer = hub_pointer(home, source)
    assert not pointer.exists() and not pointer.is_symlink()
    assert list((pointer.parents[2] / "blobs").iterdir()) == []
    assert weights.cached_path(entry) is None


def test_offline_and_not_cached(hub):
    entry = make_entry(hub_source(), GOOD)
    with pytest.raises(WeightsNotCached) as info:
        weights.fetch(entry, offline=True)
    message = str(info.value)
    assert "photofix models download m1" in message and "photofix models import m1" in message
    assert isinstance(info.value, FileNotFoundError)
    assert hub.calls[-1]["local_files_only"] is True


def test_offline_from_environment(hub, monkeypatch):
    monkeypatch.setenv("PHOTOFIX_OFFLINE", "1")
    hub.publish("owner/repo", "w.pth", GOOD)
    with pytest.raises(WeightsNotCached):
        weights.fetch(make_entry(hub_source(), GOOD))
    assert hub.calls[-1]["local_files_only"] is True


def test_an_explicit_online_call_overrides_the_environment(hub, monkeypatch):
    """Argument > environment: ``models download`` (offline=False) downloads even under PHOTOFIX_OFFLINE."""
    monkeypatch.setenv("PHOTOFIX_OFFLINE", "1")
    hub.publish("owner/repo", "w.pth", GOOD)
    assert weights.fetch(make_entry(hub_source(), GOOD), offline=False).downloaded
    assert hub.calls[-1]["local_files_only"] is False


def test_import_then_offline_fetch_makes_no_hub_call(hub, home, tmp_path):
    source = hub_source()
    entry = make_entry(source, GOOD)
    file = tmp_path / "downloaded.pth"
    file.write_bytes(GOOD)

    placed = weights.import_file(entry, file)

    pointer = hub_pointer(home, source)
    assert placed == pointer and pointer.is_symlink()
    assert not os.path.isabs(os.readlink(pointer))  # relative, like huggingface_hub's
    assert pointer.resolve() == pointer.parents[2] / "blobs" / sha(GOOD)
    got = weights.fetch(entry, offline=True)
    assert got.path == pointer and got.sha256 == sha(GOOD) and not got.downloaded
    assert hub.calls == []


def test_imported_layout_is_found_by_real_huggingface_hub(home, tmp_path):
    from huggingface_hub import hf_hub_download

    source = HubSource("owner/repo", "sub/w.safetensors", REV, "dataset")
    entry = make_entry(source, GOOD)
    file = tmp_path / "w.safetensors"
    file.write_bytes(GOOD)
    placed = weights.import_file(entry, file)

    found = hf_hub_download(
        "owner/repo", "sub/w.safetensors", repo_type="dataset", revision=REV,
        cache_dir=str(home / "hub"), local_files_only=True,
    )
    assert Path(found) == placed and Path(found).read_bytes() == GOOD


def test_import_bad_file_places_nothing(hub, home, tmp_path):
    source = hub_source()
    entry = make_entry(source, GOOD)
    file = tmp_path / "wrong.pth"
    file.write_bytes(BAD)

    with pytest.raises(ChecksumMismatch) as info:
        weights.import_file(entry, file)

    assert sha(GOOD) in str(info.value) and sha(BAD) in str(info.value)
    assert not (home / "hub").exists()
    assert weights.cached_path(entry) is None


def test_import_without_symlinks_falls_back_to_a_copy(hub, home, tmp_path, monkeypatch):
    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    source = hub_source()
    entry = make_entry(source, GOOD)
    file = tmp_path / "w.pth"
    file.write_bytes(GOOD)

    placed = weights.import_file(entry, file)

    assert placed.is_file() and not placed.is_symlink() and placed.read_bytes() == GOOD
    assert list((placed.parents[2] / "blobs").iterdir()) == []  # no duplicate copy left behind
    assert weights.fetch(entry, offline=True).sha256 == sha(GOOD)
    assert hub.calls == []


def test_hf_hub_cache_env_is_used_without_photofix_home(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "upstream")
    monkeypatch.setattr(weights, "_hf_hub_download", fake)
    monkeypatch.delenv("PHOTOFIX_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    fake.publish("owner/repo", "w.pth", GOOD)

    got = weights.fetch(make_entry(hub_source(), GOOD))

    assert fake.calls[0]["cache_dir"] == str(tmp_path / "hf-cache")
    assert got.path.is_relative_to(tmp_path / "hf-cache")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert weights.cached_path(make_entry(hub_source(), GOOD)) is None  # a different cache now
    weights.fetch(make_entry(hub_source(), GOOD))
    assert fake.calls[-1]["cache_dir"] == str(tmp_path / "hf-home" / "hub")


def _http_response(status: int) -> SimpleNamespace:
    return SimpleNamespace(headers={}, status_code=status, request=None)


@pytest.mark.parametrize(
    "make_error, expected",
    [
        (lambda: ConnectionError("connection refused"), "HF_ENDPOINT"),
        (lambda: TimeoutError("read timed out"), "HF_ENDPOINT"),
        (lambda: __import__("huggingface_hub.errors").errors.LocalEntryNotFoundError("no connection"), "HF_ENDPOINT"),
        (lambda: __import__("huggingface_hub.errors").errors.RepositoryNotFoundError("404", response=_http_response(404)), "not found on the Hub"),
        (lambda: __import__("huggingface_hub.errors").errors.GatedRepoError("403", response=_http_response(403)), "gated"),
    ],
)
def test_hub_errors_become_download_failed(hub, make_error, expected):
    hub.error = make_error()
    with pytest.raises(WeightsDownloadFailed) as info:
        weights.fetch(make_entry(hub_source(), GOOD))
    assert expected in str(info.value)
    assert "photofix models import m1" in str(info.value)
    assert info.value.__cause__ is hub.error


def test_hub_validation_error_is_a_manifest_error(hub):
    from huggingface_hub.errors import HFValidationError

    hub.error = HFValidationError("Repo id must be in the form 'repo_name'")
    with pytest.raises(ManifestError, match="m1"):
        weights.fetch(make_entry(hub_source(), GOOD))


def test_programming_errors_are_not_disguised(hub):
    hub.error = TypeError("unexpected keyword")
    with pytest.raises(TypeError):
        weights.fetch(make_entry(hub_source(), GOOD))


# --- trust on first use ----------------------------------------------------------


def test_tofu_records_then_rejects_a_different_file(hub, home, tmp_path):
    source = hub_source()
    hub.publish(source.repo, source.filename, GOOD)
    entry = make_entry(source, None)

    first = weights.fetch(entry)
    assert first.first_use_hash and first.sha256 == sha(GOOD)
    record = trusted(home)["m1"]
    assert record["sha256"] == sha(GOOD) and record["source"] == str(source)
    assert weights.recorded_hash(entry) == sha(GOOD)

    again = weights.fetch(entry)
    assert not again.first_use_hash and again.sha256 == sha(GOOD)
    assert weights.verify(entry).status == "ok"

    other = tmp_path / "other.pth"
    other.write_bytes(BAD)
    with pytest.raises(ChecksumMismatch) as info:
        weights.import_file(entry, other)
    assert sha(GOOD) in str(info.value) and sha(BAD) in str(info.value)
    assert first.path.read_bytes() == GOOD  # the trusted file is untouched

    # Upstream changes the file behind the same name: the new download is refused.
    hub_pointer(home, source).unlink()
    hub.publish(source.repo, source.filename, BAD)
    with pytest.raises(ChecksumMismatch, match="recorded on first use"):
        weights.fetch(entry)
    assert weights.cached_path(entry) is None
    assert trusted(home)["m1"]["sha256"] == sha(GOOD)


def test_tofu_import_records_hash(hub, home, tmp_path):
    entry = make_entry(hub_source(), None)
    file = tmp_path / "w.pth"
    file.write_bytes(GOOD)
    weights.import_file(entry, file)
    assert weights.recorded_hash(entry) == sha(GOOD)
    assert weights.fetch(entry, offline=True).first_use_hash is False


def test_tofu_record_is_tied_to_the_source(hub, home):
    hub.publish("owner/repo", "w.pth", GOOD)
    entry = make_entry(hub_source(), None)
    weights.fetch(entry)
    moved = make_entry(hub_source(repo="owner/elsewhere"), None)
    assert weights.recorded_hash(moved) is None


# --- URL sources -----------------------------------------------------------------


def url_entry(tmp_path: Path, data: bytes, verified: bool = True, **kwargs) -> ModelEntry:
    upstream = tmp_path / "upstream.pth"
    upstream.write_bytes(data)
    return make_entry(UrlSource(upstream.as_uri(), "w.pth"), data if verified else None, **kwargs)


def test_fetch_url_via_file_url(home, tmp_path, monkeypatch):
    entry = url_entry(tmp_path, GOOD, size=len(GOOD))

    got = weights.fetch(entry)

    dest = home / "url" / "m1" / "w.pth"
    assert got.path == dest and dest.read_bytes() == GOOD and got.downloaded
    stamp = json.loads((home / "verified_files.json").read_text())[str(dest.resolve())]
    assert stamp["sha256"] == sha(GOOD)  # hashed while downloading: the stamp spares a re-hash

    def refuse(*args):
        raise AssertionError("re-downloaded or re-hashed a cached, verified file")

    monkeypatch.setattr(weights, "_open_url", refuse)
    monkeypatch.setattr(weights, "sha256_file", refuse)
    again = weights.fetch(entry, offline=True)
    assert again.path == dest and not again.downloaded


def test_url_checksum_mismatch_places_nothing(home, tmp_path):
    entry = make_entry(UrlSource((tmp_path / "u.pth").as_uri(), "w.pth"), GOOD)
    (tmp_path / "u.pth").write_bytes(BAD)
    with pytest.raises(ChecksumMismatch) as info:
        weights.fetch(entry)
    assert sha(GOOD) in str(info.value) and sha(BAD) in str(info.value)
    folder = home / "url" / "m1"
    assert not (folder / "w.pth").exists() and leftovers(folder) == []


def test_url_offline_not_cached(home, tmp_path, monkeypatch):
    entry = url_entry(tmp_path, GOOD)
    monkeypatch.setattr(weights, "_open_url", lambda url: pytest.fail("downloaded while offline"))
    with pytest.raises(WeightsNotCached, match="photofix models import m1"):
        weights.fetch(entry, offline=True)


def test_url_import_then_offline_fetch(home, tmp_path):
    entry = make_entry(UrlSource("https://example.invalid/w.pth", "w.pth"), GOOD)
    file = tmp_path / "w.pth"
    file.write_bytes(GOOD)
    placed = weights.import_file(entry, file)
    assert placed == home / "url" / "m1" / "w.pth"
    assert weights.fetch(entry, offline=True).sha256 == sha(GOOD)


class SlowStream(io.BytesIO):
    """A response that trickles out in small pieces, optionally failing part-way."""

    def __init__(self, data: bytes, delay: float = 0.0, fail_after: int | None = None, error=None, length=None):
        super().__init__(data)
        self.delay, self.fail_after, self.error = delay, fail_after, error
        self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self.reads = 0

    def read(self, size=-1):
        time.sleep(self.delay)
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise self.error
        return super().read(min(size, 4096) if size and size > 0 else 4096)


def test_concurrent_url_fetch_downloads_once(home, monkeypatch):
    data = os.urandom(64 * 1024)
    entry = make_entry(UrlSource("https://example.invalid/w.pth", "w.pth"), data)
    opened = []

    def slow_open(url):
        opened.append(url)
        return SlowStream(data, delay=0.005)

    monkeypatch.setattr(weights, "_open_url", slow_open)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        barrier.wait()
        try:
            results.append(weights.fetch(entry))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == [] and len(results) == 2
    assert len(opened) == 1
    assert sorted(r.downloaded for r in results) == [False, True]
    folder = home / "url" / "m1"
    assert (folder / "w.pth").read_bytes() == data and leftovers(folder) == []


@pytest.mark.parametrize("error", [ConnectionResetError("reset by peer"), KeyboardInterrupt()])
def test_download_failing_midway_leaves_no_partial_file(home, monkeypatch, error):
    entry = make_entry(UrlSource("https://example.invalid/w.pth", "w.pth"), GOOD)
    monkeypatch.setattr(weights, "_open_url", lambda url: SlowStream(GOOD, fail_after=2, error=error))

    expected = KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else WeightsDownloadFailed
    with pytest.raises(expected):
        weights.fetch(entry)

    folder = home / "url" / "m1"
    assert not (folder / "w.pth").exists()
    assert leftovers(folder) == []
    assert weights.cached_path(entry) is None


def test_truncated_download_is_not_trusted(home, monkeypatch):
    entry = make_entry(UrlSource("https://example.invalid/w.pth", "w.pth"), None)
    monkeypatch.setattr(weights, "_open_url", lambda url: SlowStream(GOOD[:1000], length=len(GOOD)))
    with pytest.raises(WeightsDownloadFailed, match=f"1000 of {len(GOOD)}"):
        weights.fetch(entry)
    assert weights.recorded_hash(entry) is None
    assert weights.cached_path(entry) is None


def test_url_tofu_then_changed_upstream_rejected(home, tmp_path):
    entry = url_entry(tmp_path, GOOD, verified=False)
    first = weights.fetch(entry)
    assert first.first_use_hash and weights.recorded_hash(entry) == sha(GOOD)

    first.path.unlink()
    (tmp_path / "upstream.pth").write_bytes(BAD)
    with pytest.raises(ChecksumMismatch):
        weights.fetch(entry)
    assert weights.cached_path(entry) is None


# --- verify ------------------------------------------------------------------------


def test_verify_statuses(home, tmp_path):
    entry = url_entry(tmp_path, GOOD)
    missing = weights.verify(entry)
    assert (missing.status, missing.path, missing.expected) == ("missing", None, sha(GOOD))

    path = weights.fetch(entry).path
    ok = weights.verify(entry)
    assert (ok.status, ok.actual) == ("ok", sha(GOOD))

    path.write_bytes(BAD)  # same size: only a full re-hash can tell
    bad = weights.verify(entry)
    assert (bad.status, bad.expected, bad.actual) == ("mismatch", sha(GOOD), sha(BAD))
    # the file changed since it was stamped, so the next fetch re-hashes and rejects it.
    with pytest.raises(ChecksumMismatch):
        weights.fetch(entry, offline=True)
    assert not path.exists()


def test_verify_records_unverified_file_found_on_disk(home, tmp_path):
    entry = make_entry(UrlSource("https://example.invalid/w.pth", "w.pth"), None)
    dest = home / "url" / "m1" / "w.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(GOOD)  # copied in by hand, never seen before

    result = weights.verify(entry)

    assert (result.status, result.actual, result.expected) == ("recorded", sha(GOOD), sha(GOOD))
    assert trusted(home)["m1"]["sha256"] == sha(GOOD)
    assert weights.verify(entry).status == "ok"


def test_corrupt_trust_file_is_a_clear_error(home, tmp_path):
    entry = url_entry(tmp_path, GOOD, verified=False)
    home.mkdir(parents=True)
    (home / "trusted_hashes.json").write_text("{not json")
    with pytest.raises(WeightsError, match="trusted_hashes.json") as info:
        weights.fetch(entry)
    assert "delete it" in str(info.value)


def test_a_failed_url_download_does_not_suggest_a_hub_mirror(home, monkeypatch):
    # the fresh-clone run's message for a GitHub-hosted model said "set HF_ENDPOINT", which only serves Hub files
    entry = make_entry(UrlSource("https://example.invalid/w.pth", "w.pth"), GOOD)

    def unreachable(url):
        raise OSError("Name or service not known")

    monkeypatch.setattr(weights, "_open_url", unreachable)
    with pytest.raises(WeightsError) as info:
        weights.fetch(entry)
    said = str(info.value)
    assert "example.invalid" in said and "HTTPS_PROXY" in said and "HF_ENDPOINT" not in said
    assert "photofix models import m1 FILE" in said
