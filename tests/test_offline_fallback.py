"""No network and no --offline: tasks with a method that needs no download use it, with a note (issue 16, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.store import weights

runner = CliRunner()


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    asked: list[str] = []

    def unreachable(endpoint: str) -> None:
        asked.append(endpoint)
        raise ConnectionError("example.invalid is unreachable (test)")

    monkeypatch.setattr(weights, "_check_reachable", unreachable)
    monkeypatch.setattr(weights, "_REACHED", {})
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PHOTOFIX_OFFLINE", raising=False)
    return asked


def _photo(path: Path) -> Path:
    from skimage import data

    scratched = data.astronaut()[:128, :128].copy()
    scratched[60:63, 5:120] = 255
    PILImage.fromarray(scratched).save(path)
    return path


def test_scratch_repair_falls_back_to_classical_when_the_server_is_down(no_network: list[str], tmp_path: Path) -> None:
    done = runner.invoke(app, ["scratch-repair", str(_photo(tmp_path / "in.png")), str(tmp_path / "out.png"), "--json"])
    assert done.exit_code == 0, done.stderr
    assert "their server cannot be reached: using the classical detector" in done.stderr
    assert json.loads(done.stdout.splitlines()[0])["model"] == "classical"
    assert no_network  # it asked, instead of assuming


def test_a_named_model_is_not_swapped_for_another(no_network: list[str], tmp_path: Path) -> None:
    done = runner.invoke(app, ["scratch-repair", str(_photo(tmp_path / "in.png")), str(tmp_path / "out.png"),
                               "--model", "big-lama"])
    assert done.exit_code == 3, done.stderr  # what was asked for cannot be had: say so, change nothing
    assert not (tmp_path / "out.png").exists()
