"""Read ``weights_manifest.toml`` into frozen, validated entries.

The manifest is the single list of models photofix may download. Everything is checked
when it is loaded, so a typo in the file fails at once with the entry and field named,
not later halfway through a download.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from photofix import settings
from photofix.errors import ManifestError, UnknownModel, UsageError

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "TIERS",
    "HubSource",
    "UrlSource",
    "Source",
    "ModelEntry",
    "Manifest",
    "load_manifest",
    "parse_manifest",
]

MANIFEST_NAME = "weights_manifest.toml"
SCHEMA_VERSION = 1
TIERS = ("fast", "balanced", "best")
REPO_TYPES = ("model", "dataset", "space")
UNVERIFIED = "unverified"

# Ids and task names become folder names and CLI arguments: keep them plain.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_REVISION_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_URL_SCHEMES = ("https://", "file://")

_ENTRY_KEYS = {
    "id", "task", "arch", "tier", "license", "commercial_use", "sha256",
    "size_bytes", "tile_overlap", "min_tile", "notes", "source", "params",
}
_HUB_KEYS = {"hf", "filename", "revision", "repo_type"}
_URL_KEYS = {"url", "filename"}


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face repository at a pinned commit."""

    repo: str
    filename: str
    revision: str
    repo_type: str = "model"

    def __str__(self) -> str:
        return f"hf:{self.repo}@{self.revision}/{self.filename}"


@dataclass(frozen=True)
class UrlSource:
    """A file at a plain URL (e.g. a GitHub release asset)."""

    url: str
    filename: str

    def __str__(self) -> str:
        return self.url


Source = Union[HubSource, UrlSource]


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model; ``sha256`` is None when no full hash is known yet."""

    id: str
    task: str
    arch: str
    tier: str
    source: Source
    sha256: str | None
    size_bytes: int | None
    license: str
    commercial_use: bool
    params: Mapping[str, Any]
    tile_overlap: int
    notes: str = ""
    # smallest tile side (px) that keeps tiled output close to whole-image output; 0 = any
    min_tile: int = 0

    @property
    def verified(self) -> bool:
        """True when the manifest carries the file's full sha256."""
        return self.sha256 is not None


@dataclass(frozen=True)
class Manifest:
    """All entries plus the per-task defaults; lookups raise typed errors."""

    entries: tuple[ModelEntry, ...]
    # task -> tier -> model id
    defaults: Mapping[str, Mapping[str, str]]
    # task -> tier used when none is asked for
    default_tiers: Mapping[str, str]
    path: str = ""
    # task -> tier used when none is asked for and the model runs on a CPU
    cpu_default_tiers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # task -> the one-channel model grey photos get when no model is named
    grey_defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    _by_id: Mapping[str, ModelEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", MappingProxyType({e.id: e for e in self.entries}))

    def get(self, model_id: str) -> ModelEntry:
        """The entry with this id; UnknownModel suggests close matches."""
        try:
            return self._by_id[model_id]
        except KeyError:
            raise UnknownModel(_unknown_model_message(model_id, list(self._by_id))) from None

    def for_task(self, task: str) -> tuple[ModelEntry, ...]:
        return tuple(e for e in self.entries if e.task == task)

    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.task for e in self.entries))

    def tiers(self, task: str) -> tuple[str, ...]:
        """Tiers with a default model for ``task``, fastest first."""
        return tuple(t for t in TIERS if t in self.defaults.get(task, {}))

    def default_for(self, task: str, tier: str | None = None, *, on_cpu: bool = False) -> ModelEntry:
        """The model to use for ``task`` at ``tier``.

        With no tier: the task's CPU default tier when ``on_cpu``, else its default tier.
        """
        if task not in self.defaults:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UsageError(f"No default model for task {task!r}; tasks with defaults: {known}.")
        fallback = self.cpu_default_tiers.get(task) if on_cpu else None
        chosen = tier or fallback or self.default_tiers[task]
        by_tier = self.defaults[task]
        if chosen not in by_tier:
            offered = ", ".join(self.tiers(task))
            raise UsageError(f"Unknown tier {chosen!r} for {task}; choose one of: {offered}.")
        return self.get(by_tier[chosen])


def _unknown_model_message(model_id: str, ids: list[str]) -> str:
    close = difflib.get_close_matches(model_id, ids, n=3, cutoff=0.5)
    close += [i for i in ids if model_id and model_id in i and i not in close]
    hint = f" Did you mean {', '.join(repr(c) for c in close[:3])}?" if close else ""
    return f"Unknown model {model_id!r}.{hint} Run `photofix models list` to see every model."


# --- loading -----------------------------------------------------------------

_cache: dict[str, tuple[tuple[int, int] | None, Manifest]] = {}
_cache_lock = threading.Lock()


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Load and validate a manifest, cached per path.

    Default: ``PHOTOFIX_MANIFEST`` when set (a model list of your own), else the packaged file.

    The cache is keyed on the file's mtime and size too, so an edited file is re-read.
    """
    if path is None:
        path = settings.manifest_path()
    if path is None:
        resource = importlib.resources.files("photofix") / MANIFEST_NAME
        key, read = str(resource), resource.read_bytes
    else:
        key, read = str(Path(path).resolve()), Path(path).read_bytes
    stamp = _stamp(key)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[1]
    try:
        raw = read()
    except OSError as exc:
        raise ManifestError(f"Cannot read the weights manifest {key}: {exc}. Reinstall photofix or pass an existing file.") from exc
    manifest = parse_manifest(raw.decode("utf-8"), origin=key)
    with _cache_lock:
        _cache[key] = (stamp, manifest)
    return manifest


def _stamp(key: str) -> tuple[int, int] | None:
    try:
        st = os.stat(key)
    except OSError:  # e.g. a resource inside a zip: no cheap change check, so no caching
        return None
    return (st.st_mtime_ns, st.st_size)


def parse_manifest(text: str, origin: str = "<string>") -> Manifest:
    """Parse and validate manifest TOML text; ``origin`` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{origin} is not valid TOML: {exc}. Fix the syntax at that line.") from exc
    return _Validator(origin).manifest(data)


class _Validator:
    """Turns parsed TOML into a Manifest, raising ManifestError with the entry and field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.origin}: {where}: {problem}")

    def manifest(self, data: dict[str, Any]) -> Manifest:
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise self.fail("schema", f"expected {SCHEMA_VERSION}, got {schema!r}; this photofix reads schema {SCHEMA_VERSION} only (upgrade photofix for newer manifests)")
        extra = set(data) - {"schema", "defaults", "model"}
        if extra:
            raise self.fail("top level", f"unknown keys {sorted(extra)}; allowed: schema, defaults, [[model]]")
        models = data.get("model", [])
        if not isinstance(models, list) or not models:
            raise self.fail("model", "needs at least one [[model]] table")
        entries = tuple(self.entry(i, m) for i, m in enumerate(models))
        self.unique_ids(entries)
        defaults, default_tiers, cpu_tiers, grey = self.defaults(data.get("defaults", {}), {e.id: e for e in entries})
        return Manifest(entries, defaults, default_tiers, path=self.origin, cpu_default_tiers=cpu_tiers, grey_defaults=grey)

    def unique_ids(self, entries: tuple[ModelEntry, ...]) -> None:
        seen: set[str] = set()
        for e in entries:
            if e.id in seen:
                raise self.fail(f"model {e.id!r}", "id: duplicate id; every [[model]] needs its own id")
            seen.add(e.id)

    def entry(self, index: int, raw: Any) -> ModelEntry:
        if not isinstance(raw, dict):
            raise self.fail(f"model #{index + 1}", "must be a table")
        model_id = raw.get("id")
        if not isinstance(model_id, str) or not _NAME_RE.fullmatch(model_id):
            raise self.fail(f"model #{index + 1}", f"id: must be lowercase letters, digits, '.', '-' or '_', got {model_id!r}")
        where = f"model {model_id!r}"
        unknown = set(raw) - _ENTRY_KEYS
        if unknown:
            raise self.fail(where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
        task = self.name(where, raw, "task")
        tier = raw.get("tier")
        if tier not in TIERS:
            raise self.fail(where, f"tier: must be one of {', '.join(TIERS)}, got {tier!r}")
        return ModelEntry(
            id=model_id,
            task=task,
            arch=self.text(where, raw, "arch"),
            tier=tier,
            source=self.source(where, raw.get("source")),
            sha256=self.sha256(where, raw.get("sha256")),
            size_bytes=self.size(where, raw.get("size_bytes")),
            license=self.text(where, raw, "license"),
            commercial_use=self.boolean(where, raw, "commercial_use"),
            params=self.params(where, raw.get("params", {})),
            tile_overlap=self.overlap(where, raw.get("tile_overlap")),
            notes=self.text(where, raw, "notes", required=False),
            min_tile=self.min_tile(where, raw.get("min_tile", 0)),
        )

    def text(self, where: str, raw: dict[str, Any], key: str, required: bool = True) -> str:
        value = raw.get(key, None if required else "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(where, f"{key}: must be a non-empty string, got {value!r}")
        return value

    def name(self, where: str, raw: dict[str, Any], key: str) -> str:
        value = self.text(where, raw, key)
        if not _NAME_RE.fullmatch(value):
            raise self.fail(where, f"{key}: must be lowercase letters, digits, '.', '-' or '_', got {value!r}")
        return value

    def boolean(self, where: str, raw: dict[str, Any], key: str) -> bool:
        value = raw.get(key)
        if not isinstance(value, bool):
            raise self.fail(where, f"{key}: must be true or false, got {value!r}")
        return value

    def sha256(self, where: str, value: Any) -> str | None:
        if value == UNVERIFIED:
            return None
        if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
            raise self.fail(where, f"sha256: must be 64 hex characters or \"{UNVERIFIED}\", got {value!r}")
        return value.lower()

    def size(self, where: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(where, f"size_bytes: must be a positive integer (or omitted when unknown), got {value!r}")
        return value

    def min_tile(self, where: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(where, f"min_tile: must be an integer >= 0 (pixels), got {value!r}")
        return value

    def overlap(self, where: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(where, f"tile_overlap: must be an integer >= 0 (pixels at input scale), got {value!r}")
        return value

    def source(self, where: str, raw: Any) -> Source:
        if not isinstance(raw, dict):
            raise self.fail(where, "source: missing [model.source] table with either hf + filename + revision, or url + filename")
        has_hf, has_url = "hf" in raw, "url" in raw
        if has_hf == has_url:
            state = "both" if has_hf else "neither"
            raise self.fail(where, f"source: has {state} of 'hf' and 'url'; give exactly one")
        allowed = _HUB_KEYS if has_hf else _URL_KEYS
        unknown = set(raw) - allowed
        if unknown:
            raise self.fail(where, f"source: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        return self.hub_source(where, raw) if has_hf else self.url_source(where, raw)

    def hub_source(self, where: str, raw: dict[str, Any]) -> HubSource:
        repo = raw["hf"]
        if not isinstance(repo, str) or not _REPO_ID_RE.fullmatch(repo):
            raise self.fail(where, f"source.hf: must be a repo id like 'owner/name', got {repo!r}")
        revision = raw.get("revision")
        if not isinstance(revision, str) or not _REVISION_RE.fullmatch(revision):
            got = f"{revision!r} ({len(revision)} chars)" if isinstance(revision, str) else repr(revision)
            raise self.fail(where, f"source.revision: must be a full 40-character lowercase commit hash, got {got}; copy it from the repo's commit history")
        repo_type = raw.get("repo_type", "model")
        if repo_type not in REPO_TYPES:
            raise self.fail(where, f"source.repo_type: must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}")
        return HubSource(repo, self.filename(where, raw, allow_folders=True), revision, repo_type)

    def url_source(self, where: str, raw: dict[str, Any]) -> UrlSource:
        url = raw["url"]
        if not isinstance(url, str) or not url.startswith(_URL_SCHEMES):
            raise self.fail(where, f"source.url: must start with {' or '.join(_URL_SCHEMES)}, got {url!r}")
        return UrlSource(url, self.filename(where, raw, allow_folders=False))

    def filename(self, where: str, raw: dict[str, Any], allow_folders: bool) -> str:
        name = raw.get("filename")
        parts = name.split("/") if isinstance(name, str) else []
        bad = not parts or any(p in ("", ".", "..") for p in parts) or "\\" in name
        if bad or (not allow_folders and len(parts) > 1):
            kind = "a relative path inside the repo" if allow_folders else "a plain file name"
            raise self.fail(where, f"source.filename: must be {kind}, got {name!r}")
        return name

    def params(self, where: str, raw: Any) -> Mapping[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(where, "params: must be a table")
        scale = raw.get("scale", 1)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise self.fail(where, f"params.scale: must be a positive integer, got {scale!r}")
        if "blind" in raw and not isinstance(raw["blind"], bool):
            raise self.fail(where, f"params.blind: must be true or false, got {raw['blind']!r}")
        if "sigma_range" in raw:
            self.sigma_range(where, raw["sigma_range"])
        return MappingProxyType({k: _frozen(v) for k, v in raw.items()})

    def sigma_range(self, where: str, value: Any) -> None:
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1]
        )
        if not ok:
            raise self.fail(where, f"params.sigma_range: must be [low, high] with 0 <= low <= high, got {value!r}")

    def defaults(
        self, raw: Any, by_id: dict[str, ModelEntry]
    ) -> tuple[Mapping[str, Mapping[str, str]], Mapping[str, str], Mapping[str, str], Mapping[str, str]]:
        if not isinstance(raw, dict):
            raise self.fail("defaults", "must be a table of [defaults.<task>] tables")
        tiers_by_task: dict[str, Mapping[str, str]] = {}
        default_tiers: dict[str, str] = {}
        cpu_tiers: dict[str, str] = {}
        grey: dict[str, str] = {}
        for task, table in raw.items():
            where = f"defaults.{task}"
            if not isinstance(table, dict):
                raise self.fail(where, "must be a table mapping tiers to model ids")
            unknown = set(table) - set(TIERS) - {"default", "cpu_default", "grey"}
            if unknown:
                raise self.fail(where, f"unknown tier {sorted(unknown)}; allowed: {', '.join(TIERS)}, 'default', 'cpu_default' and 'grey'")
            if "grey" in table:
                self.default_target(where, "grey", table["grey"], task, by_id)
                if by_id[table["grey"]].params.get("channels") != 1:
                    raise self.fail(where, f"grey: {table['grey']!r} is not a one-channel model (params.channels = 1)")
                grey[task] = table["grey"]
            chosen = {tier: table[tier] for tier in TIERS if tier in table}
            for tier, model_id in chosen.items():
                self.default_target(where, tier, model_id, task, by_id)
            default = table.get("default")
            if default not in chosen:
                raise self.fail(where, f"default: must name one of the tiers given here ({', '.join(chosen) or 'none'}), got {default!r}")
            cpu_default = table.get("cpu_default", default)
            if cpu_default not in chosen:
                raise self.fail(where, f"cpu_default: must name one of the tiers given here ({', '.join(chosen)}), got {cpu_default!r}")
            tiers_by_task[task] = MappingProxyType(chosen)
            default_tiers[task] = default
            cpu_tiers[task] = cpu_default
        return MappingProxyType(tiers_by_task), MappingProxyType(default_tiers), MappingProxyType(cpu_tiers), MappingProxyType(grey)

    def default_target(self, where: str, tier: str, model_id: Any, task: str, by_id: dict[str, ModelEntry]) -> None:
        entry = by_id.get(model_id) if isinstance(model_id, str) else None
        if entry is None:
            raise self.fail(where, f"{tier}: {model_id!r} is not the id of any [[model]]")
        if entry.task != task:
            raise self.fail(where, f"{tier}: {model_id!r} is a {entry.task} model, not {task}")


def _frozen(value: Any) -> Any:
    """Read-only copy of a TOML value, so entries cannot be changed after loading."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
