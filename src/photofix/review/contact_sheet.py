"""A contact sheet of before/after pairs: one HTML file that opens from disk, no server.

Browsers cannot show TIFF or 16-bit PNG and choke on 100-megapixel originals, so each
pair gets two JPEG renditions in ``<html stem>_files/`` beside the page: the after at
most ``max_side`` pixels long, the before resampled to exactly that size so the split
view overlays them pixel for pixel. File names link to the full-size originals.

The page is self-contained (inline CSS and JS, nothing fetched), sits on neutral grey
so colour is judged fairly, and escapes everything that comes from file names or records.
``#split=30`` in the URL puts every divider at 30%; ``#view=side`` starts side by side.
"""

from __future__ import annotations

import html
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from photofix import __version__
from photofix._files import write_file
from photofix.review.compare import Pair, fit_long_side, resize_rgb, to_rgb8
from photofix.errors import OutputWriteError, PhotofixError, UsageError
from photofix.imageio import read_image

__all__ = ["write_contact_sheet"]

_RENDITION = re.compile(r"^\d{3,}-.*-(before|after)\.jpg$")
_JPEG_QUALITY = 90


@dataclass
class _Card:
    pair: Pair
    before_src: str = ""
    after_src: str = ""
    width: int = 0  # rendition size, shared by both
    height: int = 0
    before_size: tuple[int, int] = (0, 0)  # originals
    after_size: tuple[int, int] = (0, 0)
    error: str | None = None
    files: tuple[str, ...] = ()  # rendition file names in the sheet's folder


def write_contact_sheet(
    pairs: Sequence[Pair],
    html_path: str | os.PathLike,
    *,
    title: str = "Before and after",
    max_side: int = 1600,
    notes: Iterable[str] = (),
    split: float = 0.5,
    on_pair: Callable[[Pair, str | None], None] | None = None,
) -> Path:
    """Write the sheet and its renditions; returns the HTML path.

    ``split`` is where the dividers start (0–1; ``#split=NN`` in the URL overrides it).
    ``notes`` are shown under the title (e.g. "3 outputs had no matching input"). A pair whose
    files cannot be read gets a card saying why instead of pictures; ``on_pair(pair, error)``
    is called after each pair (error None when it worked), for progress and counting.
    """
    if not 0.0 <= split <= 1.0:
        raise UsageError(f"split position {split} is outside 0–1; use e.g. 0.5 for the middle")
    if max_side < 64:
        raise UsageError(f"rendition size {max_side} is too small to judge anything; use at least 64 pixels")
    target = Path(html_path)
    folder = target.with_name(f"{target.stem}_files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputWriteError(f"{folder}: cannot create the folder for the sheet's pictures "
                               f"({err.strerror or err}); check the path and its permissions") from err

    cards: list[_Card] = []
    written: set[str] = set()
    for number, pair in enumerate(pairs, start=1):
        card = _render_pair(pair, number, folder, max_side)
        cards.append(card)
        written.update(card.files)
        if on_pair is not None:
            on_pair(pair, card.error)
    _remove_stale(folder, written)

    page = _page(cards, target, title, list(notes), round(split * 100, 1))
    write_file(target, lambda fp: fp.write(page.encode("utf-8")))
    return target


# --- renditions -----------------------------------------------------------------------


def _render_pair(pair: Pair, number: int, folder: Path, max_side: int) -> _Card:
    card = _Card(pair)
    try:
        after = read_image(pair.after)
        card.after_size = (after.width, after.height)
        after_rgb = fit_long_side(to_rgb8(after), max_side)
        del after
        before = read_image(pair.before)
        card.before_size = (before.width, before.height)
        height, width = after_rgb.shape[:2]
        before_rgb = resize_rgb(to_rgb8(before), (width, height))
        del before
    except PhotofixError as err:
        card.error = str(err)
        return card
    stem = _slug(pair.after.stem)
    card.width, card.height = width, height
    before_name, after_name = f"{number:03d}-{stem}-before.jpg", f"{number:03d}-{stem}-after.jpg"
    _write_jpeg(folder / before_name, before_rgb)
    _write_jpeg(folder / after_name, after_rgb)
    card.files = (before_name, after_name)
    # the folder is named after the page, which may hold spaces or '#'
    card.before_src = urllib.parse.quote(f"{folder.name}/{before_name}")
    card.after_src = urllib.parse.quote(f"{folder.name}/{after_name}")
    return card


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    # 4:4:4: chroma subsampling would blur exactly the colour edges people compare
    write_file(path, lambda fp: PILImage.fromarray(rgb).save(fp, format="JPEG", quality=_JPEG_QUALITY, subsampling=0))


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Renditions of an earlier, longer sheet; nothing else in the folder is touched."""
    for path in folder.iterdir():
        if _RENDITION.match(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)


def _slug(stem: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")
    return cleaned[:40] or "photo"


# --- the page -------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _href(path: Path, base: Path) -> str:
    """A relative URL from the page to ``path`` (a file:// URL when there is none, e.g. another drive)."""
    try:
        relative = os.path.relpath(path.resolve(), base.resolve())
    except ValueError:
        return path.resolve().as_uri()
    return urllib.parse.quote(Path(relative).as_posix())


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}\u00d7{size[1]}"


def _page(cards: list[_Card], target: Path, title: str, notes: list[str], split: float) -> str:
    count = len(cards)
    summary = f"{count} pair{'s' if count != 1 else ''} \u00b7 made by photofix {__version__} on {time.strftime('%Y-%m-%d %H:%M')}"
    note_items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    body = "\n".join(_card_html(card, number, count, target.parent, split) for number, card in enumerate(cards, start=1))
    if not cards:
        body = '<p class="empty">No pairs to show.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="photofix {_e(__version__)}">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body data-view="split" data-backdrop="dark">
<header class="top">
  <div class="heading">
    <h1>{_e(title)}</h1>
    <p class="summary">{_e(summary)}</p>
    {f'<ul class="notes">{note_items}</ul>' if note_items else ''}
  </div>
  <div class="controls">
    <div class="group" role="group" aria-label="View">
      <span class="group-label">View</span>
      <button type="button" data-view="split" aria-pressed="true">Split</button>
      <button type="button" data-view="side" aria-pressed="false">Side by side</button>
    </div>
    <div class="group" role="group" aria-label="Backdrop">
      <span class="group-label">Backdrop</span>
      <button type="button" data-backdrop="dark" aria-pressed="true">Dark</button>
      <button type="button" data-backdrop="grey" aria-pressed="false">Mid grey</button>
    </div>
    <p class="hint">Drag the divider, or click a photo and use \u2190 \u2192 (Shift: 10 steps).</p>
  </div>
</header>
<main>
{body}
</main>
<script>{_JS}</script>
</body>
</html>
"""


def _card_html(card: _Card, number: int, count: int, base: Path, split: float) -> str:
    pair = card.pair
    before_name, after_name = pair.before.name, pair.after.name
    names = (
        f'<a href="{_e(_href(pair.before, base))}" title="{_e(pair.before)}">{_e(before_name)}</a>'
        f'<span class="arrow" aria-hidden="true"> \u2192 </span>'
        f'<a href="{_e(_href(pair.after, base))}" title="{_e(pair.after)}">{_e(after_name)}</a>'
    )
    head = f'<h2><span class="number">{number}/{count}</span> {names}</h2>'
    if card.error is not None:
        return (f'<article class="pair failed" id="pair-{number}">{head}'
                f'<p class="error">could not show this pair: {_e(card.error)}</p></article>')

    w, h = card.width, card.height
    lazy = ' loading="lazy"' if number > 2 else ""
    img = f'width="{w}" height="{h}"{lazy}'
    frame = f"""<div class="frame" role="slider" tabindex="0" aria-label="Divider between before and after, {_e(after_name)}"
     aria-valuemin="0" aria-valuemax="100" aria-valuenow="{split:g}" aria-valuetext="{split:g}% before" style="--ar:{w / h:.5f}; --w:{w}px; --pos:{split:g}%">
  <img class="after-img" src="{_e(card.after_src)}" alt="after: {_e(after_name)}" {img} draggable="false">
  <img class="before-img" src="{_e(card.before_src)}" alt="before: {_e(before_name)}" {img} draggable="false">
  <span class="label label-before">before</span><span class="label label-after">after</span>
  <span class="divider" aria-hidden="true"><span class="knob"></span></span>
</div>"""
    side = f"""<div class="side" style="--ar:{w / h:.5f}; --w:{w}px">
  <figure><img src="{_e(card.before_src)}" alt="before: {_e(before_name)}" {img}><figcaption class="label">before</figcaption></figure>
  <figure><img src="{_e(card.after_src)}" alt="after: {_e(after_name)}" {img}><figcaption class="label">after</figcaption></figure>
</div>"""
    scale = card.after_size[0] / card.before_size[0] if card.before_size[0] else 1.0
    scale_note = f' <span class="dim">(\u00d7{scale:.3g})</span>' if abs(scale - 1.0) > 0.01 else ""
    shown = "" if (w, h) == card.after_size else f' <span class="dim">\u00b7 shown at {_size((w, h))}</span>'
    sizes = f'<p class="sizes">{_size(card.before_size)} \u2192 {_size(card.after_size)}{scale_note}{shown}</p>'
    return f"""<article class="pair" id="pair-{number}">
{head}
<div class="view">
{frame}
{side}
</div>
<div class="info">
  <div class="files">{sizes}{_match_note(pair)}</div>
  {_provenance(pair)}
</div>
</article>"""


def _match_note(pair: Pair) -> str:
    if pair.matched_by == "record path":
        return ('<p class="warn">The original has changed since this output was made '
                '(its sha256 differs from the record).</p>')
    if pair.matched_by == "name":
        return '<p class="dim">Paired by file name.</p>'
    return ""


def _provenance(pair: Pair) -> str:
    record = pair.record
    if record is None:
        return '<div class="prov"><p class="dim">no photofix record</p></div>'
    steps = "".join(f"<li>{_step(step)}</li>" for step in record.steps) or "<li>(no steps recorded)</li>"
    created = record.created.replace("T", " ", 1)
    made = " \u00b7 ".join(_e(v) for v in (f"photofix {record.version}" if record.version else "", created) if v)
    rows = [
        ("steps", f"<ol>{steps}</ol>"),
        ("made", made or '<span class="dim">unknown</span>'),
        ("input", (f'{_e(Path(record.input).name or "?")} \u00b7 sha256 '
                   f'<code title="{_e(record.input_sha256)}">{_e(record.input_sha256[:12])}\u2026</code>')),
        ("recipe", f"<code>{_e(record.recipe)}</code>"),
    ]
    if record.seconds:
        rows.append(("time", f"{record.seconds:.1f} s"))
    cells = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<div class="prov"><dl>{cells}</dl></div>'


def _step(step: dict[str, Any]) -> str:
    parts = [f'<b>{_e(step.get("task") or "?")}</b>', _e(step.get("model") or "?")]
    weights = step.get("weights_sha256")
    if weights:
        parts.append(f'<span class="dim">weights</span> <code title="{_e(weights)}">{_e(str(weights)[:8])}</code>')
    params = step.get("params") or {}
    if params:
        parts.append(_e(", ".join(f"{k}={_param(v)}" for k, v in sorted(params.items()))))
    return " \u00b7 ".join(parts)


def _param(value: Any) -> str:
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


_CSS = """
:root { color-scheme: dark; --bg: #262626; --card: #303030; --text: #e8e8e8; --dim: #a6a6a6; --line: #4a4a4a; }
body[data-backdrop="grey"] { --bg: #777777; --card: #6e6e6e; --text: #ffffff; --dim: #e2e2e2; --line: #8a8a8a; }
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
a { color: var(--text); text-decoration: underline; text-decoration-color: var(--dim); text-underline-offset: 2px; }
a:hover { text-decoration-color: var(--text); }
code { font: 12px/1.3 ui-monospace, "SF Mono", Menlo, Consolas, monospace; }
.dim { color: var(--dim); }
.top { max-width: 1480px; margin: 0 auto; padding: 20px 24px 14px; }
h1 { font-size: 20px; font-weight: 600; margin: 0 0 2px; }
.summary { margin: 0; color: var(--dim); }
.notes { margin: 6px 0 0; padding-left: 18px; color: var(--dim); }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin-top: 12px; }
.group { display: inline-flex; align-items: center; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.group-label { padding: 4px 10px; color: var(--dim); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.group button { font: inherit; color: var(--text); background: transparent; border: 0; border-left: 1px solid var(--line);
  padding: 5px 12px; cursor: pointer; }
.group button[aria-pressed="true"] { background: var(--text); color: var(--bg); }
.group button:focus-visible { outline: 2px solid var(--text); outline-offset: -3px; }
.hint { margin: 0; color: var(--dim); font-size: 12px; }
main { max-width: 1480px; margin: 0 auto; padding: 0 24px 40px; }
.pair { background: var(--card); border-radius: 10px; padding: 14px 16px 16px; margin: 0 0 24px; }
.pair h2 { font-size: 15px; font-weight: 500; margin: 0 0 10px; overflow-wrap: anywhere; }
.number { color: var(--dim); font-weight: 400; margin-right: 6px; font-variant-numeric: tabular-nums; }
.arrow { color: var(--dim); }
.view { display: flex; justify-content: center; }
.frame { position: relative; width: min(100%, calc((100vh - 96px) * var(--ar)), var(--w)); aspect-ratio: var(--ar); overflow: hidden;
  cursor: ew-resize; touch-action: pan-y pinch-zoom; user-select: none; -webkit-user-select: none; background: #808080; }
.frame:focus-visible { outline: 2px solid var(--text); outline-offset: 3px; }
.frame img { position: absolute; inset: 0; width: 100%; height: 100%; display: block; pointer-events: none; }
.frame .before-img { clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.divider { position: absolute; top: 0; bottom: 0; left: var(--pos); width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 0 1px rgba(0,0,0,.45); pointer-events: none; }
.knob { position: absolute; top: 50%; left: 50%; width: 34px; height: 34px; margin: -17px 0 0 -17px; border-radius: 50%;
  border: 2px solid #fff; background: rgba(0,0,0,.5); box-shadow: 0 1px 4px rgba(0,0,0,.5); }
.knob::before, .knob::after { content: ""; position: absolute; top: 50%; margin-top: -5px; border: 5px solid transparent; }
.knob::before { left: 3px; border-right: 6px solid #fff; }
.knob::after { right: 3px; border-left: 6px solid #fff; }
.label { position: absolute; top: 10px; padding: 2px 8px; border-radius: 4px; background: rgba(0,0,0,.55); color: #fff;
  font-size: 12px; letter-spacing: .03em; pointer-events: none; }
.label-before { left: 10px; }
.label-after { right: 10px; }
.side { display: none; gap: 8px; width: 100%; justify-content: center; }
.side figure { position: relative; margin: 0; flex: 1 1 0; min-width: 0; max-width: min(calc((100vh - 96px) * var(--ar)), var(--w)); }
.side img { display: block; width: 100%; height: auto; background: #808080; }
.side .label { left: 10px; }
body[data-view="side"] .frame { display: none; }
body[data-view="side"] .side { display: flex; }
body[data-view="side"] .hint { visibility: hidden; }
.info { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.6fr); gap: 4px 24px; margin-top: 12px; }
.info p { margin: 0 0 4px; }
.sizes { font-variant-numeric: tabular-nums; }
.warn { color: var(--text); border-left: 3px solid var(--text); padding-left: 8px; }
.prov dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 12px; margin: 0; }
.prov dt { color: var(--dim); }
.prov dd { margin: 0; overflow-wrap: anywhere; }
.prov ol { margin: 0; padding-left: 18px; }
.prov p { margin: 0; }
.error { color: var(--text); border-left: 3px solid var(--text); padding-left: 8px; }
.empty { color: var(--dim); }
@media (max-width: 760px) {
  .top, main { padding-left: 12px; padding-right: 12px; }
  .pair { padding: 10px; }
  .info { grid-template-columns: 1fr; }
  body[data-view="side"] .side { flex-direction: column; align-items: center; }
  .side figure { width: 100%; flex: none; }
}
"""

_JS = """
(function () {
  "use strict";
  var frames = Array.prototype.slice.call(document.querySelectorAll(".frame"));
  function setPos(frame, percent) {
    var p = Math.max(0, Math.min(100, percent));
    frame.style.setProperty("--pos", p + "%");
    frame.setAttribute("aria-valuenow", String(Math.round(p)));
    frame.setAttribute("aria-valuetext", Math.round(p) + "% before");
  }
  function fromPointer(frame, event) {
    var box = frame.getBoundingClientRect();
    if (box.width > 0) setPos(frame, (event.clientX - box.left) / box.width * 100);
  }
  frames.forEach(function (frame) {
    var dragging = false;
    frame.addEventListener("pointerdown", function (event) {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      dragging = true;
      frame.setPointerCapture(event.pointerId);
      frame.focus({ preventScroll: true });
      fromPointer(frame, event);
    });
    frame.addEventListener("pointermove", function (event) { if (dragging) fromPointer(frame, event); });
    function stop() { dragging = false; }
    frame.addEventListener("pointerup", stop);
    frame.addEventListener("pointercancel", stop);
    frame.addEventListener("lostpointercapture", stop);
    frame.addEventListener("keydown", function (event) {
      var now = parseFloat(frame.getAttribute("aria-valuenow")) || 0;
      var step = event.shiftKey ? 10 : 1;
      var next = { ArrowLeft: now - step, ArrowDown: now - step, ArrowRight: now + step, ArrowUp: now + step,
                   Home: 0, End: 100, PageDown: now - 10, PageUp: now + 10 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      setPos(frame, next);
    });
  });
  function choose(attribute, value) {
    document.body.setAttribute("data-" + attribute, value);
    document.querySelectorAll("button[data-" + attribute + "]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-" + attribute) === value));
    });
  }
  document.querySelectorAll(".controls button").forEach(function (button) {
    button.addEventListener("click", function () {
      if (button.hasAttribute("data-view")) choose("view", button.getAttribute("data-view"));
      else choose("backdrop", button.getAttribute("data-backdrop"));
    });
  });
  function applyHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var split = parseFloat(params.get("split"));
    if (isFinite(split)) frames.forEach(function (frame) { setPos(frame, split); });
    var view = params.get("view");
    if (view === "split" || view === "side") choose("view", view);
    var backdrop = params.get("backdrop");
    if (backdrop === "dark" || backdrop === "grey") choose("backdrop", backdrop);
  }
  window.addEventListener("hashchange", applyHash);
  applyHash();
})();
"""
