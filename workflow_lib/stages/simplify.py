"""Stage: the `fp32` variant: the export simplified, or the export itself when the simplifier fails or
breaks parity.

Simplifiers drop node metadata; the module each node came from is copied back by node
name, so stages downstream (the INT8 search) can still group nodes by module.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import onnx

from ..analysis import parity
from ..core.files import atomic_path, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.spec import ComponentSpec
from ..core.variants import Variant
from ..jobs import cli
from ..runtimes import onnxio

log = logging.getLogger(__name__)
TOOLS = ("onnxsim", "onnxslim", "none")
# The config section this stage reads (its variant's `settings`), validated before any job runs.
SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "properties": {
        "tool": {"enum": ["onnxsim", "onnxslim", "none"], "default": "onnxsim", "description": "graph simplifier"}
    },
}


def _run_tool(tool: str, model: onnx.ModelProto) -> onnx.ModelProto:
    if tool == "onnxsim":
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim's own check of the simplified model failed")
        return simplified
    if tool == "onnxslim":
        import onnxslim

        return onnxslim.slim(model)
    raise ValueError(f"unknown simplifier '{tool}' (one of {TOOLS})")


def restore_metadata(model: onnx.ModelProto, source: onnx.ModelProto) -> int:
    """Copy node metadata from `source` onto nodes of the same name that lost theirs; returns how many."""
    by_name = {n.name: n.metadata_props for n in source.graph.node if n.name and n.metadata_props}
    restored = 0
    for node in model.graph.node:
        if not node.metadata_props and node.name in by_name:
            node.metadata_props.extend(by_name[node.name])
            restored += 1
    return restored


def make(
    spec: ComponentSpec,
    variant: Variant,
    src: str | Path,
    out: str | Path,
    settings: dict[str, Any],
    calibration: str | None = None,
    reference: str | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    tool = settings.get("tool", "onnxsim")
    model = onnx.load(str(src))
    meta: dict[str, Any] = {
        **cli.made_from("simplify", variant.name, spec, src),
        "tool": tool,
        "nodes_before": len(model.graph.node),
        "versions": versions("onnx", "onnxsim", "onnxslim", "onnxruntime"),
    }
    reason = "simplification disabled (simplify.tool: none)" if tool == "none" else None
    with atomic_path(out, suffix=".onnx") as tmp:
        if reason is None:
            t0 = time.perf_counter()
            try:
                simplified = _run_tool(tool, model)
            except Exception as e:  # any simplifier crash means: keep the verified input graph
                reason = f"{tool} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            else:
                meta["simplify_seconds"] = round(time.perf_counter() - t0, 3)
                meta["metadata_restored"] = restore_metadata(simplified, model)
                onnxio.save(simplified, tmp)
                result = parity.check(spec, parity.reference(spec, [reference]), parity.onnxruntime(tmp), variant.name)
                meta["parity"] = result
                if not result["ok"]:
                    reason = parity.describe_failure(spec, result, f"{tool}-simplified graph")
        if reason is not None:
            log.warning("%s: keeping the unsimplified graph: %s", spec.name, reason)
            shutil.copyfile(src, tmp)
        meta.update(simplified=reason is None, fallback_reason=reason, nodes_after=len(onnx.load(str(tmp)).graph.node))
    meta["onnx_sha256"] = sha256_file(out)
    write_json(sidecar_path(out), meta)
    log.info(
        "%s: %d -> %d nodes (%s)",
        spec.name,
        meta["nodes_before"],
        meta["nodes_after"],
        tool if reason is None else "kept input graph",
    )
    return meta


if __name__ == "__main__":
    cli.graph_stage(__doc__, "simplify", make)
