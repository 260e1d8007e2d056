"""Parity of an artifact against the PyTorch module at the min, opt and max point of every dim.

One shape is not enough: the legacy exporter bakes the export-time sequence length into
attention reshapes, and only a second length shows it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .config import POINTS, ComponentSpec

log = logging.getLogger(__name__)

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


class ParityError(AssertionError):
    """An artifact whose outputs differ from PyTorch beyond tolerance, or that fails to run."""


def torch_runner(module: nn.Module, spec: ComponentSpec) -> Runner:
    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = module(*(torch.from_numpy(feeds[i.name]) for i in spec.inputs))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float().numpy() for o in outs]
    return run


def ort_session(path: str, threads: int = 0, providers: list[str] | None = None):
    """ORT session without spinning worker threads (they slow other work in the process)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=providers or ["CPUExecutionProvider"])


def ort_runner(path: str, threads: int = 0) -> Runner:
    sess = ort_session(path, threads)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float32) for o in sess.run(None, feeds)]
    return run


def compare(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    """Elementwise allclose; max_rel is relative to the largest reference magnitude."""
    if ref.shape != got.shape:
        return {"ok": False, "error": f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"}
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    finite = bool(np.isfinite(got).all())
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    ok = finite and bool((diff <= atol + rtol * np.abs(ref)).all())
    return {"ok": ok, "max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs,
            "ref_max": scale, "finite": finite}


def check(spec: ComponentSpec, reference: Runner, candidate: Runner, precision: str,
          seed: int = 0) -> dict[str, Any]:
    """Run both at every point; never raises for a mismatch, the caller decides."""
    tol = spec.tolerance[precision]
    points = {}
    for which in POINTS:
        dims = spec.point(which)
        feeds = spec.make_inputs(dims, seed)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        ref = reference(feeds)
        try:
            got = candidate(feeds)
        except Exception as e:  # a runtime that cannot run this shape is a parity failure, named
            points[which] = {"ok": False, "dims": dims, "shapes": shapes, "error": f"{type(e).__name__}: {e}"}
            continue
        if len(got) != len(ref):
            points[which] = {"ok": False, "dims": dims, "shapes": shapes,
                             "error": f"{len(got)} outputs, PyTorch gives {len(ref)}"}
            continue
        outs = {name: compare(r, g, **tol) for name, r, g in zip(_names(spec, len(ref)), ref, got)}
        points[which] = {"ok": all(o["ok"] for o in outs.values()), "dims": dims, "shapes": shapes, "outputs": outs}
        log.info("%s %s parity at %s %s: %s", spec.label, precision, which, dims,
                 {k: (round(v.get("max_abs", float("nan")), 8), v["ok"]) for k, v in outs.items()})
    return {"ok": all(p["ok"] for p in points.values()), "precision": precision, "tolerance": tol,
            "seed": seed, "points": points}


def _names(spec: ComponentSpec, n: int) -> list[str]:
    return list(spec.outputs) if len(spec.outputs) == n else [f"output_{i}" for i in range(n)]


def describe_failure(spec: ComponentSpec, result: dict[str, Any], artifact: str) -> str:
    """One line naming component, shape and error, for exceptions and logs."""
    for which, p in result["points"].items():
        if p["ok"]:
            continue
        if "error" in p:
            detail = p["error"].splitlines()[0]
        else:
            detail = "; ".join(f"{k}: max_abs {o.get('max_abs', float('nan')):.3g} max_rel {o.get('max_rel', float('nan')):.3g}"
                               + ("" if o.get("finite", True) else " (non-finite values)") if "error" not in o else f"{k}: {o['error']}"
                               for k, o in p["outputs"].items() if not o["ok"])
        tol = result["tolerance"]
        return (f"{spec.label} {result['precision']} parity failed for {artifact} at {which} point "
                f"{p['shapes']}: {detail} (atol {tol['atol']:g}, rtol {tol['rtol']:g})")
    return f"{spec.label}: parity passed"
