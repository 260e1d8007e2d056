"""The code a stage runs, as one hash: its module plus every workflow_lib module it imports.

Rules take this as a param, so a fix to any helper a stage uses reruns exactly the stages
that use it, and moving or copying the checkout changes nothing (the hash covers file
contents, not paths). Imports are read from the source (no module is imported: the
Snakefile calls this while it builds the DAG), including imports inside functions and
the dotted module names the backend registry imports by string.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

PACKAGE = "workflow_lib"
ROOT = Path(__file__).resolve().parents[1]  # the workflow_lib package
_DOTTED = re.compile(rf"^{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _file(module: str, root: Path) -> Path | None:
    rel = Path(*module.split(".")[1:])
    if not rel.parts:
        return root / "__init__.py" if (root / "__init__.py").is_file() else None
    for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


@functools.cache
def _imports(path: Path, root: Path) -> frozenset[str]:
    """workflow_lib modules that `path` imports (absolute, relative or by dotted string)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith(PACKAGE):
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` names modules
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.match(node.value):
            found.add(node.value)
    # a submodule import also runs its packages' __init__
    for mod in list(found):
        parts = mod.split(".")
        found.update(".".join(parts[:i]) for i in range(2, len(parts)))
    return frozenset(m for m in found if _file(m, root) is not None)


def closure(module: str, root: Path = ROOT) -> list[Path]:
    """The module's file and every workflow_lib file it reaches through imports, sorted."""
    start = _file(module, root)
    if start is None:
        raise ValueError(f"no module {module} under {root}")
    seen, todo = {start}, [start]
    while todo:
        for mod in _imports(todo.pop(), root):
            f = _file(mod, root)
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return sorted(seen)


def code_hash(module: str, *extra: str, root: Path = ROOT) -> str:
    """sha256 over the closure's relative paths and contents (+ extra files under workflow_lib)."""
    h = hashlib.sha256()
    for f in closure(module, root) + sorted(root / e for e in extra):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
