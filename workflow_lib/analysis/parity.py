"""Whether an artifact computes what the PyTorch module computes, judged by its variant's gate.

`allclose` gates compare elementwise at the min, opt and max point of every dim: one shape
is not enough, the legacy exporter bakes the export-time sequence length into attention
reshapes and only a second length shows it. `fidelity` gates (INT8) first check that the
artifact runs at those three points with finite outputs of the right shape, then score its
outputs on the component's calibration samples (real inputs) against PyTorch fp32's: SNR for
tensors, and for audio outputs also LSD, PESQ and STOI. 8-bit arithmetic never passes a
per-element tolerance, and random inputs say nothing about the ranges it was calibrated for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import variants
from ..core.samples import Outputs, feeds_key, read_outputs
from ..core.spec import POINTS, ComponentSpec
from ..runtimes import ort
from .fidelity import audio_metrics, gate, lsd_db, perceptual, snr_db

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
Infer = Callable[[Feeds], list[np.ndarray]]


class Reference:
    """PyTorch eager fp32 on the CPU, what every artifact is compared with: answered from the outputs
    the export (min/opt/max) and the calibration stage (its samples) stored, where they hold the
    inputs asked about, so most stages never load torch or the checkpoint; computed (once) otherwise."""

    def __init__(self, spec: ComponentSpec, cached: list[str | Path] = ()):
        self.spec, self.pytorch = spec, None
        self.outputs: dict[str, Outputs] = {}
        for path in cached:
            self.outputs.update(read_outputs(path))

    def __call__(self, feeds: Feeds) -> Outputs:
        key = feeds_key(feeds)
        if key not in self.outputs:
            if self.pytorch is None:
                from ..runtimes import torch_eager

                self.pytorch = torch_eager.open_runner(self.spec, "fp32", None, 0, "cpu")
            self.outputs[key] = self.pytorch(feeds)
        return self.outputs[key]


def reference(spec: ComponentSpec, cached: list[str | Path] = ()) -> Reference:
    return Reference(spec, [p for p in cached if p])


def onnxruntime(path: str | Path, threads: int = 0) -> ort.OrtRunner:
    """ONNX Runtime on the CPU: how the graph stages check the graph they are about to write."""
    return ort.OrtRunner(str(path), threads, "cpu")


def compare(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    """Elementwise allclose; max_rel is relative to the largest reference magnitude."""
    if ref.shape != got.shape:
        return {"ok": False, "error": f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"}
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    finite = bool(np.isfinite(got).all())
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    ok = finite and bool((diff <= atol + rtol * np.abs(ref)).all())
    return {
        "ok": ok,
        "max_abs": max_abs,
        "max_rel": max_abs / scale if scale else max_abs,
        "ref_max": scale,
        "finite": finite,
    }


def _run(candidate: Infer, feeds: Feeds, n_ref: int) -> tuple[list[np.ndarray] | None, str | None]:
    try:
        got = candidate(feeds)
    except Exception as e:  # a runtime that cannot run this shape is a parity failure, named
        return None, f"{type(e).__name__}: {e}"
    if len(got) != n_ref:
        return None, f"{len(got)} outputs, PyTorch gives {n_ref}"
    return got, None


def check(
    spec: ComponentSpec,
    reference: Infer,
    candidate: Infer,
    variant: str,
    samples: list[Feeds] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Judge `candidate` by the variant's gate; never raises for a mismatch, the caller decides."""
    limits = spec.gate(variant)
    if variants.get(variant).gate == "fidelity":
        return _fidelity(spec, reference, candidate, variant, limits, samples or [], seed)
    points = {}
    for which in POINTS:
        dims = spec.point(which)
        feeds = spec.make_inputs(dims, seed)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        ref = reference(feeds)
        got, error = _run(candidate, feeds, len(ref))
        if error:
            points[which] = {"ok": False, "dims": dims, "shapes": shapes, "error": error}
            continue
        outs = {
            name: compare(r, g, limits["atol"], limits["rtol"])
            for name, r, g in zip(_names(spec, len(ref)), ref, got, strict=True)
        }
        if spec.output_kind == "audio":  # what a listener gets, beside the elementwise check
            for (_, o), r, g in zip(outs.items(), ref, got, strict=True):
                if "error" not in o:
                    o.update(audio_metrics(r, g, spec.sample_rate))
        points[which] = {"ok": all(o["ok"] for o in outs.values()), "dims": dims, "shapes": shapes, "outputs": outs}
        log.info(
            "%s %s parity at %s %s: %s",
            spec.label,
            variant,
            which,
            dims,
            {k: (round(v.get("max_abs", float("nan")), 8), v["ok"]) for k, v in outs.items()},
        )
    return {
        "ok": all(p["ok"] for p in points.values()),
        "variant": variant,
        "gate": "allclose",
        "tolerance": limits,
        "seed": seed,
        "points": points,
    }


def sample_metrics(
    spec: ComponentSpec,
    reference_outputs: list[list[np.ndarray]],
    outputs: list[list[np.ndarray]],
    perceptual_scores: bool = True,
) -> dict[str, Any]:
    """Pooled error of a component's outputs over calibration samples: SNR over all samples' energy;
    for audio outputs also the mean LSD and (unless told not to: they cost most) PESQ and STOI
    of the first output per sample."""
    ref = np.concatenate([r.ravel() for rs in reference_outputs for r in rs])
    got = np.concatenate([g.ravel() for gs in outputs for g in gs])
    metrics: dict[str, Any] = {
        "snr_db": snr_db(ref, got),
        "finite": bool(np.isfinite(got).all()),
        "samples": len(outputs),
    }
    if spec.output_kind == "audio" and metrics["finite"]:
        per = [
            (perceptual(r[0], g[0], spec.sample_rate) if perceptual_scores else {})
            | {"lsd_db": lsd_db(r[0], g[0], spec.sample_rate)}
            for r, g in zip(reference_outputs, outputs, strict=True)
        ]
        for key in ("pesq", "stoi", "lsd_db") if perceptual_scores else ("lsd_db",):
            values = [p[key] for p in per if p.get(key) is not None]
            metrics[key] = float(np.mean(values)) if len(values) == len(per) else None
            if metrics[key] is None:
                metrics[f"{key}_error"] = next(p.get(f"{key}_error") for p in per if p.get(key) is None)
    return metrics


def _fidelity(
    spec: ComponentSpec,
    reference: Infer,
    candidate: Infer,
    variant: str,
    limits: dict[str, float],
    samples: list[Feeds],
    seed: int,
) -> dict[str, Any]:
    points = {}
    for which in POINTS:  # it must run at every point of the profile, with sane outputs
        dims = spec.point(which)
        feeds = spec.make_inputs(dims, seed)
        ref = reference(feeds)
        got, error = _run(candidate, feeds, len(ref))
        if error is None and any(g.shape != r.shape for g, r in zip(got, ref, strict=True)):
            error = f"output shapes {[list(g.shape) for g in got]} != reference {[list(r.shape) for r in ref]}"
        if error is None and not all(np.isfinite(g).all() for g in got):
            error = "non-finite outputs"
        points[which] = {"ok": error is None, "dims": dims, "shapes": {k: list(v.shape) for k, v in feeds.items()}}
        if error:
            points[which]["error"] = error
    result: dict[str, Any] = {
        "variant": variant,
        "gate": "fidelity",
        "tolerance": limits,
        "seed": seed,
        "points": points,
        "samples": len(samples),
    }
    if not samples:
        result.update(ok=False, metrics={}, reason="no calibration samples to judge a fidelity gate on")
        return result
    refs, outs = [reference(f) for f in samples], []
    for feeds, ref in zip(samples, refs, strict=True):
        got, error = _run(candidate, feeds, len(ref))
        if error:
            result.update(ok=False, metrics={}, reason=f"calibration sample: {error}")
            return result
        outs.append(got)
    metrics = sample_metrics(spec, refs, outs)
    verdict, why = gate(metrics, limits)
    result.update(ok=verdict == "passed" and all(p["ok"] for p in points.values()), metrics=metrics, reason=why)
    log.info(
        "%s %s on %d calibration samples: %s %s",
        spec.label,
        variant,
        len(samples),
        {k: round(v, 3) for k, v in metrics.items() if isinstance(v, float)},
        verdict,
    )
    return result


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
            detail = "; ".join(
                f"{k}: max_abs {o.get('max_abs', float('nan')):.3g} max_rel {o.get('max_rel', float('nan')):.3g}"
                + ("" if o.get("finite", True) else " (non-finite values)")
                if "error" not in o
                else f"{k}: {o['error']}"
                for k, o in p["outputs"].items()
                if not o["ok"]
            )
        return (
            f"{spec.label} {result['variant']} parity failed for {artifact} at {which} point "
            f"{p['shapes']}: {detail} ({_limits(result['tolerance'])})"
        )
    if result["gate"] == "fidelity" and not result["ok"]:
        return (
            f"{spec.label} {result['variant']} fidelity gate failed for {artifact} on {result['samples']} "
            f"calibration samples: {result.get('reason')} ({_limits(result['tolerance'])})"
        )
    return f"{spec.label}: parity passed"


def _limits(limits: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(limits.items()))
