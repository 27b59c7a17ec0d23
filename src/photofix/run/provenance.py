"""What made each output, kept in two places: the output's own XMP and a run log.

A ``Record`` names the input by content (sha256), the steps (task, model id, weights
sha256, parameters), the photofix version and the output's own sha256. It is written
into the output's XMP under the ``photofix:`` namespace, so it travels with the file
and any XMP reader (Pillow's ``getxmp``, exiftool) shows it, and appended to
``OUTPUT/.photofix/runs.jsonl``, one JSON object per line.

Resume compares records, not names or times: an output is up to date when its record
has the same input hash and the same recipe fingerprint as the run at hand.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from photofix import __version__
from photofix._files import sha256_file
from photofix.errors import OutputWriteError

__all__ = ["NAMESPACE", "Recipe", "Record", "RunLog", "Step", "find_record", "new_record", "read_xmp_record",
           "record_from_xmp", "sha256_bytes", "sha256_file", "with_record"]

NAMESPACE = "http://ns.photofix.dev/1.0/"
LOG_FOLDER = ".photofix"
LOG_NAME = "runs.jsonl"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
# A JPEG holds XMP in one APP1 segment of at most 65,502 bytes of packet.
_MAX_XMP_BYTES = 65_000


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Step:
    """One step of a recipe as it will run: the model resolved, its options normalised."""

    task: str
    model: str  # manifest id, a weights file name, or "classical"
    weights_sha256: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """Everything but the input that decides an output's pixels and bytes."""

    steps: tuple[Step, ...]
    output_format: str | None = None
    quality: int | None = None

    @property
    def fingerprint(self) -> str:
        """Short stable hash of the recipe: equal fingerprints mean the same settings."""
        canonical = json.dumps(
            {"steps": [asdict(s) for s in self.steps], "format": self.output_format, "quality": self.quality},
            sort_keys=True, separators=(",", ":"), default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class Record:
    """What made one output file."""

    input: str
    input_sha256: str
    output: str
    recipe: str
    steps: list[dict[str, Any]]
    version: str = __version__
    created: str = ""
    output_sha256: str | None = None
    seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def matches(self, input_sha256: str, recipe: str) -> bool:
        return self.input_sha256 == input_sha256 and self.recipe == recipe

    def differs_in(self, input_sha256: str, recipe: str) -> str:
        """Why an existing output is redone: ``input changed`` or ``settings changed``."""
        return "input changed" if self.input_sha256 != input_sha256 else "settings changed"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def new_record(input_name: str, input_sha256: str, output: str, recipe: Recipe, details: dict[str, Any]) -> Record:
    return Record(
        input=input_name,
        input_sha256=input_sha256,
        output=output,
        recipe=recipe.fingerprint,
        steps=[asdict(s) for s in recipe.steps],
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        details=details,
    )


# --- XMP ---------------------------------------------------------------------------


def _text(tag: str, value: Any) -> str:
    escaped = _utf8_safe(str(value)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<photofix:{tag}>{escaped}</photofix:{tag}>"


def _utf8_safe(text: str) -> str:
    """``text`` encodable as UTF-8: bytes of a non-UTF-8 file name (surrogate-escaped on POSIX)
    are shown as ``\\xe9``, so an XMP packet stays valid UTF-8 whatever the names were."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _description(record: Record) -> str:
    steps = "".join(
        '<rdf:li rdf:parseType="Resource">'
        + _text("Task", step["task"])
        + _text("Model", step["model"])
        + (_text("WeightsSHA256", step["weights_sha256"]) if step.get("weights_sha256") else "")
        + _text("Params", json.dumps(step.get("params", {}), sort_keys=True))
        + "</rdf:li>"
        for step in record.steps
    )
    return (
        f'<rdf:Description rdf:about="" xmlns:photofix="{NAMESPACE}">'
        + _text("Version", record.version)
        + _text("Created", record.created)
        + _text("Input", Path(record.input).name)
        + _text("InputSHA256", record.input_sha256)
        + _text("Recipe", record.recipe)
        + f"<photofix:Steps><rdf:Seq>{steps}</rdf:Seq></photofix:Steps>"
        + "</rdf:Description>"
    )


_OLD_DESCRIPTION = re.compile(rb"<rdf:Description[^>]*xmlns:photofix=[^>]*>.*?</rdf:Description>\s*", re.DOTALL)
_RDF_END = re.compile(rb"</rdf:RDF>")


def with_record(xmp: bytes | None, record: Record) -> bytes | None:
    """``xmp`` with this record added (an earlier photofix record replaced).

    The source's own packet is kept byte for byte around the insertion. If it cannot be
    extended (unusual prefixes, malformed XML) or would grow too large for a JPEG, the
    source's XMP is returned unchanged: the run log still holds the record.
    """
    ours = _description(record).encode("utf-8")
    if not xmp:
        packet = (
            b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="' + _RDF.encode() + b'">'
            + ours + b"</rdf:RDF></x:xmpmeta>"
            b'<?xpacket end="w"?>'
        )
        return packet
    cleaned = _OLD_DESCRIPTION.sub(b"", xmp)
    ends = list(_RDF_END.finditer(cleaned))
    if len(ends) != 1:
        return xmp
    merged = cleaned[: ends[0].start()] + ours + cleaned[ends[0].start():]
    if len(merged) > _MAX_XMP_BYTES or _parse(merged) is None:
        return xmp
    return merged


def _parse(xmp: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(xmp.strip(b"\0 \n\r\t"))
    except ET.ParseError:
        return None


def record_from_xmp(xmp: bytes | str | None) -> dict[str, Any] | None:
    """The photofix fields of an XMP packet (InputSHA256, Recipe, Version, Steps), or None."""
    if not xmp:
        return None
    root = _parse(xmp.encode("utf-8") if isinstance(xmp, str) else xmp)
    if root is None:
        return None
    ns = "{" + NAMESPACE + "}"
    for description in root.iter(f"{{{_RDF}}}Description"):
        if description.find(f"{ns}InputSHA256") is None:
            continue
        found = {tag: description.findtext(f"{ns}{tag}") for tag in ("Version", "Created", "Input", "InputSHA256", "Recipe")}
        found["Steps"] = [
            {
                "task": li.findtext(f"{ns}Task"),
                "model": li.findtext(f"{ns}Model"),
                "weights_sha256": li.findtext(f"{ns}WeightsSHA256"),
                "params": json.loads(li.findtext(f"{ns}Params") or "{}"),
            }
            for li in description.iter(f"{{{_RDF}}}li")
        ]
        return found
    return None


def read_xmp_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record embedded in an image file's XMP, or None (no XMP, not photofix's, unreadable)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as img:
            xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
            if xmp is None and img.format == "TIFF":
                xmp = img.tag_v2.get(700)
    except (OSError, ValueError, SyntaxError):
        return None
    return record_from_xmp(xmp)


# --- run log ---------------------------------------------------------------------------


class RunLog:
    """``ROOT/.photofix/runs.jsonl``: one record per output written, the latest one counts.

    Reading never fails: lines that cannot be read (bytes that are not UTF-8, bad JSON, fields
    of the wrong type, a torn last line) are skipped and counted in one entry of ``warnings``.
    Writing adds whole lines or nothing.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.path = self.root / LOG_FOLDER / LOG_NAME
        self._latest: dict[str, Record] | None = None
        self.warnings: list[str] = []  # about reading the log, for the caller to show once

    def key(self, output: Path) -> str:
        try:
            return output.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return output.resolve().as_posix()

    def records(self) -> dict[str, Record]:
        """The latest record per output key, read once; what cannot be read is skipped (see ``warnings``)."""
        if self._latest is None:
            self._latest = {}
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            except OSError as error:
                data = b""
                self.warnings.append(f"{self.path}: cannot be read ({error.strerror or error}); "
                                     "outputs are checked against their XMP records instead")
            skipped = 0
            for line in data.split(b"\n"):
                if not line.strip():
                    continue
                record = _parse_line(line)
                if record is None:
                    skipped += 1
                else:
                    self._latest[record.output] = record
            if skipped:
                lines = "line" if skipped == 1 else "lines"
                self.warnings.append(f"{self.path}: {skipped} unreadable {lines} skipped")
        return self._latest

    def append(self, record: Record) -> None:
        """Add one line for ``record``: the whole line or, if it cannot be written, nothing.

        Written with one append when the disk allows, so runs sharing the log do not
        interleave. Raises ``OutputWriteError`` (the log as it was) when the line cannot be
        written, e.g. on a full disk.
        """
        # ASCII only: names that are not UTF-8 (surrogate-escaped) are kept as \udcXX escapes and
        # read back as the same str.
        line = (json.dumps(asdict(record), sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as error:
            raise _log_write_error(self.path, error) from error
        try:
            _append_whole(fd, line)
        except OSError as error:
            raise _log_write_error(self.path, error) from error
        finally:
            os.close(fd)
        self.records()[record.output] = record

    def record_for(self, output: Path) -> Record | None:
        """What made ``output`` as it is now: the log's record if the file is unchanged since, else its XMP's."""
        logged = self.records().get(self.key(output))
        if logged is not None and logged.output_sha256 == sha256_file(output):
            return logged
        embedded = read_xmp_record(output)
        if embedded is None or not embedded.get("InputSHA256") or not embedded.get("Recipe"):
            return None
        return Record(
            input=embedded.get("Input") or "",
            input_sha256=embedded["InputSHA256"],
            output=self.key(output),
            recipe=embedded["Recipe"],
            steps=embedded["Steps"],
            version=embedded.get("Version") or "",
            created=embedded.get("Created") or "",
            output_sha256=sha256_file(output),
        )

    def is_logged(self, record: Record) -> bool:
        return self.records().get(record.output) is record


_OPTIONAL_STR = (str, type(None))
# What a readable line holds: field -> the types it may have. The first five are required.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "input": (str,), "input_sha256": (str,), "output": (str,), "recipe": (str,), "steps": (list,),
    "version": (str,), "created": (str,), "output_sha256": _OPTIONAL_STR,
    "seconds": (int, float, type(None)), "details": (dict,),
}
_REQUIRED = ("input", "input_sha256", "output", "recipe", "steps")


def _parse_line(line: bytes) -> Record | None:
    """The record on one line of the run log, or None if the line is not one we wrote."""
    try:
        data = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, numbers too long, nesting too deep
        return None
    if not isinstance(data, dict) or not all(name in data for name in _REQUIRED):
        return None
    for name, types in _FIELD_TYPES.items():
        if name in data and (not isinstance(data[name], types) or isinstance(data[name], bool)):
            return None
    if not all(_is_step(step) for step in data["steps"]):
        return None
    return Record.from_dict(data)


def _is_step(step: Any) -> bool:
    return (isinstance(step, dict) and isinstance(step.get("task"), str) and isinstance(step.get("model"), str)
            and isinstance(step.get("weights_sha256"), _OPTIONAL_STR) and isinstance(step.get("params", {}), dict))


def _append_whole(fd: int, line: bytes) -> None:
    """Write ``line`` at the end of the file open as ``fd``, on a line of its own, or leave the file as it was."""
    size = os.fstat(fd).st_size
    if size:
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) != b"\n":
            line = b"\n" + line  # after a torn line (a run killed mid-write), start a fresh one
    view = memoryview(line)
    written = 0
    try:
        while written < len(line):
            count = os.write(fd, view[written:])  # a full disk may take part of it
            if count <= 0:
                raise OSError(errno.ENOSPC, "the disk took no more bytes")
            written += count
    except BaseException:
        # Take back the part written, unless another run has appended since (then the fragment
        # stays, and readers skip it).
        if written and os.fstat(fd).st_size == size + written:
            os.ftruncate(fd, size)
        raise


def _log_write_error(path: Path, error: OSError) -> OutputWriteError:
    return OutputWriteError(f"{path}: cannot add a record ({error.strerror or error}); "
                            "free some disk space or make the folder writable")


def find_record(output: str | os.PathLike, log_root: str | os.PathLike | None = None) -> Record | None:
    """The record of an output file, from the run log of ``log_root`` (default: its folder) or its XMP.

    Looks in the log of each parent folder up to ``log_root`` so outputs in sub-folders of a
    folder run are found too.
    """
    path = Path(output)
    if not path.is_file():
        return None
    roots = [Path(log_root)] if log_root is not None else [path.parent, *path.parent.parents]
    for root in roots:
        if (root / LOG_FOLDER / LOG_NAME).exists():
            found = RunLog(root).record_for(path)
            if found is not None:
                return found
    return RunLog(path.parent).record_for(path)
