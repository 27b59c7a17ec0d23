"""Which manifest model a task runs: ``--model``, else the task's default for the tier.

Policy on top of the manifest (which only reads and validates the file): kept apart so
choosing a model stays cheap (no torch) and ``manifest`` keeps one job.
"""

from __future__ import annotations

from photofix.errors import UsageError
from photofix.store.manifest import Manifest, ModelEntry

__all__ = ["choose_entry", "default_overlap"]


def choose_entry(
    manifest: Manifest,
    task: str,
    model_id: str | None,
    tier: str | None,
    scale: float | None = None,
    kind: str | None = None,
    on_cpu: bool = False,
) -> ModelEntry:
    """The manifest entry for ``--model``, else the task's default for the tier.

    A requested ``scale`` prefers a model of that native scale in the same tier
    (no resampling needed); otherwise the default runs and its output is resampled.
    A ``kind`` (deblur: motion or defocus) keeps to models trained for it. With no
    tier, ``on_cpu`` uses the task's CPU default tier. Only models licensed for
    commercial use are ever chosen for the user.
    """
    if model_id:
        entry = manifest.get(model_id)
        if entry.task != task:
            raise UsageError(f"model {model_id!r} is for {entry.task}, not {task}; see 'photofix models list --task {task}'")
        return entry
    candidates = [e for e in manifest.for_task(task) if kind is None or e.params.get("kind") == kind]
    if task in manifest.defaults:
        default = manifest.default_for(task, tier, on_cpu=on_cpu)
        if default in candidates:
            if scale is not None and default.params.get("scale") != scale:
                for entry in candidates:
                    if entry.tier == default.tier and entry.params.get("scale") == scale:
                        return entry
            return default
    free = [e for e in candidates if e.commercial_use]
    if free:
        return next((e for e in free if e.tier == tier), free[0])
    what = f"{kind} {task}" if kind else task
    choices = ", ".join(f"{e.id} ({e.license})" for e in candidates) or "none yet"
    raise UsageError(f"{what} has no model licensed for commercial use, so none is chosen for you; pick one with --model: {choices}")


def default_overlap(manifest: Manifest, arch: str) -> tuple[int, int]:
    """Overlap and minimum tile for a ``--weights`` file: the manifest's for that architecture, else 32 px and 0."""
    same = [e for e in manifest.entries if e.arch == arch]
    if not same:
        return 32, 0
    return max(e.tile_overlap for e in same), max(e.min_tile for e in same)
