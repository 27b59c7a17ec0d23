"""What defines a task, in one place: name, help, options with their ranges, and how it plans.

A task's options are a frozen dataclass whose fields carry an ``Option`` (help, range,
choices). That one definition feeds the command-line options, the ``--steps`` parser, the
checks on ``make_processor(**options)`` and the provenance record. ``plan`` turns the
options and the run's settings into a ``PlannedStep``: what will run (recorded before any
weights load) and how to build it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from photofix.errors import UsageError
from photofix.run.provenance import Step

EventKind = Literal["info", "note", "detail"]
# How the library tells its caller what it does (the CLI prints these; a script may ignore them):
# "info" a step of work worth a line (a download), "note" something the user should know,
# "detail" what -v shows (device, tiling, model).
Notify = Callable[[EventKind, str], None]


def ignore(kind: EventKind, text: str) -> None:
    """The default ``Notify``: library callers who want no messages get none."""


@dataclass(frozen=True)
class Option:
    """How one option of a task is shown and checked."""

    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    must_exist: bool = False  # a path that must exist when given (a mask file or folder)
    folder: bool = False  # a folder photofix writes into
    in_record: bool = True  # changes the output's pixels, so it belongs in the provenance record


def option(default: Any, help: str, **how: Any) -> Any:
    """A dataclass field that is a task option."""
    return field(default=default, metadata={"option": Option(help, **how)})


@dataclass(frozen=True)
class OptionField:
    """One option as the generators need it: its name, base type, default and ``Option``."""

    name: str
    kind: type  # float, int, str, bool or Path
    optional: bool
    default: Any
    spec: Option

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """The value as this option holds it; ValueError saying what is allowed."""
        if value is None:
            if self.optional:
                return None
            raise ValueError("must be given")
        if self.kind is bool:
            if isinstance(value, str):
                return _flag(value)
            return bool(value)
        if self.kind is Path:
            path = Path(value).expanduser()
            if self.spec.must_exist and not path.exists():
                raise ValueError(f"{value} does not exist")
            return path
        if self.kind is str:
            text = str(getattr(value, "value", value))
            if self.spec.choices and text not in self.spec.choices:
                raise ValueError(f"must be one of {', '.join(self.spec.choices)}")
            return text
        return self._number(value)

    def _number(self, value: Any) -> Any:
        what = "a whole number" if self.kind is int else "a number"
        try:
            number = self.kind(value)
            if self.kind is int and isinstance(value, float) and value != number:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"must be {what}{self._range()}") from None
        if (self.spec.low is not None and number < self.spec.low) or (self.spec.high is not None and number > self.spec.high):
            raise ValueError(f"must be between {self.spec.low:g} and {self.spec.high:g}")
        return number

    def _range(self) -> str:
        return f" from {self.spec.low:g} to {self.spec.high:g}" if self.spec.low is not None and self.spec.high is not None else ""


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def option_fields(options_type: type) -> list[OptionField]:
    """The options of a task's options dataclass, in declaration order."""
    hints = typing.get_type_hints(options_type)
    found = []
    for item in fields(options_type):
        spec = item.metadata.get("option")
        if spec is None:
            raise TypeError(f"{options_type.__name__}.{item.name} is not declared with option()")
        kind, optional = _base_type(hints[item.name])
        found.append(OptionField(item.name, kind, optional, _default(item), spec))
    return found


def _base_type(hint: Any) -> tuple[type, bool]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args and len(args) < len(typing.get_args(hint)):  # Optional[X]
        return args[0], True
    return hint, False


def _default(item: Field) -> Any:
    return None if item.default is MISSING else item.default


def check_tile(tile: str | int) -> str | int:
    """``tile`` if it is 'auto', 0 (whole image) or a side of at least 32 px; else UsageError."""
    if tile != "auto" and (not str(tile).isdigit() or 0 < int(tile) < 32):
        raise UsageError(f"tile {tile!r}: use 'auto', 0 (whole image) or a tile side of at least 32 pixels")
    return tile


BACKENDS = ("auto", "torch", "openvino")


@dataclass(frozen=True)
class RunSettings:
    """What a run decides beside the task's own options: which model, where and how it runs."""

    model: str | None = None
    weights: Path | None = None
    tier: str | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: str | int = "auto"
    tile_overlap: int | None = None
    offline: bool | None = None
    threads: int | None = None
    backend: str = "auto"  # network runtime on a CPU: auto (OpenVINO where measured faster, if installed), torch, openvino
    dry_run: bool = False  # plan and record only: nothing is downloaded while planning

    def __post_init__(self) -> None:
        if self.model and self.weights:
            raise UsageError("model and weights both choose the model; give one of them")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend {self.backend!r}: choose {', '.join(BACKENDS)}")
        check_tile(self.tile)

    @property
    def tile_side(self) -> int | None:
        """None for auto, 0 for the whole image, else the side."""
        return None if self.tile == "auto" else int(self.tile)


@dataclass
class PlannedStep:
    """A step whose model is chosen and recorded, not yet loaded: ``build()`` loads it."""

    step: Step
    build: Callable[[], Any]


@dataclass(frozen=True)
class TaskSpec:
    """One task: its name, help, options and planner."""

    name: str
    summary: str  # one line, for command lists
    description: str  # --help body: how it works, examples
    options: type  # a frozen dataclass of option() fields
    plan: Callable[[RunSettings, Any, Notify], PlannedStep]

    def option_fields(self) -> list[OptionField]:
        return option_fields(self.options)

    def make_options(self, values: Mapping[str, Any], *, where: str = "") -> Any:
        """The options dataclass from ``values`` (names with - or _), checked; UsageError names the option."""
        known = {f.name: f for f in self.option_fields()}
        checked = {}
        for raw_name, value in values.items():
            name = raw_name.replace("-", "_")
            if name not in known:
                allowed = ", ".join(n.replace("_", "-") for n in known) or "no options of its own"
                raise UsageError(f"{where}{self.name}: unknown option {raw_name!r}; {self.name} takes {allowed}")
            try:
                checked[name] = known[name].check(value)
            except ValueError as error:
                raise UsageError(f"{where}{self.name}: {name.replace('_', '-')}={value!r}: {error}") from None
        return self.options(**checked)

    def recorded(self, options: Any) -> dict[str, Any]:
        """The options that decide the output's pixels, as the provenance record keeps them."""
        kept = {}
        for item in self.option_fields():
            value = getattr(options, item.name)
            if value is not None and item.spec.in_record:
                kept[item.name] = str(value) if isinstance(value, Path) else value
        return dict(sorted(kept.items()))


__all__ = [
    "BACKENDS",
    "EventKind",
    "Notify",
    "Option",
    "OptionField",
    "PlannedStep",
    "RunSettings",
    "TaskSpec",
    "check_tile",
    "ignore",
    "option",
    "option_fields",
]
