"""XMP too large for one JPEG segment, split as the XMP specification says (part 3, 1.1.3.1).

A JPEG APP1 segment holds at most 65,504 bytes of XMP; a PNG or TIFF source can carry
more (a long edit history, photoshop:DocumentAncestors). Rather than drop it, the packet
is split into a StandardXMP, which keeps what fits and names the rest by the MD5 digest
of the ExtendedXMP in ``xmpNote:HasExtendedXMP``, and the ExtendedXMP itself, written in
numbered APP1 chunks that exiftool, Adobe's XMP toolkit and others join back. Whole
top-level properties move, the largest first, so the small ones most readers look for
(dates, title, rating, photofix's own record) stay in the StandardXMP every reader sees.
"""

from __future__ import annotations

import hashlib
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

STANDARD_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
EXTENSION_HEADER = b"http://ns.adobe.com/xmp/extension/\0"
MAX_STANDARD = 65533 - len(STANDARD_HEADER)  # the segment's 2-byte length counts itself
CHUNK = 65400  # Adobe's chunk size, within 65533 - 35 (header) - 32 (GUID) - 8 (length, offset)
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NOTE = "http://ns.adobe.com/xmp/note/"
_PADDING = re.compile(rb"\s+(?=<\?xpacket end=)")  # room for in-place edits, useless in a new file


@dataclass
class _Description:
    """A top-level rdf:Description: where its properties are, and the namespaces they use."""

    about: str
    namespaces: dict[str | None, str]
    properties: list[tuple[int, int]] = field(default_factory=list)  # byte spans


def with_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    """``jpeg`` (written without XMP) with ``xmp`` added after its leading APPn segments."""
    pos = 2  # after SOI
    while jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
    return jpeg[:pos] + xmp_segments(xmp) + jpeg[pos:]


def xmp_segments(xmp: bytes) -> bytes:
    """APP1 segments for ``xmp``: one StandardXMP, then ExtendedXMP chunks when it is too large."""
    standard, extended = split(xmp)
    segments = [_app1(STANDARD_HEADER + standard)]
    if extended:
        guid = _guid(extended)
        for offset in range(0, len(extended), CHUNK):
            head = EXTENSION_HEADER + guid + struct.pack(">II", len(extended), offset)
            segments.append(_app1(head + extended[offset:offset + CHUNK]))
    return b"".join(segments)


def split(xmp: bytes) -> tuple[bytes, bytes | None]:
    """(StandardXMP, ExtendedXMP or None); ValueError for a packet that cannot be split."""
    xmp = _PADDING.sub(b"", xmp.strip(b"\0"))
    if len(xmp) <= MAX_STANDARD:
        return xmp, None
    descriptions, rdf_end = _parse(xmp)
    about = descriptions[0].about  # the spec wants one subject; a note for another would be lost
    spans = sorted((span for d in descriptions for span in d.properties), key=lambda s: s[0] - s[1])
    size, moved = len(xmp) + len(_note(about, b"0" * 32)), set()
    for start, end in spans:  # largest first
        if size <= MAX_STANDARD:
            break
        moved.add((start, end))
        size -= end - start
    if size > MAX_STANDARD:
        raise ValueError(f"its {len(xmp)}-byte XMP does not fit a JPEG even split; write PNG or TIFF")
    extended = _extended(xmp, descriptions, moved)
    kept, last = [], 0
    for start, end in sorted(moved):
        kept.append(xmp[last:start])
        last = end
    kept.append(xmp[last:rdf_end] + _note(about, _guid(extended)) + xmp[rdf_end:])
    standard = b"".join(kept)
    for packet in (standard, extended):
        ET.fromstring(packet.strip(b"\0 \t\r\n"))  # ParseError is a ValueError
    return standard, extended


def _parse(xmp: bytes) -> tuple[list[_Description], int]:
    """Top-level rdf:Descriptions with their properties' byte spans, and where </rdf:RDF> starts."""
    parser = expat.ParserCreate(namespace_separator=" ")
    stack: list[tuple[str, int, dict[str | None, str]]] = [("", 0, {})]  # name, start, namespaces
    pending: dict[str | None, str] = {}
    descriptions: list[_Description] = []
    rdf_end = -1

    def declare(prefix: str | None, uri: str) -> None:
        pending[prefix] = uri

    def start(name: str, attrs: dict[str, str]) -> None:
        namespaces = {**stack[-1][2], **pending}
        pending.clear()
        if name == f"{RDF} Description" and stack[-1][0] == f"{RDF} RDF":
            descriptions.append(_Description(attrs.get(f"{RDF} about", ""), namespaces))
        stack.append((name, parser.CurrentByteIndex, namespaces))

    def end(name: str) -> None:
        nonlocal rdf_end
        _, begin, _ = stack.pop()
        here = parser.CurrentByteIndex
        if name == f"{RDF} RDF":
            rdf_end = here
        elif len(stack) >= 2 and stack[-1][0] == f"{RDF} Description" and stack[-2][0] == f"{RDF} RDF":
            closing = xmp.startswith(b"</", here)
            descriptions[-1].properties.append((begin, xmp.index(b">", here) + 1 if closing else _tag_end(xmp, begin)))

    parser.StartNamespaceDeclHandler = declare
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(xmp, True)
    except expat.ExpatError as err:
        raise ValueError(f"its XMP is not well-formed ({err}) and too large for a JPEG; write PNG or TIFF") from None
    if rdf_end < 0 or not descriptions:
        raise ValueError("its XMP has no rdf:RDF and is too large for a JPEG; write PNG or TIFF")
    return descriptions, rdf_end


def _extended(xmp: bytes, descriptions: list[_Description], moved: set[tuple[int, int]]) -> bytes:
    parts = [b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="' + RDF.encode() + b'">']
    for description in descriptions:
        spans = [span for span in description.properties if span in moved]
        if not spans:
            continue
        declared = "".join(f" xmlns:{p}={quoteattr(u)}" if p else f" xmlns={quoteattr(u)}"
                           for p, u in description.namespaces.items() if p != "rdf")
        parts.append(f"<rdf:Description rdf:about={quoteattr(description.about)}{declared}>".encode())
        parts.extend(xmp[start:end] for start, end in spans)
        parts.append(b"</rdf:Description>")
    parts.append(b"</rdf:RDF></x:xmpmeta>")
    return b"".join(parts)


def _note(about: str, guid: bytes) -> bytes:
    return (f'<rdf:Description xmlns:rdf="{RDF}" rdf:about={quoteattr(about)} xmlns:xmpNote="{NOTE}" '
            f'xmpNote:HasExtendedXMP="{guid.decode()}"/>').encode()


def _guid(extended: bytes) -> bytes:
    """The spec's GUID: the MD5 digest of the whole ExtendedXMP, 32 upper-case hex digits."""
    return hashlib.md5(extended).hexdigest().upper().encode()


def _tag_end(data: bytes, start: int) -> int:
    """Index just past the ``>`` that closes the tag opened at ``start`` (quotes may hold ``>``)."""
    quote = None
    for i in range(start, len(data)):
        char = data[i:i + 1]
        if quote:
            quote = None if char == quote else quote
        elif char in (b'"', b"'"):
            quote = char
        elif char == b">":
            return i + 1
    raise ValueError("unterminated tag in XMP")


def _app1(body: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


__all__ = [
    "CHUNK",
    "EXTENSION_HEADER",
    "MAX_STANDARD",
    "NOTE",
    "RDF",
    "STANDARD_HEADER",
    "split",
    "with_xmp",
    "xmp_segments",
]
