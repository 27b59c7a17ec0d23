"""What this CPU can compute natively, read once per process.

Reduced precision only pays on a CPU that computes it natively: bf16 on a CPU without
AVX512-BF16 or AMX (or Arm's BF16 extension) is emulated and was 0.21-0.71x the speed of fp32
on this project's build machines (benchmarks/CPU_SPEED.md). Nothing may assume it, so the
answer comes from the running machine: the kernel's CPU flags, and torch's own cpuinfo probe
where the kernel gives none (Windows, macOS).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

# x86 flags (Linux /proc/cpuinfo names) that give native bf16 dot products.
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Flags worth reporting beside them: which vector width oneDNN and OpenVINO can use.
_X86_REPORTED = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", *_X86_BF16_FLAGS)
_ARM_BF16_FEATURE = "bf16"  # Armv8.6 BFMMLA/BFDOT, "Features" in /proc/cpuinfo


@dataclass(frozen=True)
class CpuCapabilities:
    """The CPU's name, the ISA torch dispatches to, and whether bf16 runs natively."""

    name: str
    machine: str
    torch_isa: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "SVE256", "DEFAULT", ...
    flags: tuple[str, ...]  # the reported flags this CPU has
    native_bf16: bool

    @property
    def key(self) -> str:
        """Identifies the CPU for cached measurements: another CPU must measure again."""
        return f"{self.name}|{self.machine}|{self.torch_isa}|{','.join(self.flags)}"

    def summary(self) -> str:
        bf16 = "native bf16" if self.native_bf16 else "no native bf16"
        flags = " ".join(self.flags) or "none of the reported flags"
        return f"{self.name} ({self.machine}; torch ISA {self.torch_isa}; {flags}; {bf16})"


def _cpuinfo_fields(text: str) -> tuple[str, set[str]]:
    """The model name and the flag/feature words of the first CPU in /proc/cpuinfo text."""
    name, words = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not name:
            name = value.strip()
        elif key in ("flags", "features") and not words:
            words = set(value.split())
    return name, words


def _torch_probe() -> tuple[str, set[str]]:
    """torch's ISA and its cpuinfo-based bf16 answers (private functions: absent in some releases)."""
    import torch

    isa = str(torch.backends.cpu.get_cpu_capability())
    found = set()
    for flag, probe in (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_tile", "_is_amx_tile_supported")):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                found.add(flag)
        except Exception:  # noqa: BLE001 - a probe that fails says nothing either way
            pass
    return isa, found


def _macos_arm_bf16() -> bool:
    try:
        answer = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.stdout.strip() == "1"


def detect(cpuinfo: str | None = None) -> CpuCapabilities:
    """Read the running CPU's capabilities (``cpuinfo``: /proc/cpuinfo's text, read when None)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.is_file() else ""
    name, words = _cpuinfo_fields(cpuinfo)
    isa, probed = _torch_probe()
    machine = platform.machine().lower()
    words |= probed
    if machine in ("arm64", "aarch64"):
        native = _ARM_BF16_FEATURE in words or (platform.system() == "Darwin" and _macos_arm_bf16())
        reported = ("bf16",) if native else ()
    else:
        native = any(flag in words for flag in _X86_BF16_FLAGS) or "amx_tile" in probed
        reported = tuple(flag for flag in _X86_REPORTED if flag in words)
    return CpuCapabilities(name or platform.processor() or machine, machine, isa, reported, native)


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> CpuCapabilities:
    """The running CPU's capabilities, detected once per process (tests replace this function)."""
    return detect()


__all__ = ["CpuCapabilities", "cpu_capabilities", "detect"]
