"""Will a photo fit in memory? Checked from the header's pixel size, before any pixel is decoded.

A pixel-count limit set for honest panoramas still lets through a 429-byte PNG declaring
30000 x 30000, which then takes the machine down while it is restored. So each file's
needs are estimated from its size and compared with what this process may still
allocate: free RAM, or a container (cgroup) or ``ulimit -v`` (RLIMIT_AS) cap when smaller.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal, Union

import psutil

from photofix.errors import NotEnoughMemory, UsageError

# Past the fixed cost of torch and the model, a run's peak memory grows by about this much per
# pixel of the input (its decoded copy, float32 pixels, tile sums) and per pixel of the output
# (the 8-bit canvas that tiling finishes as it blends, and its encoding). Measured as the slope of peak RSS (ru_maxrss of
# one `python -m photofix TASK in.png out.png --weights W -q` child; CPU; random-noise RGB PNGs)
# between two sizes, so the fixed cost drops out:
#   denoise, FFDNet colour, auto tile: 13.5 MP -> 1667 MiB, 24 MP -> 2015 MiB: 34.8 B per pixel;
#   upscale x4, Compact (Real-ESRGAN general-x4v3 layout, random weights), --tile 512:
#     0.54 MP -> 906 MiB, 2.16 MP -> 1007 MiB: 65 B per input pixel, which has 16 output pixels.
# Solved for the two terms (about 33 + 2 B), then rounded up for 16-bit images and encoders' copies.
BYTES_PER_INPUT_PIXEL = 40
BYTES_PER_OUTPUT_PIXEL = 4

AUTO = "auto"
MemoryLimit = Union[int, str, None]  # bytes; "auto" (what the machine has), a size ("8G"), or None: no check
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_NO_CHECK = ("off", "none", "0")
_UNLIMITED_V1 = 2**62  # cgroup v1 reports "no limit" as a huge page-rounded number
CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_memory_limit(value: MemoryLimit) -> int | Literal["auto"] | None:
    """Bytes, "auto", or None (no check), from an int or a text like "auto", "off", "8G", "512M"."""
    if value is None or isinstance(value, int):
        return value or None
    text = value.strip()
    if text.lower() == AUTO:
        return AUTO
    if text.lower() in _NO_CHECK:
        return None
    match = _SIZE.fullmatch(text)
    if not match:
        raise UsageError(f"memory limit {value!r} is not a size; use auto, off, or a size like 8G or 512M")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def needed_bytes(width: int, height: int, output_scale: float = 1.0) -> int:
    """Estimated peak memory to decode, restore and encode an image of this size."""
    per_pixel = BYTES_PER_INPUT_PIXEL + BYTES_PER_OUTPUT_PIXEL * max(1.0, output_scale) ** 2
    return math.ceil(width * height * per_pixel)


def available_bytes(cgroup_root: Path = CGROUP_ROOT) -> int:
    """What this process may still allocate: free RAM, or a cgroup / RLIMIT_AS cap when smaller."""
    caps = [psutil.virtual_memory().available, cgroup_headroom(cgroup_root), address_space_headroom()]
    return min(cap for cap in caps if cap is not None)


def cgroup_headroom(root: Path = CGROUP_ROOT) -> int | None:
    """Bytes left under the tightest memory limit of this process's cgroups (v2 or v1); None if none.

    Reclaimable page cache (inactive files) counts as free, as the kernel drops it first.
    """
    v2, v1 = _own_cgroups()
    candidates = [
        (root / v2, "memory.max", "memory.current", "inactive_file"),
        (root, "memory.max", "memory.current", "inactive_file"),
        (root / "memory" / v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
        (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    ]
    headrooms = []
    for folder, limit_name, usage_name, inactive_name in candidates:
        limit = _read_int(folder / limit_name)
        if limit is None or limit >= _UNLIMITED_V1:
            continue
        usage = _read_int(folder / usage_name) or 0
        inactive = _read_stat(folder / "memory.stat", inactive_name)
        headrooms.append(max(0, limit - max(0, usage - inactive)))
    return min(headrooms, default=None)


def _own_cgroups() -> tuple[str, str]:
    """This process's cgroup paths (v2, v1 memory controller), relative; "" when unknown."""
    v2 = v1 = ""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path.lstrip("/")
        elif "memory" in controllers.split(","):
            v1 = path.lstrip("/")
    return v2, v1


def address_space_headroom() -> int | None:
    """Bytes left under ``ulimit -v`` (RLIMIT_AS), which counts mapped, not used, memory."""
    try:
        import resource
    except ImportError:  # Windows has no rlimits
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(0, soft - psutil.Process().memory_info().vms)


def check_fits(name: str, width: int, height: int, limit: MemoryLimit, output_scale: float = 1.0) -> None:
    """Raise NotEnoughMemory when restoring a ``width`` x ``height`` image would exceed ``limit``."""
    budget = parse_memory_limit(limit)
    if budget is None:
        return
    need = needed_bytes(width, height, output_scale)
    have = available_bytes() if budget == AUTO else budget
    if need <= have:
        return
    scaled = f" with a {output_scale:g}x larger output" if output_scale > 1 else ""
    where = "is available" if budget == AUTO else "is allowed by --memory-limit"
    raise NotEnoughMemory(
        f"{name}: image is {width}x{height} ({width * height / 1e6:.1f} megapixels){scaled} and would need "
        f"about {_gib(need)} of memory, but {_gib(have)} {where}; if you trust the file, free memory or "
        f"set --memory-limit {math.ceil(need / 2**30)}G (swap will be used), or --memory-limit off")


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):  # absent, or "max" (cgroup v2 without a limit)
        return None


def _read_stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


__all__ = [
    "AUTO",
    "BYTES_PER_INPUT_PIXEL",
    "BYTES_PER_OUTPUT_PIXEL",
    "CGROUP_ROOT",
    "MemoryLimit",
    "address_space_headroom",
    "available_bytes",
    "cgroup_headroom",
    "check_fits",
    "needed_bytes",
    "parse_memory_limit",
]
