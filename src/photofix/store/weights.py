"""Fetch, verify and import model weights named by the manifest.

The only module that talks to huggingface_hub, and only inside ``_hf_hub_download`` so
importing this module stays cheap. Hub files live in the standard Hugging Face cache at a
pinned commit (shared with other tools); URL files live in ``photofix_home()/url/<id>/``.
Every file is checked against the manifest's sha256, or, for entries whose hash is not
known, against the hash recorded the first time it was seen (trust on first use).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from filelock import FileLock

from photofix import settings
from photofix._files import (
    CHUNK_SIZE,
    copy_atomic,
    sha256_file,
    symlink_atomic,
    write_atomic,
    write_text_atomic,
)
from photofix.errors import (
    ChecksumMismatch,
    ManifestError,
    UsageError,
    WeightsDownloadFailed,
    WeightsError,
    WeightsNotCached,
)
from photofix.store.manifest import HubSource, ModelEntry, UrlSource

__all__ = [
    "reachable",
    "FetchedWeights",
    "VerifyResult",
    "fetch",
    "cached_path",
    "verify",
    "import_file",
    "recorded_hash",
    "sha256_file",
    "forget",
    "trust_file",
    "verified_sha256",
]

TRUST_FILE = "trusted_hashes.json"
STAMP_FILE = "verified_files.json"
URL_TIMEOUT_S = 60
REACH_TIMEOUT_S = 5
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Exceptions from these libraries during a Hub download are network/server trouble.
_HTTP_LIBRARIES = {"huggingface_hub", "hf_xet", "httpx", "httpx2", "httpcore", "requests", "urllib3"}

PathLike = str | os.PathLike[str]
Status = Literal["ok", "missing", "mismatch", "recorded"]


@dataclass(frozen=True)
class FetchedWeights:
    """A weights file ready to load; ``first_use_hash`` means its hash was just recorded (tell the user)."""

    path: Path
    sha256: str
    downloaded: bool
    first_use_hash: bool


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a full re-hash; ``recorded`` means an unverified entry's hash was recorded now."""

    entry_id: str
    path: Path | None
    status: Status
    expected: str | None
    actual: str | None


# --- where files live --------------------------------------------------------


def _hub_root(source: HubSource, hub_dir: Path) -> Path:
    # Same folder name huggingface_hub uses: "models--owner--name".
    return hub_dir / "--".join([f"{source.repo_type}s", *source.repo.split("/")])


def _hub_pointer(source: HubSource, hub_dir: Path) -> Path:
    return _hub_root(source, hub_dir).joinpath("snapshots", source.revision, *source.filename.split("/"))


def _url_dest(entry: ModelEntry, source: UrlSource) -> Path:
    return settings.photofix_home() / "url" / entry.id / source.filename


def _local_path(entry: ModelEntry, cache_dir: PathLike | None) -> Path:
    source = entry.source
    if isinstance(source, HubSource):
        return _hub_pointer(source, settings.hub_cache_path(cache_dir))
    return _url_dest(entry, source)


def cached_path(entry: ModelEntry, cache_dir: PathLike | None = None) -> Path | None:
    """Where the entry's file is, if it is already on disk; never touches the network.

    ``cache_dir`` overrides the Hugging Face cache folder; URL entries always live under
    ``photofix_home()``.
    """
    path = _local_path(entry, cache_dir)
    # is_file follows the snapshot symlink, so a dangling link is not a hit.
    return path if path.is_file() else None


def verified_sha256(entry: ModelEntry, cache_dir: PathLike | None = None) -> str | None:
    """The sha256 of the file a run will load: the cached file's own hash, checked, else the expected one.

    A cached file that differs from the expected hash is removed and ChecksumMismatch raised,
    before any photo is processed. Records nothing on first use (``fetch`` does, once the
    architecture is known to be right).
    """
    path = cached_path(entry, cache_dir)
    expected = entry.sha256 or recorded_hash(entry)
    if path is None:
        return expected
    actual = _verified_hash(path)
    if expected is not None and actual != expected:
        _remover(entry)(path)
        raise ChecksumMismatch(_mismatch_message(entry, path, expected, actual, removed=True))
    return actual


# --- fetch -------------------------------------------------------------------


def fetch(
    entry: ModelEntry, *, offline: bool | None = None, cache_dir: PathLike | None = None
) -> FetchedWeights:
    """Return the entry's weights file, downloading it unless cached or offline.

    ``cache_dir`` overrides the Hugging Face cache folder (URL entries live under
    ``photofix_home()``). Raises WeightsNotCached (offline, not on disk), WeightsDownloadFailed, ChecksumMismatch.
    """
    is_offline = settings.offline(offline)
    source = entry.source
    if isinstance(source, HubSource):
        return _fetch_hub(entry, source, is_offline, settings.hub_cache_path(cache_dir))
    return _fetch_url(entry, source, is_offline)


def _fetch_hub(entry: ModelEntry, source: HubSource, is_offline: bool, hub_dir: Path) -> FetchedWeights:
    pointer = _hub_pointer(source, hub_dir)
    if pointer.is_file():
        # With a pinned commit the file cannot have changed upstream: no need to ask the Hub.
        return _use_cached(entry, pointer)
    try:
        got = Path(
            _hf_hub_download(
                source.repo,
                source.filename,
                revision=source.revision,
                repo_type=source.repo_type,
                cache_dir=str(hub_dir),
                local_files_only=is_offline,
            )
        )
    except Exception as exc:
        mapped = _hub_error(exc, entry, is_offline)
        if mapped is None:
            raise
        raise mapped from exc
    # A fresh download is always hashed in full: the blob name is only what the server claimed.
    actual = sha256_file(got)
    first = _settle(entry, got, actual, remove=_remove_hub_file)
    _stamp(got.resolve(), actual)
    return FetchedWeights(got, actual, downloaded=True, first_use_hash=first)


def _hf_hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: str,
    repo_type: str,
    cache_dir: str,
    local_files_only: bool,
) -> str:
    """The one call into huggingface_hub (imported here: it is slow to import)."""
    from huggingface_hub import hf_hub_download

    if not local_files_only:
        _check_reachable(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")

    return hf_hub_download(
        repo_id,
        filename,
        revision=revision,
        repo_type=repo_type,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        library_name="photofix",
    )


_REACHED: dict[str, bool] = {}  # endpoint -> reachable, once per process


def reachable(entry: ModelEntry) -> bool:
    """Whether the host serving ``entry`` answers now (seconds at most; remembered for the run).

    Lets a task with a method that needs no download use it, with a note, instead of failing
    when the network is down and nobody said ``--offline``.
    """
    source = entry.source
    endpoint = source.url if isinstance(source, UrlSource) else (os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    if endpoint not in _REACHED:
        try:
            _check_reachable(endpoint)
            _REACHED[endpoint] = True
        except ConnectionError:
            _REACHED[endpoint] = False
    return _REACHED[endpoint]


def _check_reachable(endpoint: str) -> None:
    """Fail in seconds when the Hub's host cannot be reached, not after huggingface_hub's ~25 s of retries.

    Skipped behind a proxy, where only the proxy knows whether the Hub is reachable.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    parsed = urllib.parse.urlsplit(endpoint)
    host, port = parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)
    if not host:
        return
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise ConnectionError(f"{host} is unreachable ({reason})") from error


def _hub_error(exc: Exception, entry: ModelEntry, is_offline: bool) -> WeightsError | None:
    """Translate a huggingface_hub error into ours, or None to let it propagate (a bug).

    Matched by class name so that this works across huggingface_hub versions, whose
    error classes have moved between modules, without importing it here.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    source = entry.source
    assert isinstance(source, HubSource)
    where = f"{source.repo}@{source.revision[:10]}/{source.filename}"
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} and (is_offline or "OfflineModeIsEnabled" in names):
        return WeightsNotCached(_not_cached_message(entry))
    if "HFValidationError" in names:
        return ManifestError(f"Model {entry.id!r}: the Hub rejected its source ({exc}). Fix the entry in weights_manifest.toml.")
    if "GatedRepoError" in names:
        return WeightsDownloadFailed(
            f"Could not download {entry.id!r}: https://huggingface.co/{source.repo} is gated. Accept its terms on that page "
            f"and log in with `hf auth login`, or download {source.filename} elsewhere and run `photofix models import {entry.id} FILE`."
        )
    if "LocalEntryNotFoundError" not in names and names & {
        "RepositoryNotFoundError", "RevisionNotFoundError", "RemoteEntryNotFoundError", "EntryNotFoundError"
    }:
        return WeightsDownloadFailed(
            f"Could not download {entry.id!r}: {where} was not found on the Hub (the repository may be private, moved or deleted). "
            f"Download {source.filename} elsewhere and run `photofix models import {entry.id} FILE`, and report the stale manifest entry."
        )
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _HTTP_LIBRARIES:
        return WeightsDownloadFailed(_download_failed_message(entry, where, exc))
    return None


def _fetch_url(entry: ModelEntry, source: UrlSource, is_offline: bool) -> FetchedWeights:
    dest = _url_dest(entry, source)
    if dest.is_file():
        return _use_cached(entry, dest)
    if is_offline:
        raise WeightsNotCached(_not_cached_message(entry))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Serialises concurrent runs (threads or processes) fetching the same file.
    with FileLock(str(_lock_path(dest))):
        if dest.is_file():  # someone else finished it while we waited
            return _use_cached(entry, dest)
        actual = _download_url(entry, source, dest)
        first = _settle(entry, dest, actual, remove=_remove_url_file)
        _stamp(dest.resolve(), actual)
    return FetchedWeights(dest, actual, downloaded=True, first_use_hash=first)


def _download_url(entry: ModelEntry, source: UrlSource, dest: Path) -> str:
    """Stream the URL into a temp file beside ``dest``, hashing as it goes; rename when good."""
    expected = entry.sha256 or recorded_hash(entry)

    def fill(out: BinaryIO) -> str:
        # Raising here (a bad size or hash, or KeyboardInterrupt) removes the partial file.
        actual, size = _stream(entry, source.url, out)
        if entry.size_bytes is not None and size != entry.size_bytes:
            raise WeightsDownloadFailed(
                f"Download of {entry.id!r} from {source.url} gave {size} bytes, expected {entry.size_bytes}. "
                f"Run again; if it persists, download it elsewhere and run `photofix models import {entry.id} FILE`."
            )
        if expected is not None and actual != expected:
            raise ChecksumMismatch(_mismatch_message(entry, dest, expected, actual, removed=True))
        return actual

    # ".part", not the outputs' ".tmp": a partial download is no run's stale output temp.
    return write_atomic(dest, fill, suffix=".part")


def _stream(entry: ModelEntry, url: str, out: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with _open_url(url) as response:
            announced = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            while chunk := response.read(CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, disk full
        raise WeightsDownloadFailed(_download_failed_message(entry, url, exc)) from exc
    # A connection closed early can end the stream without an error; a truncated file must
    # never be recorded as the trusted one.
    if announced is not None and announced.isdigit() and int(announced) != size:
        raise WeightsDownloadFailed(_download_failed_message(entry, url, f"got {size} of {announced} bytes"))
    return digest.hexdigest(), size


def _open_url(url: str) -> BinaryIO:
    """The one urllib call (proxies come from HTTPS_PROXY / HTTP_PROXY as usual)."""
    request = urllib.request.Request(url, headers={"User-Agent": "photofix"})
    return urllib.request.urlopen(request, timeout=URL_TIMEOUT_S)


# --- checking ----------------------------------------------------------------


def _use_cached(entry: ModelEntry, path: Path) -> FetchedWeights:
    actual = _verified_hash(path)
    first = _settle(entry, path, actual, remove=_remover(entry))
    return FetchedWeights(path, actual, downloaded=False, first_use_hash=first)


def _verified_hash(path: Path) -> str:
    """The sha256 of the bytes on disk now: hashed in full unless a stamp proves them unchanged.

    Blob names and sizes are only claims, so a cached file is hashed before its first use.
    The stamp (``verified_files.json``) keys the hash by the file's device, inode, size, mtime
    and ctime; rewriting a file in place changes its ctime, which no user tool can set back.
    """
    real = path.resolve()
    identity = _identity(real)
    stamps = _read_stamps()
    stamp = stamps.get(str(real))
    if isinstance(stamp, dict) and stamp.get("identity") == identity and _SHA256_RE.fullmatch(str(stamp.get("sha256"))):
        return str(stamp["sha256"])
    actual = sha256_file(real)
    _stamp(real, actual)
    return actual


def _identity(real: Path) -> list[int]:
    st = real.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _stamp_file() -> Path:
    return settings.photofix_home() / STAMP_FILE


def _read_stamps() -> dict[str, object]:
    try:
        data = json.loads(_stamp_file().read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # a lost or damaged stamp file only costs a re-hash
    return data if isinstance(data, dict) else {}


def _stamp(real: Path, sha: str | None) -> None:
    """Remember (or, with None, forget) that ``real`` hashed to ``sha`` as it is now."""
    path = _stamp_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            stamps = _read_stamps()
            if sha is None:
                stamps.pop(str(real), None)
            else:
                stamps[str(real)] = {"sha256": sha, "identity": _identity(real)}
            write_text_atomic(path, json.dumps(stamps, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # read-only home: every run hashes in full, which is slower but just as safe


def _settle(
    entry: ModelEntry, path: Path, actual: str, *, remove: Callable[[Path], None] | None
) -> bool:
    """Accept ``actual`` for ``path`` or raise ChecksumMismatch; True when a hash was recorded now."""
    expected, first = entry.sha256, False
    if expected is None:
        expected, first = _trust(entry, actual)
    if actual != expected:
        if remove is not None:
            remove(path)
        raise ChecksumMismatch(_mismatch_message(entry, path, expected, actual, removed=remove is not None))
    return first


def verify(entry: ModelEntry, cache_dir: PathLike | None = None) -> VerifyResult:
    """Re-hash the cached file in full and compare; records the hash of unverified entries."""
    path = cached_path(entry, cache_dir)
    expected = entry.sha256 or recorded_hash(entry)
    if path is None:
        return VerifyResult(entry.id, None, "missing", expected, None)
    actual = sha256_file(path)
    status: Status
    if expected is None:
        expected, first = _trust(entry, actual)
        status = "recorded" if first else ("ok" if actual == expected else "mismatch")
    else:
        status = "ok" if actual == expected else "mismatch"
    # Keep the stamp truthful: the next run re-checks a file found changed.
    _stamp(path.resolve(), None if status == "mismatch" else actual)
    return VerifyResult(entry.id, path, status, expected, actual)


# --- import (air-gapped machines) ---------------------------------------------


def import_file(entry: ModelEntry, file: PathLike, cache_dir: PathLike | None = None) -> Path:
    """Place a separately downloaded file where ``fetch(offline=True)`` finds it.

    The file is hashed first; a wrong file raises ChecksumMismatch and nothing is placed.
    For an unverified entry its hash is recorded (see ``recorded_hash``).
    """
    src = Path(file)
    if not src.is_file():
        raise UsageError(f"{src} is not a file; pass the downloaded {entry.source.filename} for {entry.id!r}.")
    actual = sha256_file(src)
    expected = entry.sha256 or recorded_hash(entry)
    if expected is not None and actual != expected:
        raise ChecksumMismatch(_import_mismatch_message(entry, src, expected, actual))
    source = entry.source
    if isinstance(source, HubSource):
        dest = _place_in_hub_cache(src, source, actual, settings.hub_cache_path(cache_dir))
    else:
        dest = _place_in_url_store(src, entry, source, actual)
    _settle(entry, dest, actual, remove=None)
    _stamp(dest.resolve(), actual)
    return dest


def _place_in_hub_cache(src: Path, source: HubSource, sha: str, hub_dir: Path) -> Path:
    """Write huggingface_hub's own layout: blobs/<sha256> plus a snapshot symlink at the commit."""
    blob = _hub_root(source, hub_dir) / "blobs" / sha
    pointer = _hub_pointer(source, hub_dir)
    new_blob = not blob.is_file()
    if new_blob:
        copy_atomic(src, blob)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Relative, like huggingface_hub's, so the cache folder can be moved as a whole.
        symlink_atomic(pointer, os.path.relpath(blob, pointer.parent))
    except OSError:
        # No symlinks here (e.g. Windows without developer mode): huggingface_hub then keeps
        # a plain copy in snapshots/, and so do we.
        copy_atomic(blob, pointer)
        if new_blob:
            _unlink(blob)
    return pointer


def _place_in_url_store(src: Path, entry: ModelEntry, source: UrlSource, sha: str) -> Path:
    dest = _url_dest(entry, source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_lock_path(dest))):
        copy_atomic(src, dest)
    return dest


# --- trust on first use ------------------------------------------------------


def forget(entry: ModelEntry, cache_dir: PathLike | None = None) -> list[str]:
    """Undo trust and caching for ``entry``: its first-use record and its cached file.

    Returns what was removed, in words. The next download or import starts afresh.
    """
    removed = []
    path = trust_file()
    if path.is_file():
        with FileLock(str(path) + ".lock"):
            models = _read_trust(path)
            if models.pop(entry.id, None) is not None:
                _write_trust(path, models)
                removed.append(f"the sha256 recorded on first use (in {path})")
    cached = _local_path(entry, cache_dir)
    if cached.is_file() or cached.is_symlink():
        _remover(entry)(cached)
        removed.append(f"the cached file {cached}")
    return removed


def trust_file() -> Path:
    """Where the hashes recorded on first use live (one JSON file under ``photofix_home()``)."""
    return settings.photofix_home() / TRUST_FILE


def _write_trust(path: Path, models: dict[str, object]) -> None:
    write_text_atomic(path, json.dumps({"version": 1, "models": models}, indent=2, sort_keys=True) + "\n")


def recorded_hash(entry: ModelEntry) -> str | None:
    """The sha256 recorded on first use for this entry's current source, if any."""
    record = _read_trust(trust_file()).get(entry.id)
    return _valid_record(record, entry)


def _valid_record(record: object, entry: ModelEntry) -> str | None:
    # A record made for another source (the manifest moved the entry) does not count.
    if isinstance(record, dict) and record.get("source") == str(entry.source):
        sha = record.get("sha256")
        return sha if isinstance(sha, str) and _SHA256_RE.fullmatch(sha) else None
    return None


def _trust(entry: ModelEntry, actual: str) -> tuple[str, bool]:
    """The hash to hold ``entry`` to: the recorded one, or ``actual`` recorded now (True)."""
    path = trust_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # read-modify-write across processes
        models = _read_trust(path)
        recorded = _valid_record(models.get(entry.id), entry)
        if recorded is not None:
            return recorded, False
        models[entry.id] = {
            "sha256": actual,
            "source": str(entry.source),
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_trust(path, models)
    return actual, True


def _read_trust(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WeightsError(_bad_trust_message(path, str(exc))) from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise WeightsError(_bad_trust_message(path, "no 'models' table"))
    return models


def _bad_trust_message(path: Path, why: str) -> str:
    return (
        f"{path} is unreadable ({why}). Fix it, or delete it to have photofix record the hashes of "
        "unverified models again on their next download."
    )


# --- small file helpers ------------------------------------------------------


def _lock_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.lock")


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_hub_file(pointer: Path) -> None:
    """Remove a bad Hub file: its snapshot link and the blob it points to."""
    blob = pointer.resolve() if pointer.is_symlink() else None
    _unlink(pointer)
    if blob is not None and blob.parent.name == "blobs":
        _unlink(blob)


def _remover(entry: ModelEntry) -> Callable[[Path], None]:
    """How a bad cached file of ``entry`` is removed: a Hub snapshot link with its blob, or a URL file."""
    return _remove_hub_file if isinstance(entry.source, HubSource) else _remove_url_file


def _remove_url_file(path: Path) -> None:
    _unlink(path)


# --- messages ----------------------------------------------------------------


def _not_cached_message(entry: ModelEntry) -> str:
    return (
        f"Weights for {entry.id!r} are not on this machine and downloads are off (offline mode). "
        f"On a connected machine run `photofix models download {entry.id}`, copy the file "
        f"({entry.source.filename}) here, then run `photofix models import {entry.id} FILE`. "
        "Or go online: drop --offline and unset PHOTOFIX_OFFLINE / HF_HUB_OFFLINE."
    )


def _download_failed_message(entry: ModelEntry, where: str, exc: object) -> str:
    # HF_ENDPOINT (a Hub mirror) only helps files that come from the Hub
    settings_hint = "HF_ENDPOINT / a proxy (HTTPS_PROXY)" if isinstance(entry.source, HubSource) else "a proxy (HTTPS_PROXY)"
    return (
        f"Could not download {entry.id!r} from {where}: {exc}. Check your connection or set "
        f"{settings_hint}; or download the file elsewhere and run `photofix models import {entry.id} FILE`."
    )


def _mismatch_message(entry: ModelEntry, path: Path, expected: str, actual: str, *, removed: bool) -> str:
    if entry.verified:
        origin = "from the manifest"
        advice = (
            " If this happens again the file upstream has changed: report it, or get the right file "
            f"elsewhere and run `photofix models import {entry.id} FILE`."
        )
    else:
        origin = f"recorded on first use in {trust_file()}"
        advice = (
            f" If the recorded file was the wrong one, run `photofix models forget {entry.id}`, then import or "
            f"download {entry.source.filename} ({entry.source}) again."
        )
    done = " The file was removed; run again to download it afresh." if removed else ""
    return f"Checksum mismatch for {entry.id!r} ({path}): expected sha256 {expected} ({origin}), got {actual}.{done}{advice}"


def _import_mismatch_message(entry: ModelEntry, src: Path, expected: str, actual: str) -> str:
    size = src.stat().st_size
    want = f", {entry.size_bytes} bytes" if entry.size_bytes is not None else ""
    return (
        f"Checksum mismatch: {src} ({size} bytes) has sha256 {actual}, but {entry.id!r} expects {expected}. "
        f"Nothing was imported. Check that you picked {entry.source.filename}{want} from {entry.source}."
        + ("" if entry.verified else f" If the recorded hash belongs to a wrong file, run `photofix models forget {entry.id}` and import again.")
    )
