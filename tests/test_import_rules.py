"""Keep the import arrows of ARCHITECTURE.md honest, by reading the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "photofix"

# Lower layers never import higher ones (ARCHITECTURE.md's layout); the longest matching prefix decides a module's layer.
LAYER = {
    "errors": 0, "settings": 0, "_files": 0, "_color": 0,
    "archs": 1, "imageio": 1, "store.manifest": 1, "store.weights": 1, "store.choice": 1, "store.script_archive": 1,
    "engine": 2,
    "methods": 3, "store": 3,  # the store's public surface checks an architecture (engine) before trusting a file
    "run": 4,
    "tasks": 5, "review": 5,
    "api": 6,
    "cli": 7, "__main__": 7, "_entry": 7,
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYER:
            return LAYER[".".join(parts[:n])]
    raise AssertionError(f"module {module} has no layer: add it to LAYER")


def _modules():
    """(module id relative to the package, path, tree) for every source file but the package's __init__."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts == ["__init__"]:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text(), str(path))


def _imported(tree: ast.AST, path: Path) -> set[str]:
    """Names imported: external packages by top-level name, photofix modules as 'photofix.a.b' (relative ones resolved)."""
    names: set[str] = set()
    package_parts = list(path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name if alias.name.startswith("photofix.") else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module != "photofix" and not module.startswith("photofix."):
                names.add(module.split(".")[0])
                continue
            if node.level == 0:
                base = module.split(".")[1:]
            else:
                anchor = package_parts[: len(package_parts) - (node.level - 1)]
                base = anchor + (module.split(".") if module else [])
            if base:
                names.add("photofix." + ".".join(base))
            else:  # from photofix import a, b: each name is a module or a public name of the package
                names.update("photofix." + a.name for a in node.names if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists())
    return names


def test_only_cli_imports_typer_and_rich() -> None:
    offenders = [str(p) for top, p, tree in _modules() if not top.startswith("cli") and _imported(tree, p) & {"typer", "rich"}]
    assert offenders == []


def test_only_weights_imports_huggingface_hub() -> None:
    offenders = [str(p) for top, p, tree in _modules() if top != "store.weights" and "huggingface_hub" in _imported(tree, p)]
    assert offenders == []


def test_library_code_never_prints() -> None:
    offenders = []
    for top, path, tree in _modules():
        if top.split(".")[0] in {"cli", "__main__"}:
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
                target = name.removeprefix("photofix.")
                if layer_of(target) > layer_of(top):
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert wrong == []


def test_every_module_has_a_layer() -> None:
    for top, _, _ in _modules():
        layer_of(top)


def test_the_checker_sees_relative_imports() -> None:
    tree = ast.parse("from ..tasks.restore import Chain\nfrom . import render\nfrom .. import imageio\n")
    assert _imported(tree, PACKAGE / "cli" / "app.py") == {"photofix.tasks.restore", "photofix.cli", "photofix.imageio"}
    assert layer_of("store.weights") < layer_of("engine.models") < layer_of("store") < layer_of("tasks.restore")


# The command line parses and renders; building and running tasks is the library's, behind its public surface.
CLI_MAY_IMPORT = ("api", "tasks", "store", "errors", "settings", "imageio", "review", "run.provenance", "cli")


def test_cli_uses_only_the_public_surface() -> None:
    offenders = []
    for top, path, tree in _modules():
        if not top.startswith("cli"):
            continue
        for name in _imported(tree, path):
            if name.startswith("photofix."):
                target = name.removeprefix("photofix.")
                allowed = any(target == ok or target.startswith(ok + ".") for ok in CLI_MAY_IMPORT)
                if not allowed or target.startswith(("store.", "tasks.")) and not target.startswith("tasks.spec"):
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert offenders == []


def test_every_library_module_says_what_it_exports() -> None:
    """``__all__`` in every public module, naming only what the module defines or imports."""
    missing, unknown = [], []
    for top, path, tree in _modules():
        if top.startswith("cli") or path.name.startswith("_") and path.name != "__init__.py":
            continue
        exported = next((node.value for node in tree.body if isinstance(node, ast.Assign)
                         and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)), None)
        if exported is None:
            if not (path.name == "__init__.py" and len(tree.body) == 1):  # a package that only documents itself
                missing.append(top)
            continue
        bound = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names}
        bound |= {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        bound |= {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                  for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
        unknown += [f"{top}.{e.value}" for e in exported.elts if isinstance(e, ast.Constant) and e.value not in bound]
    assert (missing, unknown) == ([], [])
