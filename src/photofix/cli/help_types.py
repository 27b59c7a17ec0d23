"""How --help names what an option takes: nothing for a flag, words for values.

typer prints a type tag after every option, ``<bool>`` even for flags that take no value and
``<str>`` for every text; people read ``--tile N`` or ``--suffix TEXT`` more easily, as click
and most command-line tools write them. Applied once, to typer's option class (photofix's CLI is
its only user in the process).
"""

from __future__ import annotations

import re
from typing import Any

import typer.core

_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "file": "FILE", "path": "PATH", "directory": "FOLDER",
          "int range": "INTEGER", "float range": "NUMBER", "list[str]": "TEXT"}


def _value_word(original: Any) -> Any:
    def display(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None  # a flag takes no value
        shown = original(self, ctx)
        if not isinstance(shown, str) or self.metavar is not None:
            return shown
        match = re.fullmatch(r"<(.+)>(\.\.\.)?", shown)
        if match is None:
            return shown
        word = _WORDS.get(match.group(1), match.group(1))  # choices stay as a|b|c
        return word + (match.group(2) or "")

    return display


def _argument_type(self: Any, ctx: Any) -> None:
    return None  # an argument's name (INPUT, OUTPUT) and help already say what it takes


def use_value_words() -> None:
    for name, make in (("TyperOption", _value_word), ("TyperArgument", lambda original: _argument_type)):
        cls = getattr(typer.core, name, None)
        original = getattr(cls, "display_type_rich", None)
        if original is None or getattr(original, "_photofix", False):
            continue  # another typer: keep its own rendering
        patched = make(original)
        patched._photofix = True  # type: ignore[attr-defined]
        cls.display_type_rich = patched


__all__ = ["use_value_words"]
