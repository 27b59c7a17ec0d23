"""A one-file run of a classical method never imports torch (issue 16, item 6: start-up time).

torch (and spandrel, which pulls torchvision and torch._dynamo) take seconds to import; a shell
loop over 500 photos paid that 500 times for methods that run on numpy and OpenCV alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

PROBE = """
import sys
from photofix.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = sorted(m for m in ("torch", "spandrel", "torchvision") if m in sys.modules)
    print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("command", [
    ["scratch-repair", "--model", "classical"],
    ["deshadow", "--model", "classical"],
])
def test_a_classical_run_imports_no_torch(command: list[str], tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(source)
    env = {"PHOTOFIX_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROBE, command[0], str(source), str(tmp_path / "out.png"), *command[1:]],
                          capture_output=True, text=True, timeout=300, env=env)
    assert (tmp_path / "out.png").is_file(), done.stderr
    assert "HEAVY:\n" in done.stdout, done.stdout


DEFERRED_PROBE = """
import sys
import torch
import photofix.archs  # imports spandrel, all of its architectures
print("LOADED:" + ",".join(m for m in ("torchvision", "torch._dynamo") if m in sys.modules))
from spandrel.architectures.LaMa.__arch import LaMa as lama_module
import spandrel.architectures.RestoreFormer as restoreformer_module
x = torch.rand(1, 3, 20, 24)
turned = lama_module.rotate(x, 30.0, lama_module.InterpolationMode.BILINEAR, fill=0)
normal = restoreformer_module.tv_normalize(x, [0.5] * 3, [0.5] * 3)
import torchvision.transforms.functional as tvf
print("SAME:", torch.equal(turned, tvf.rotate(x, 30.0, tvf.InterpolationMode.BILINEAR, fill=0)),
      torch.equal(normal, tvf.normalize(x, [0.5] * 3, [0.5] * 3)))
"""


def test_spandrel_loads_without_torchvision_until_an_architecture_calls_it() -> None:
    # torchvision imports torch._dynamo: ~1.5-3 s of every one-file network run (issue 16 item 6)
    done = subprocess.run([sys.executable, "-c", DEFERRED_PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LOADED:\n" in done.stdout, done.stdout
    assert "SAME: True True" in done.stdout, done.stdout  # the deferred names are torchvision's own


FALLBACK_PROBE = """
import importlib.util, sys
import photofix  # the package only: photofix.archs would import spandrel itself
location = photofix.__path__[0] + "/archs/_deferred_import.py"
spec = importlib.util.spec_from_file_location("deferred_import", location)
_deferred_import = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_deferred_import)

def refuse(self, name):  # as if spandrel needed torchvision at import in a way the stand-in cannot serve
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(name)

_deferred_import._StandInModule.__getattr__ = refuse
spandrel = _deferred_import.import_spandrel()
print("OK", hasattr(spandrel, "MAIN_REGISTRY"), "torchvision" in sys.modules,
      type(sys.modules["torchvision"]).__name__)
"""


def test_spandrel_imports_plainly_when_the_stand_in_cannot_serve() -> None:
    done = subprocess.run([sys.executable, "-c", FALLBACK_PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "OK True True module" in done.stdout, done.stdout


def _run_on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (so the progress display is drawn); return (code, what it drew)."""
    main, terminal = os.openpty()
    drawn = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal, timeout=300, env=env)
    finally:
        os.close(terminal)
    reader.join(timeout=10)
    os.close(main)
    return done.returncode, drawn.decode("utf-8", "replace")


def test_a_network_run_shows_progress_from_the_start(tmp_path: Path, ffdnet_weights: dict[str, Path]) -> None:
    # issue 16 item 6: nothing showed while torch and the model loaded, and the tile bar came only
    # after the first tile (tens of seconds on a 12 MP photo)
    source = tmp_path / "in.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(source)
    env = {**os.environ, "PHOTOFIX_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    code, drawn = _run_on_a_terminal(
        [sys.executable, "-m", "photofix", "denoise", str(source), str(tmp_path / "out.png"),
         "--weights", str(ffdnet_weights["rgb"]), "--tile", "128", "--sigma", "25"], env)
    assert code == 0, drawn
    assert "starting: loading the model" in drawn  # the spinner, before any file starts
    assert re.search(r"tiles\S*\s.*?\b0/(\d+)", drawn), drawn  # the tile bar at 0 of N, before tile 1 ends
    assert (tmp_path / "out.png").is_file()


COUNT_PROBE = """
import sys
import torch
from photofix.engine.tiling import measure_bytes_per_pixel
per_pixel = measure_bytes_per_pixel(lambda x: torch.nn.functional.conv2d(x, torch.ones(8, 3, 3, 3), padding=1), 3, "cpu")
print("COUNT", per_pixel > 0, "torch._dynamo" in sys.modules)
"""


def test_counting_tile_memory_does_not_import_dynamo() -> None:
    # torch wraps a dispatch mode in "disable dynamo", which imported torch._dynamo on a model's first run
    done = subprocess.run([sys.executable, "-c", COUNT_PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "COUNT True False" in done.stdout, done.stdout


def test_the_task_processors_load_without_the_segmentation_that_only_deshadow_runs() -> None:
    # scikit-image's segmentation brings scipy.ndimage (about 0.2 s); scratch-repair and colorize
    # import the processors module too, so the region pairing imports it when it runs
    probe = "import sys, photofix.tasks.processors; print('SEGMENTATION', 'skimage.segmentation' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "SEGMENTATION False" in done.stdout, done.stdout
