"""The HTML contact sheet: what it writes, and what a real browser (headless Chromium) shows.

The browser test needs Debian's chromium (CI installs it): without it the test skips, naming the
package, except under PHOTOFIX_REQUIRE_TOOLS=1 (set by .ci/run), where it fails.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import data

from photofix.review.compare import Pair, pair_folders
from photofix.review.contact_sheet import write_contact_sheet
from photofix.run.provenance import Record, RunLog, sha256_file

WEIGHTS = "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"


def colour_card(height: int, width: int, channel: int, seed: int) -> np.ndarray:
    """A textured card dominated by one channel (0 red, 2 blue): unmistakable in a screenshot."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
    card[..., channel] = 200 + rng.integers(0, 56, (height, width), dtype=np.uint8)
    return card


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sheet")
    before, after = root / "scans", root / "restored"
    before.mkdir()
    after.mkdir()
    # Red originals, blue results: the first pair is 2x, so the before must be enlarged to overlay.
    PILImage.fromarray(colour_card(240, 320, 0, 1)).save(before / "card_1.png")
    PILImage.fromarray(colour_card(480, 640, 2, 2)).save(after / "card_1_x2.png")
    PILImage.fromarray(colour_card(300, 400, 0, 3)).save(before / "card_2.png")
    PILImage.fromarray(colour_card(300, 400, 2, 4)).save(after / "card_2_clean.jpg", quality=92)
    # A real photo pair with a run record, and a name that needs escaping.
    astronaut = data.astronaut()
    PILImage.fromarray(astronaut[::4, ::4]).save(before / "tom&jerry <1>.jpg", quality=70)
    PILImage.fromarray(astronaut).save(after / "tom&jerry <1>_x4.png")
    RunLog(after).append(Record(
        input=str(before / "tom&jerry <1>.jpg"), input_sha256=sha256_file(before / "tom&jerry <1>.jpg"),
        output="tom&jerry <1>_x4.png", recipe="0123456789abcdef",
        steps=[{"task": "upscale", "model": "realesrgan-x4plus", "weights_sha256": WEIGHTS, "params": {"scale": 4.0}}],
        created="2025-06-01T12:00:00+0200", output_sha256=sha256_file(after / "tom&jerry <1>_x4.png"),
    ))
    return before, after


@pytest.fixture(scope="module")
def sheet(folders: tuple[Path, Path]) -> Path:
    before, after = folders
    pairs = pair_folders(before, after).pairs
    assert [p.after.name for p in pairs] == ["card_1_x2.png", "card_2_clean.jpg", "tom&jerry <1>_x4.png"]
    return write_contact_sheet(pairs, after / "compare.html", title="Scans & <restored>", max_side=600,
                               notes=["1 output had no matching input"])


def _sources(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


def test_sheet_renditions_overlay_and_links_resolve(sheet: Path, folders: tuple[Path, Path]) -> None:
    before, after = folders
    page = sheet.read_text(encoding="utf-8")
    renditions = sorted((sheet.parent / "compare_files").iterdir())
    assert len(renditions) == 6
    for first, second in zip(renditions[::2], renditions[1::2]):
        with PILImage.open(first) as a, PILImage.open(second) as b:
            assert a.format == b.format == "JPEG" and a.size == b.size and max(a.size) <= 600
    with PILImage.open(renditions[0]) as card_after:  # 001-...-after.jpg: the blue 640x480 result, shrunk to 600 wide
        assert card_after.size == (600, 450)
    for url in _sources(page):
        assert not url.startswith(("http:", "https:", "//")), url  # nothing is fetched
        assert (sheet.parent / unquote(url)).is_file(), url
    linked = {(sheet.parent / unquote(u)).resolve() for u in _sources(page)}
    assert (before / "card_1.png").resolve() in linked and (after / "card_1_x2.png").resolve() in linked
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert not [p for p in sheet.parent.rglob(".*.tmp")]


def test_sheet_shows_sizes_provenance_and_escapes_names(sheet: Path) -> None:
    page = sheet.read_text(encoding="utf-8")
    assert "320\u00d7240 \u2192 640\u00d7480" in page and "128\u00d7128 \u2192 512\u00d7512" in page
    assert "realesrgan-x4plus" in page and WEIGHTS[:8] in page and "scale=4.0" in page and "photofix 0.1.0" in page
    assert page.count("no photofix record") == 2
    assert "tom&amp;jerry &lt;1&gt;_x4.png" in page and "tom&jerry <1>" not in page
    assert "Scans &amp; &lt;restored&gt;" in page and "<restored>" not in page
    assert "1 output had no matching input" in page
    assert page.count('role="slider"') == 3 and 'aria-valuenow="50"' in page


def test_sheet_reports_unreadable_pairs_and_drops_stale_renditions(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    before, after = folders
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    seen: list[str | None] = []
    pairs = [Pair(before / "card_1.png", after / "card_1_x2.png"), Pair(before / "card_2.png", after / "card_2_clean.jpg"),
             Pair(before / "card_2.png", broken)]
    html_path = write_contact_sheet(pairs, tmp_path / "review #1.html", on_pair=lambda pair, error: seen.append(error))
    assert seen[:2] == [None, None] and "broken.png" in seen[2]
    assert len(list((tmp_path / "review #1_files").iterdir())) == 4
    page = html_path.read_text(encoding="utf-8")
    assert "could not show this pair" in page
    assert 'src="review%20%231_files/001-card_1_x2-after.jpg"' in page  # a '#' in a URL would end the path
    write_contact_sheet(pairs[:1], html_path)
    kept = sorted(p.name for p in (tmp_path / "review #1_files").iterdir())
    assert kept == ["001-card_1_x2-after.jpg", "001-card_1_x2-before.jpg"]


# --- in a browser ----------------------------------------------------------------------


def _screenshots(chromium: str, sheet: Path, splits: list[int], out: Path) -> list[np.ndarray]:
    runs = []
    for split in splits:
        profile = tempfile.mkdtemp(prefix="chromium-", dir=out)
        png = out / f"split-{split}.png"
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1",
            "--window-size=1200,1000", "--virtual-time-budget=3000", f"--screenshot={png}",
            f"{sheet.resolve().as_uri()}#split={split}",
        ]
        runs.append((png, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    shots = []
    for png, run in runs:
        log, _ = run.communicate(timeout=90)
        assert run.returncode == 0 and png.is_file(), log.decode(errors="replace")[-2000:]
        shots.append(np.asarray(PILImage.open(png).convert("RGB")).astype(int))
    return shots


def _first_frame(shot: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Red and blue masks of the topmost band of red/blue rows (the first pair's frame) and its left/right edge."""
    red = (shot[..., 0] > 150) & (shot[..., 1] < 90) & (shot[..., 2] < 90)
    blue = (shot[..., 2] > 150) & (shot[..., 0] < 90) & (shot[..., 1] < 90)
    rows = np.flatnonzero((red | blue).sum(axis=1) > 100)
    assert rows.size, "neither the before (red) nor the after (blue) picture is visible"
    ends = np.flatnonzero(np.diff(rows) > 1)
    top, bottom = rows[0], rows[ends[0]] if ends.size else rows[-1]
    assert bottom - top > 200, f"the first frame is only {bottom - top} px high"
    # Lower half of the frame: clear of the labels (top corners) and the divider's knob (middle).
    band = slice(top + (bottom - top) * 6 // 10, top + (bottom - top) * 9 // 10)
    coloured = np.flatnonzero((red[band] | blue[band]).mean(axis=0) > 0.5)
    return red[band], blue[band], int(coloured[0]), int(coloured[-1])


def test_browser_shows_both_pictures_split_where_the_url_says(sheet: Path, tmp_path: Path, require_program) -> None:
    shots = _screenshots(require_program("chromium", "chromium"), sheet, [30, 70], tmp_path)
    for split, shot in zip([30, 70], shots):
        red, blue, left, right = _first_frame(shot)
        width = right - left + 1
        assert width > 300, f"the frame is only {width} px wide"
        red_columns = red.mean(axis=0)[left:right + 1] > 0.9
        blue_columns = blue.mean(axis=0)[left:right + 1] > 0.9
        fraction = np.arange(width) / width
        assert red_columns[fraction < split / 100 - 0.03].all(), f"#split={split}: before not shown left of the divider"
        assert blue_columns[fraction > split / 100 + 0.03].all(), f"#split={split}: after not shown right of the divider"
        boundary = (np.flatnonzero(red_columns)[-1] + 1) / width
        assert abs(boundary - split / 100) < 0.02, f"#split={split}: divider at {boundary:.3f} of the frame"
