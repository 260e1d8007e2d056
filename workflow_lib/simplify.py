"""Stage: ONNX -> simplified ONNX, falling back to the input graph if the simplifier fails or breaks parity."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import onnx

from . import cli, onnxio, parity
from .config import ComponentSpec
from .io import atomic_path, now, sha256_file, sidecar_path, versions, write_json

log = logging.getLogger(__name__)
TOOLS = ("onnxsim", "onnxslim", "none")


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


def simplify(spec: ComponentSpec, src: str | Path, out: str | Path, tool: str) -> dict[str, Any]:
    model = onnx.load(str(src))
    meta: dict[str, Any] = {"stage": "simplify", "model": spec.model, "component": spec.component,
                            "tool": tool, "created": now(), "input": str(src), "input_sha256": sha256_file(src),
                            "nodes_before": len(model.graph.node),
                            "versions": versions("onnx", "onnxsim", "onnxslim", "onnxruntime")}
    reason = "simplification disabled (simplify.tool: none)" if tool == "none" else None
    with atomic_path(out, suffix=".onnx") as tmp:
        if reason is None:
            t0 = time.perf_counter()
            try:
                onnxio.save(_run_tool(tool, model), tmp)
            except Exception as e:  # any simplifier crash means: keep the verified input graph
                reason = f"{tool} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            else:
                meta["simplify_seconds"] = round(time.perf_counter() - t0, 3)
                result = parity.check(spec, parity.reference(spec), parity.onnxruntime(tmp), "fp32")
                meta["parity"] = result
                if not result["ok"]:
                    reason = parity.describe_failure(spec, result, f"{tool}-simplified graph")
        if reason is not None:
            log.warning("%s: keeping the unsimplified graph: %s", spec.label, reason)
            shutil.copyfile(src, tmp)
        meta.update(simplified=reason is None, fallback_reason=reason, nodes_after=len(onnx.load(str(tmp)).graph.node))
    meta["onnx_sha256"] = sha256_file(out)
    write_json(sidecar_path(out), meta)
    log.info("%s: %d -> %d nodes (%s)", spec.label, meta["nodes_before"], meta["nodes_after"],
             tool if reason is None else "kept input graph")
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tool", choices=TOOLS, default="onnxsim")
    cli.run("simplify", lambda a: simplify(a.spec, a.onnx, a.out, a.tool), p, argv)


if __name__ == "__main__":
    main()
