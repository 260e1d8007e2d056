"""Parity of an artifact against the PyTorch module at the min, opt and max point of every dim.

One shape is not enough: the legacy exporter bakes the export-time sequence length into
attention reshapes, and only a second length shows it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable

import numpy as np

from .backends import ort, torch_eager
from .config import POINTS, ComponentSpec
from .fidelity import audio_metrics

log = logging.getLogger(__name__)

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def reference(spec: ComponentSpec, checkpoint: str | None = None) -> Runner:
    """PyTorch eager fp32 on the CPU: what every artifact is compared with."""
    return torch_eager.open(spec, "fp32", checkpoint, 0, "cpu")


def onnxruntime(path: str) -> Runner:
    """ONNX Runtime on the CPU: how the graph stages check the graph they are about to write."""
    return ort.OrtRunner(str(path), 0, "cpu")


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
        if spec.output_kind == "audio":  # what a listener gets, beside the elementwise check
            for (name, o), r, g in zip(outs.items(), ref, got):
                if "error" not in o:
                    o.update(audio_metrics(r, g, spec.sample_rate))
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


def memoized(runner: Runner) -> Runner:
    """The same runner, answering repeated feeds from memory (the reference, during searches)."""
    cache: dict[tuple, list[np.ndarray]] = {}

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        key = tuple((k, v.shape, hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()) for k, v in sorted(feeds.items()))
        if key not in cache:
            cache[key] = runner(feeds)
        return cache[key]
    return run
