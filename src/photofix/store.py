"""The model store, as callers use it: the manifest, and fetching, checking, importing and forgetting weights.

One public surface over ``manifest``, ``weights`` (download, hashes, trust on first use) and
the architecture check in ``models`` that guards what a first-use hash may pin.
"""

from __future__ import annotations

from .manifest import Manifest, ModelEntry, load_manifest
from .weights import FetchedWeights, VerifyResult, cached_path, forget, trust_file, verify


def download(entry: ModelEntry, *, offline: bool | None = None) -> FetchedWeights:
    """The entry's weights on disk, downloaded if needed; a first-use hash only for the right architecture."""
    from .models import fetch_checked

    return fetch_checked(entry, offline=offline)


def import_file(entry: ModelEntry, file: str) -> object:
    """Place a file fetched elsewhere in the cache, once it is known to be the entry's model."""
    from .models import import_weights

    return import_weights(entry, file)


__all__ = [
    "FetchedWeights",
    "Manifest",
    "ModelEntry",
    "VerifyResult",
    "cached_path",
    "download",
    "forget",
    "import_file",
    "load_manifest",
    "trust_file",
    "verify",
]
