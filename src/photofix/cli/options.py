"""Options every task command shares, declared once.

``task_command`` merges these into each task's own signature, so a new task
declares only what is special to it (``--sigma``, ``--scale``…) and Typer sees
one flat list of options with help grouped into panels.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

_IO = "Input and output"
_MODEL = "Model"
_RUN = "Running"
_ENGINE = "Engine"
_REPORT = "Reporting"


class Tier(str, Enum):
    fast = "fast"
    balanced = "balanced"
    best = "best"


class OutputFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    webp = "webp"
    tiff = "tiff"
    avif = "avif"
    bmp = "bmp"

    @property
    def pillow_name(self) -> str:
        return {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "avif": "AVIF", "bmp": "BMP"}[self.value]


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class Backend(str, Enum):
    auto = "auto"
    torch = "torch"
    openvino = "openvino"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


def parse_tile(value: str) -> str:
    """``auto``, ``0`` (whole image) or a side length ≥ 32: the library's rule, checked at parse time."""
    from photofix.errors import UsageError
    from photofix.tasks import check_tile

    try:
        check_tile(value)
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None
    return value


def parse_memory_limit(value: str) -> str:
    """``auto``, ``off`` or a size like ``16G``; checked here so a typo fails before the first file."""
    from photofix.errors import UsageError
    from photofix.imageio.memory import parse_memory_limit as parse

    try:
        parse(value)
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None
    return value


InputArg = Annotated[
    str,
    typer.Argument(
        metavar="INPUT",
        help="An image file, a folder (-r descends into sub-folders), a quoted glob like 'scans/*.tif', or - for stdin.",
        show_default=False,
    ),
]
OutputArg = Annotated[
    str,
    typer.Argument(
        metavar="OUTPUT",
        help="A file (for one input), a folder (created; mirrors the input tree), or - for stdout.",
        show_default=False,
    ),
]


@dataclass
class Common:
    """The shared options, as the command received them."""

    recursive: bool = False
    format: Optional[OutputFormat] = None
    suffix: str = ""
    quality: Optional[int] = None
    force: bool = False
    dry_run: bool = False
    preview: bool = False
    include: Optional[list[str]] = None
    exclude: Optional[list[str]] = None
    fail_fast: bool = False
    max_pixels: int = 1_000_000_000
    memory_limit: str = "auto"
    model: Optional[str] = None
    weights: Optional[Path] = None
    tier: Optional[Tier] = None
    offline: bool = False
    device: str = "auto"
    precision: Precision = Precision.auto
    backend: Backend = Backend.auto
    tile: str = "auto"
    tile_overlap: Optional[int] = None
    threads: Optional[int] = None
    jobs: Optional[int] = None
    engine: Engine = Engine.local
    ray_address: Optional[str] = None
    workers: Optional[int] = None
    gpus_per_worker: float = 0.0
    json: bool = False
    quiet: bool = False
    verbose: bool = False


_COMMON_ANNOTATIONS: dict[str, Any] = {
    "recursive": Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders of INPUT.", rich_help_panel=_IO)],
    "format": Annotated[
        Optional[OutputFormat],
        typer.Option("--format", "-f", help="Output format. Default: the input's own format.", rich_help_panel=_IO, case_sensitive=False),
    ],
    "suffix": Annotated[str, typer.Option(help="Text added to each output's file name, e.g. _clean.", rich_help_panel=_IO)],
    "quality": Annotated[
        Optional[int],
        typer.Option(min=1, max=100, help="JPEG/WebP/AVIF quality. Default: the source JPEG's own quality, else 95 (AVIF 90; WebP lossless).", rich_help_panel=_IO, show_default=False),
    ],
    "force": Annotated[
        bool,
        typer.Option(
            "--force",
            help="Redo every output, replacing existing files. Without it an output is skipped when its record shows the "
            "same input content and settings, redone when either changed, and kept when photofix did not make it.",
            rich_help_panel=_IO,
        ),
    ],
    "dry_run": Annotated[bool, typer.Option("--dry-run", help="List what would be done; load nothing, write nothing.", rich_help_panel=_IO)],
    "preview": Annotated[
        bool,
        typer.Option("--preview", help="Also write a small before/after JPEG beside each output (NAME.preview.jpg).", rich_help_panel=_IO),
    ],
    "include": Annotated[
        Optional[list[str]],
        typer.Option(
            "--include",
            help="Only inputs matching this glob (repeatable), e.g. '*.tif' or '2019/*'; a pattern without / matches file names.",
            rich_help_panel=_IO,
            show_default=False,
        ),
    ],
    "exclude": Annotated[
        Optional[list[str]],
        typer.Option("--exclude", help="Skip inputs matching this glob (repeatable), e.g. '*_thumb.jpg'.", rich_help_panel=_IO, show_default=False),
    ],
    "fail_fast": Annotated[
        bool,
        typer.Option("--fail-fast", help="Stop at the first file that fails (default: report it and go on).", rich_help_panel=_IO),
    ],
    "max_pixels": Annotated[
        int,
        typer.Option(min=0, help="Refuse images with more pixels than this (decompression-bomb guard); 0 = no limit.", rich_help_panel=_IO),
    ],
    "memory_limit": Annotated[
        str,
        typer.Option(
            callback=parse_memory_limit,
            metavar="auto|SIZE|off",
            help="Refuse, before decoding, an image whose restoration would need more memory than this (estimated from "
            "its pixel size and the task's output scale; a refused file fails alone). auto = what is free now, or a "
            "container or ulimit -v cap when smaller; SIZE like 16G or 512M sets it yourself (e.g. to count on swap); "
            "off = no check.",
            rich_help_panel=_IO,
        ),
    ],
    "model": Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Model id from 'photofix models list'. Default: the task's default for --tier.", rich_help_panel=_MODEL, show_default=False),
    ],
    "weights": Annotated[
        Optional[Path],
        typer.Option(
            help="A local checkpoint (.pth/.safetensors/.pt) instead of a manifest model; the architecture is detected.",
            exists=True,
            dir_okay=False,
            readable=True,
            rich_help_panel=_MODEL,
            show_default=False,
        ),
    ],
    "tier": Annotated[
        Optional[Tier],
        typer.Option(help="Pick the task's fast, balanced or best model. Default: the fastest model with a clear gain on a CPU (fast), balanced with a GPU.", rich_help_panel=_MODEL, show_default=False),
    ],
    "offline": Annotated[bool, typer.Option("--offline", help="Never download; use only cached or imported weights.", rich_help_panel=_MODEL)],
    "device": Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps. auto = CUDA, then MPS, then CPU.", rich_help_panel=_RUN)],
    "precision": Annotated[
        Precision,
        typer.Option(help="auto: fp16 on CUDA where the model supports it; on a CPU with native bf16 (AVX512-BF16, AMX, "
                          "Arm BF16), bf16 only where a one-time check on your first photo shows it keeps quality and "
                          "saves time; fp32 otherwise.", rich_help_panel=_RUN),
    ],
    "backend": Annotated[
        Backend,
        typer.Option(help="Network runtime on a CPU. auto: OpenVINO where it was measured faster (the Compact upscaler) "
                          "if installed (pip install \"photofix[openvino]\"), else torch.", rich_help_panel=_RUN),
    ],
    "tile": Annotated[
        str,
        typer.Option(
            callback=parse_tile,
            help="Tile side in pixels: auto, 0 (whole image) or N. Smaller tiles use less memory.",
            rich_help_panel=_RUN,
        ),
    ],
    "tile_overlap": Annotated[
        Optional[int],
        typer.Option(min=0, help="Overlap between tiles in pixels. Default: the model's own (manifest).", rich_help_panel=_RUN, show_default=False),
    ],
    "threads": Annotated[
        Optional[int],
        typer.Option(min=1, help="CPU threads for the model. Default: all cores (or PHOTOFIX_THREADS).", rich_help_panel=_RUN, show_default=False),
    ],
    "jobs": Annotated[
        Optional[int],
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=16,
            help="Files in flight: N > 1 decodes the next files and writes the last one while the model runs "
            "(one model in memory); 1 = one file at a time. Default: 2 when the model leaves CPU cores free "
            "(GPU, or --threads below the core count), else 1.",
            rich_help_panel=_RUN,
            show_default=False,
        ),
    ],
    # "\\[" keeps rich markup from reading "[ray]" as a style tag
    "engine": Annotated[
        Engine,
        typer.Option(
            help="local = this process; ray = a Ray cluster (pip install \"photofix\\[ray]\"): decoding and writing in "
            "Ray tasks, the model in Ray actors, the same outputs, records and exit codes. With ray, INPUT and OUTPUT "
            "may also be URIs (s3://, gs://, file://).",
            rich_help_panel=_ENGINE,
            case_sensitive=False,
        ),
    ],
    "ray_address": Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            help="The Ray cluster to join: auto (one running here, from 'ray start'), or ray://HEAD:10001. "
            "Default: RAY_ADDRESS, else join or start a local Ray.",
            rich_help_panel=_ENGINE,
            show_default=False,
        ),
    ],
    "workers": Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            min=1,
            help="Model actors (each loads the model once). Default: one per --gpus-per-worker GPUs in the cluster, "
            "else 1 using every CPU.",
            rich_help_panel=_ENGINE,
            show_default=False,
        ),
    ],
    "gpus_per_worker": Annotated[
        float,
        typer.Option("--gpus-per-worker", min=0, help="GPUs each model actor reserves (0.5 puts two on a GPU); 0 = CPU.",
                     rich_help_panel=_ENGINE),
    ],
    "json": Annotated[
        bool,
        typer.Option("--json", help="Print one JSON record per file and a summary on stdout (messages stay on stderr).", rich_help_panel=_REPORT),
    ],
    "quiet": Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.", rich_help_panel=_REPORT)],
    "verbose": Annotated[bool, typer.Option("--verbose", "-v", help="Also print model, device, tiling and per-file details.", rich_help_panel=_REPORT)],
}

_COMMON_NAMES = [f.name for f in fields(Common)]
assert set(_COMMON_NAMES) == set(_COMMON_ANNOTATIONS), "every shared option needs an annotation"


def task_command(app: typer.Typer, name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(input, output, common, **task_options)`` as ``photofix NAME`` with the shared options."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name not in {"input", "output", "common"}]
        defaults = Common()
        params = [
            inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=InputArg),
            inspect.Parameter("output", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=OutputArg),
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own),
            *(
                inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, n), annotation=_COMMON_ANNOTATIONS[n])
                for n in _COMMON_NAMES
            ),
        ]

        def command(**kwargs: Any) -> Any:
            common = Common(**{n: kwargs.pop(n) for n in _COMMON_NAMES})
            return fn(kwargs.pop("input"), kwargs.pop("output"), common, **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        # The one-line summary lists the command; --help adds the docstring (how it works, examples).
        body = flowed(fn.__doc__ or "")
        # --help shows the docstring alone: its first line already says what the listing's summary says
        app.command(name, help=body or help_text, short_help=help_text, no_args_is_help=True)(command)
        return fn

    return decorator


def flowed(doc: str) -> str:
    """A docstring as --help shows it: paragraphs (blank-line separated) each joined into one line.

    Rich keeps a paragraph's own line breaks, so source-wrapped text would break mid-sentence
    at the terminal's width (``downloads`` / ``about 660 MB``); joined, it wraps once, cleanly.
    """
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines() if line.strip()) for p in paragraphs if p.strip())
