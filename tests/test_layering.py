"""The package layering, read from the source with ``ast``: ``rtl`` <- ``models`` <- ``cosim``
<- ``flows``.  ``rtl`` imports none of the others, ``models`` only ``rtl``, ``cosim`` never
``flows``, and library code never imports a CLI command module (``flows/commands/``).
Imports inside functions count too, and each must say why it is lazy: a comment with
``lazy:`` on its line or on the line right above its block of imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("rtl", "models", "cosim", "flows")
ALLOWED = {layer: set(LAYERS[: i + 1]) for i, layer in enumerate(LAYERS)}


def _sources(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "aimcflow." + ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """``(line, absolute module, inside a function)`` of every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, in_func) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - child.level + 1]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                if not child.module:  # "from . import x": the submodules themselves
                    out.extend((child.lineno, f"{name}.{a.name}", in_func) for a in child.names)
                else:
                    out.append((child.lineno, name, in_func))
            visit(child, inner)

    visit(tree, False)
    return out


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "aimcflow" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def forbidden_imports() -> list[str]:
    """Every import that goes against the layering, as ``file:line: module``."""
    bad = []
    for layer in LAYERS:
        for path in _sources(layer):
            rel = path.relative_to(ROOT)
            is_command = path.parent.name == "commands" and layer == "flows"
            for line, module, _ in _imports(path):
                target = _layer_of(module)
                if target is not None and target not in ALLOWED[layer]:
                    bad.append(f"{rel}:{line}: {module} ({layer} must not import {target})")
                if module.startswith("aimcflow.flows.commands") and not is_command:
                    if path.name != "cli.py":  # the CLI registers the commands
                        bad.append(f"{rel}:{line}: {module} (library code imports a command)")
    return bad


def _explained(lines: list[str], i: int) -> bool:
    """``lazy:`` on line ``i`` (0-based), on an import line of its block, or on the comment
    line right above the block."""
    while True:
        if "lazy:" in lines[i]:
            return True
        prev = lines[i - 1].strip() if i > 0 else ""
        if prev.startswith(("import ", "from ")) or prev.endswith((",", "(")) or prev == ")":
            i -= 1
            continue
        return prev.startswith("#") and "lazy:" in prev


def unexplained_lazy_imports() -> list[str]:
    """Function-level imports without a ``lazy:`` comment on their line or right above
    their block of consecutive import lines."""
    bad = []
    for layer in LAYERS:
        for path in _sources(layer):
            lines = path.read_text().splitlines()
            for line, module, in_func in _imports(path):
                if not in_func:
                    continue
                if not _explained(lines, line - 1):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    return sorted(set(bad))


def test_no_forbidden_import_direction():
    bad = forbidden_imports()
    assert not bad, "imports against rtl <- models <- cosim <- flows:\n" + "\n".join(bad)


def test_function_level_imports_say_why():
    bad = unexplained_lazy_imports()
    assert not bad, (
        "imports inside functions need a '# lazy: <heavy module>' comment:\n" + "\n".join(bad)
    )


@pytest.mark.parametrize(
    "layer, source, message",
    [
        ("rtl", "from aimcflow.models.config import load_config\n", "rtl must not import models"),
        ("models", "def f():\n    from aimcflow.flows import io\n", "models must not import flows"),
        ("cosim", "from ..flows.io import atomic_path\n", "cosim must not import flows"),
        ("flows", "from aimcflow.flows.commands.run import run\n", "imports a command"),
    ],
)
def test_checker_finds_a_planted_violation(tmp_path, monkeypatch, layer, source, message):
    # the checker itself: a planted bad import in a copy of one layer is reported
    global ROOT
    fake = tmp_path / "tree"
    (fake / layer).mkdir(parents=True)
    (fake / layer / "planted.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", fake)
    found = forbidden_imports()
    assert any("planted.py" in b and message in b for b in found), found
