"""The defaults ``models list`` shows and ``models download --defaults`` fetches are the ones a run uses (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import photofix.store as store
from photofix.cli import app
from photofix.store import FetchedWeights

runner = CliRunner()

# tasks with one default for either device; ffdnet-gray: what grey photos get when no model is named
BOTH = {"bopb-scratch-detect", "big-lama", "gfpgan-v1.4", "yunet-2023mar", "ffdnet-gray"}
CPU = {"ffdnet-color", "nafnet-gopro-width32", "realesrgan-general-x4v3", "ddcolor-tiny"} | BOTH
GPU = {"scunet-color-real", "nafnet-gopro-width64", "realesrgan-x4plus", "ddcolor-large"} | BOTH


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PHOTOFIX_DEVICE", "cpu")


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids the CLI asks the store to download; nothing touches the network."""
    ids: list[str] = []

    def fake(entry, *, offline=None):
        ids.append(entry.id)
        return FetchedWeights(Path("/cache") / entry.id, "0" * 64, downloaded=True, first_use_hash=False)

    monkeypatch.setattr(store, "download", fake)
    return ids


def _listed() -> list[dict]:
    result = invoke("models", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_store_default_entries_follow_the_run_choice() -> None:
    assert {e.id for e in store.default_entries(on_cpu=True)} == CPU
    assert {e.id for e in store.default_entries(on_cpu=False)} == GPU


def test_list_marks_the_cpu_defaults_on_a_cpu(on_cpu: None) -> None:
    records = _listed()
    marked = lambda key: {r["id"] for r in records if r[key]}  # noqa: E731
    assert marked("default") == CPU | {"classical"}
    assert marked("default_cpu") == CPU | {"classical"}
    assert marked("default_gpu") == GPU | {"classical"}

    table = invoke("models", "list").stdout
    row = lambda model_id: next(line for line in table.splitlines() if f" {model_id} " in line)  # noqa: E731
    assert "◆" in row("ffdnet-color") and "★" not in row("ffdnet-color")
    assert "★" in row("scunet-color-real") and "◆" not in row("scunet-color-real")
    assert "◆" in row("big-lama") and "★" in row("big-lama")
    assert "this machine runs on the CPU" in table  # says which mark runs here


def test_list_marks_the_gpu_defaults_with_a_gpu(on_cpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "runs_on_cpu", lambda device=None: False)
    assert {r["id"] for r in _listed() if r["default"]} == GPU | {"classical"}
    assert "this machine has a GPU" in invoke("models", "list").stdout


def test_runs_on_cpu_reads_the_device_setting(on_cpu: None) -> None:
    assert store.runs_on_cpu() is True


def test_download_defaults_fetches_this_machines_defaults(on_cpu: None, fetched: list[str]) -> None:
    result = invoke("models", "download", "--defaults")
    assert result.exit_code == 0, result.stderr
    assert sorted(fetched) == sorted(CPU)


def test_download_defaults_for_another_machine(on_cpu: None, fetched: list[str]) -> None:
    result = invoke("models", "download", "--defaults", "--for", "gpu")
    assert result.exit_code == 0, result.stderr
    assert sorted(fetched) == sorted(GPU)


@pytest.mark.parametrize("args", [("ffdnet-color", "--defaults"), (), ("ffdnet-color", "--for", "cpu")])
def test_download_usage_errors(on_cpu: None, fetched: list[str], args: tuple[str, ...]) -> None:
    result = invoke("models", "download", *args)
    assert result.exit_code == 2
    assert "--defaults" in result.stderr
    assert fetched == []


def test_tier_help_names_the_cpu_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    text = " ".join(invoke("denoise", "--help").stdout.split())
    assert "Default: balanced." not in text
    assert "on a CPU (fast)" in text and "balanced with a GPU" in text
