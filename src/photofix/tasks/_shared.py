"""What every task's planner needs: the model's recorded hash, device, threads, notices, mask hooks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photofix import settings
from photofix.tasks.spec import Notify, RunSettings


def entry_hash(entry: Any) -> str | None:
    """The hash provenance records: of the cached file itself (verified now), else the expected one."""
    from photofix.store.weights import verified_sha256

    return verified_sha256(entry)


def file_hash(path: Path) -> str:
    from photofix._files import sha256_file

    return sha256_file(path)


def device(run: RunSettings) -> Any:
    from photofix.engine.models import resolve_device

    return resolve_device(run.device)


def set_threads(threads: int | None) -> None:
    import torch

    count = settings.threads(threads)
    if count:
        torch.set_num_threads(count)


def announce_entry(entry: Any, run: RunSettings, notify: Notify) -> bool:
    """Licence note and download notice before a manifest model is fetched; returns offline."""
    from photofix.store.weights import cached_path

    offline = settings.offline(run.offline)
    if not entry.commercial_use:
        notify("note", f"{entry.id} is licensed for non-commercial use only ({entry.license})")
    if not offline and cached_path(entry) is None:
        size = f" ({entry.size_bytes / 1e6:.0f} MB)" if entry.size_bytes else ""
        notify("info", f"downloading {entry.id}{size}, once; later runs use the cached copy")
    notify("detail", f"model {entry.id} ({entry.arch}, {entry.license})")
    return offline


def announce_hash(entry: Any, recorded_now: bool, sha256: str | None, notify: Notify) -> None:
    if recorded_now:
        notify("note", f"{entry.id} has no published sha256; recorded {sha256} and will insist on it from now on")


def fetch_announced(entry: Any, run: RunSettings, notify: Notify) -> Any:
    """The entry's weights file, fetched (first-use hashes only for the right architecture) and announced."""
    from photofix.engine.models import fetch_checked

    fetched = fetch_checked(entry, offline=announce_entry(entry, run, notify))
    announce_hash(entry, fetched.first_use_hash, fetched.sha256, notify)
    return fetched


def load_announced(entry: Any, run: RunSettings, notify: Notify, loader: Any = None) -> Any:
    """The entry's model at the run's device and precision: announced, fetched, loaded (``loader``, else an
    image-to-image model); a first-use hash is kept only when the file loads as the entry's architecture."""
    from photofix.engine.models import load_entry

    offline = announce_entry(entry, run, notify)
    model = load_entry(entry, offline=offline, device=device(run), precision=run.precision, loader=loader,
                       backend=run.backend)
    announce_hash(entry, model.origin.hash_recorded_now, model.origin.sha256, notify)
    return model


def note_once(key: str, text: str, notify: Notify) -> None:
    """A note worth reading once, not on every run: later runs show it as a detail (``-v``).

    Remembered in ``PHOTOFIX_HOME/notes_shown``, one key per line; if that cannot be written,
    the note is simply shown again next time.
    """
    shown = settings.photofix_home() / "notes_shown"
    try:
        seen = key in shown.read_text().splitlines()
    except OSError:
        seen = False
    notify("detail" if seen else "note", text)
    if not seen:
        try:
            shown.parent.mkdir(parents=True, exist_ok=True)
            with shown.open("a") as notes:
                notes.write(key + "\n")
        except OSError:
            pass


def mask_hooks(mask: Path | None, mask_out: Path | None) -> tuple[Callable[[Any], Any], Callable[[Any, Any], None]]:
    """A mask option (a file, or a folder matched by photo name) and mask_out as per-image callbacks."""
    from photofix.methods.masks import find_mask, load_mask, mask_name, save_mask

    def user_mask(image: Any) -> Any:
        found = find_mask(mask, image.meta.source_name) if mask is not None else None
        return None if found is None else load_mask(found, image.pixels.shape)

    written: dict[str, str] = {}  # mask file name -> the photo it belongs to, this run
    lock = threading.Lock()  # photos may finish on several threads

    def export(image: Any, used: Any) -> None:
        if mask_out is None:
            return
        source = image.meta.source_name
        with lock:
            taken = {name for name, owner in written.items() if owner != source}
            name = mask_name(source, taken)
            written[name] = source
        save_mask(used, mask_out, source, taken)

    return user_mask, export
