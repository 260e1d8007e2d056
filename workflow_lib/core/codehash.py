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
import importlib.util
import re
from pathlib import Path

PACKAGE = "workflow_lib"
ROOT = Path(__file__).resolve().parents[1]  # the workflow_lib package
_DOTTED = re.compile(rf"^{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def module_file(module: str, root: Path = ROOT) -> Path | None:
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
    return frozenset(m for m in found if module_file(m, root) is not None)


def closure(module: str, root: Path = ROOT) -> list[Path]:
    """The module's file and every workflow_lib file it reaches through imports, sorted."""
    start = module_file(module, root)
    if start is None:
        raise ValueError(f"no module {module} under {root}")
    seen, todo = {start}, [start]
    while todo:
        for mod in _imports(todo.pop(), root):
            f = module_file(mod, root)
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return sorted(seen)


def plugin_files(module: str, root: Path = ROOT) -> list[Path]:
    """A plug-in module's file and the workflow_lib files it reaches; a module outside workflow_lib (a chain
    of your own) is found by name (its parent packages are imported, the module itself is not)."""
    if module.split(".")[0] == PACKAGE:
        return closure(module, root)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ValueError(f"no module {module} on this Python's path")
    origin = Path(spec.origin)
    found = {origin}
    for node in ast.walk(ast.parse(origin.read_text(), str(origin))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if name.split(".")[0] == PACKAGE and module_file(name, root) is not None:
                found.update(closure(name, root))
    return sorted(found)


def code_hash(module: str, *extra: str, root: Path = ROOT, plugins: tuple[str, ...] = ()) -> str:
    """sha256 over the closure's relative paths and contents (+ extra files under workflow_lib, + plug-in
    modules: a chain's code is part of every chain stage's)."""
    h = hashlib.sha256()
    files = closure(module, root) + sorted(root / e for e in extra)
    for plugin in plugins:
        files += [f for f in plugin_files(plugin, root) if f not in files]
    for f in files:
        name = f.relative_to(root) if f.is_relative_to(root) else Path("plugins", f.name)
        h.update(str(name).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
