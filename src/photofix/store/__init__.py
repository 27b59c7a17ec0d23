"""The model store, as callers use it: the manifest, which models run by default, and fetching, checking, importing and forgetting weights.

One public surface over ``manifest``, ``weights`` (download, hashes, trust on first use) and
the architecture check in ``models`` that guards what a first-use hash may pin.
"""

from __future__ import annotations

from photofix.store.manifest import Manifest, ModelEntry, load_manifest
from photofix.store.weights import FetchedWeights, VerifyResult, cached_path, forget, trust_file, verify


def download(entry: ModelEntry, *, offline: bool | None = None) -> FetchedWeights:
    """The entry's weights on disk, downloaded if needed; a first-use hash only for the right architecture."""
    from photofix.engine.models import fetch_checked

    return fetch_checked(entry, offline=offline)


def runs_on_cpu(device: str | None = None) -> bool:
    """Whether a run here (``device``, else PHOTOFIX_DEVICE, else auto) uses the CPU defaults.

    Resolved exactly as a run resolves it, so what ``models list`` marks is what runs.
    """
    from photofix.engine.models import resolve_device

    return resolve_device(device).type == "cpu"


def default_entries(on_cpu: bool, manifest: Manifest | None = None) -> tuple[ModelEntry, ...]:
    """The model each task runs with no ``--model`` or ``--tier``, on a CPU or a GPU; manifest task order.

    Uses the run's own choice (``choose_entry``) so a pre-fetch for another machine gets what it will run,
    and a task's model for grey photos beside it (``ffdnet-gray``: grey scans are common).
    """
    from photofix.store.choice import choose_entry

    manifest = manifest or load_manifest()
    chosen: list[ModelEntry] = []
    for task in manifest.tasks():
        if task in manifest.defaults:
            chosen.append(choose_entry(manifest, task, None, None, on_cpu=on_cpu))
            grey = manifest.grey_defaults.get(task)
            if grey is not None and grey != chosen[-1].id:
                chosen.append(manifest.get(grey))
    return tuple(chosen)


def import_file(entry: ModelEntry, file: str) -> object:
    """Place a file fetched elsewhere in the cache, once it is known to be the entry's model."""
    from photofix.engine.models import import_weights

    return import_weights(entry, file)


__all__ = [
    "FetchedWeights",
    "Manifest",
    "ModelEntry",
    "VerifyResult",
    "cached_path",
    "default_entries",
    "download",
    "forget",
    "import_file",
    "load_manifest",
    "runs_on_cpu",
    "trust_file",
    "verify",
]
