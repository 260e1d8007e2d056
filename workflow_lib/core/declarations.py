"""What a stage module declares about itself, read from its source without importing it.

A stage names the component keys it reads (`SPEC_KEYS`: key names, or the groups `load`, `io`
and `gate` of core/spec.py) and, where its variant has settings, their JSON schema
(`SETTINGS_SCHEMA`). The Snakefile slices every rule's params and validates the config with
them while it builds the DAG, so they are read as literals from the file: importing a stage
would import torch or ONNX Runtime into Snakemake.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from .codehash import ROOT, module_file


@functools.cache
def _literals(module: str) -> dict[str, Any]:
    path = module_file(module, ROOT)
    if path is None:
        raise ValueError(f"no module {module} under {ROOT}")
    out = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper() and node.value is not None:
                    try:
                        out[t.id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass  # not a literal: not a declaration
    return out


def declared(stage: str, name: str, default: Any = None) -> Any:
    """The literal `name` of `workflow_lib.stages.<stage>`, or `default`."""
    return _literals(f"workflow_lib.stages.{stage}").get(name, default)
