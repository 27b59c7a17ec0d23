"""A one-file run of a classical method never imports torch (issue 16, item 6: start-up time).

torch (and spandrel, which pulls torchvision and torch._dynamo) take seconds to import; a shell
loop over 500 photos paid that 500 times for methods that run on numpy and OpenCV alone.
"""

from __future__ import annotations

import subprocess
import sys
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
