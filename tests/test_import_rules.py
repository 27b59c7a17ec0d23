"""Keep the import arrows of ARCHITECTURE.md honest, by reading the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "photofix"

# Lower layers never import higher ones: cli → api → tasks → pipeline/store → models/tiling/imageio/adapt/jobs → archs/weights/manifest/choice → settings/errors
LAYER = {
    "errors": 0, "settings": 0, "_files": 0, "_color": 0,
    "manifest": 1, "choice": 1, "weights": 1, "archs": 1, "cpu_rewrite": 1, "script_archive": 1,
    "models": 2, "tiling": 2, "imageio": 2, "adapt": 2, "colorize": 2, "scratch": 2, "inpaint": 2, "masks": 2, "deshadow_mask": 2, "deshadow": 2,
    "provenance": 2, "jobs": 2,
    "pipeline": 3, "restorers": 3, "batch": 3, "store": 3,
    "tasks": 4, "api": 5,
    "compare": 2, "contact_sheet": 3,
    "cli": 6, "__main__": 6, "_entry": 6,
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        top = relative.parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        yield top, path, ast.parse(path.read_text(), str(path))


def _imported(tree: ast.AST, path: Path) -> set[str]:
    """Top-level names imported: external packages by name, photofix modules as 'photofix.X'."""
    names: set[str] = set()
    depth_in_package = len(path.relative_to(PACKAGE).parts) - 1
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] if not alias.name.startswith("photofix.") else "photofix." + alias.name.split(".")[1] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                names.add("photofix." + module.split(".")[1] if module.startswith("photofix.") else module.split(".")[0])
            elif node.level > depth_in_package:  # relative import reaching the package root
                targets = [module.split(".")[0]] if module else [a.name for a in node.names]
                names.update("photofix." + t for t in targets)
    return names


def test_only_cli_imports_typer_and_rich() -> None:
    offenders = [str(p) for top, p, tree in _modules() if top != "cli" and _imported(tree, p) & {"typer", "rich"}]
    assert offenders == []


def test_only_weights_imports_huggingface_hub() -> None:
    offenders = [str(p) for top, p, tree in _modules() if top != "weights" and "huggingface_hub" in _imported(tree, p)]
    assert offenders == []


def test_library_code_never_prints() -> None:
    offenders = []
    for top, path, tree in _modules():
        if top in {"cli", "__main__"}:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_imports_flow_one_way() -> None:
    wrong = []
    for top, path, tree in _modules():
        for name in _imported(tree, path):
            if name.startswith("photofix."):
                target = name.split(".")[1]
                if target in LAYER and LAYER[target] > LAYER[top]:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert wrong == []


def test_the_checker_sees_relative_imports() -> None:
    tree = ast.parse("from ..pipeline import run_jobs\nfrom . import imageio\n")
    assert _imported(tree, PACKAGE / "cli" / "app.py") == {"photofix.pipeline"}
    assert _imported(tree, PACKAGE / "pipeline.py") >= {"photofix.pipeline", "photofix.imageio"}


# The command line parses and renders; building and running tasks is the library's, behind its public surface.
CLI_MAY_NOT_IMPORT = {"models", "weights", "archs", "colorize", "inpaint", "masks", "tiling", "batch", "pipeline", "jobs", "choice",
                      "restorers", "scratch", "deshadow", "deshadow_mask", "adapt", "cpu_rewrite", "script_archive", "manifest",
                      "_files", "_color"}


def test_cli_uses_only_the_public_surface() -> None:
    offenders = []
    for top, path, tree in _modules():
        if top != "cli":
            continue
        for name in _imported(tree, path):
            if name.startswith("photofix.") and name.split(".")[1] in CLI_MAY_NOT_IMPORT:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name.split('.')[1]}")
    assert offenders == []
