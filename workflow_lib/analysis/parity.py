"""Whether an artifact computes what the PyTorch module computes, judged by its variant's gate.

`allclose` gates compare elementwise at the min, opt and max point of every dim: one shape
is not enough, the legacy exporter bakes the export-time sequence length into attention
reshapes and only a second length shows it. `fidelity` gates (INT8) first check that the
artifact runs at those three points with finite outputs of the right shape, then score its
outputs on the component's calibration samples (real inputs) against PyTorch fp32's: SNR for
tensors, and for other output kinds their own metrics (metrics.py). 8-bit arithmetic never passes a
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
from . import metrics
from .gates import WORST, Statistic, judge

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
Infer = Callable[[Feeds], list[np.ndarray]]


class Reference:
    """PyTorch eager fp32 on the CPU, what every artifact is compared with: answered from the outputs
    the export (min/opt/max) and the calibration stage (its samples) stored, where they hold the
    inputs asked about, so most stages never load torch or the checkpoint; computed (once) otherwise."""

    def __init__(self, spec: ComponentSpec, cached: list[str | Path] = (), threads: int = 0):
        self.spec, self.pytorch, self.threads = spec, None, threads
        self.outputs: dict[str, Outputs] = {}
        for path in cached:
            self.outputs.update(read_outputs(path))
        self.answered = self.computed = 0  # calls answered from what was stored; calls PyTorch ran

    def __call__(self, feeds: Feeds) -> Outputs:
        key = feeds_key(feeds)
        if key in self.outputs:
            self.answered += 1
        else:
            if self.pytorch is None:
                from ..runtimes import torch_eager

                self.pytorch = torch_eager.open_runner(self.spec, "fp32", None, self.threads, "cpu")
            self.outputs[key] = self.pytorch(feeds)
            self.computed += 1
        return self.outputs[key]


def reference(spec: ComponentSpec, cached: list[str | Path] = (), threads: int = 0) -> Reference:
    return Reference(spec, [p for p in cached if p], threads)


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


def _run(candidate: Infer, feeds: Feeds, ref: list[np.ndarray]) -> tuple[list[np.ndarray] | None, str | None]:
    try:
        got = candidate(feeds)
    except Exception as e:  # a runtime that cannot run this shape is a parity failure, named
        return None, f"{type(e).__name__}: {e}"
    if len(got) != len(ref):
        return None, f"{len(got)} outputs, PyTorch gives {len(ref)}"
    if any(g.shape != r.shape for g, r in zip(got, ref, strict=True)):  # a runtime can get a shape wrong
        return None, f"output shapes {[list(g.shape) for g in got]}, PyTorch's {[list(r.shape) for r in ref]}"
    return got, None


def check(
    spec: ComponentSpec,
    reference: Infer,
    candidate: Infer,
    variant: str,
    samples: list[Feeds] | None = None,
    seed: int = 0,
    files: list[Any] | None = None,
) -> dict[str, Any]:
    """Judge `candidate` by the variant's gate (fidelity gates: on `samples`, one per file named in
    `files`); never raises for a mismatch, the caller decides."""
    thresholds = spec.gate(variant)
    if variants.get(variant).gate == "fidelity":
        return _fidelity(spec, reference, candidate, variant, thresholds, samples or [], seed, files)
    points = {}
    for which in POINTS:
        dims = spec.point(which)
        feeds = spec.make_inputs(dims, seed)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        ref = reference(feeds)
        got, error = _run(candidate, feeds, ref)
        if error:
            points[which] = {"ok": False, "dims": dims, "shapes": shapes, "error": error}
            continue
        outs = {
            name: compare(r, g, thresholds["atol"], thresholds["rtol"])
            for name, r, g in zip(_names(spec, len(ref)), ref, got, strict=True)
        }
        for o, r, g in zip(outs.values(), ref, got, strict=True):  # the kind's metrics, beside the elementwise check
            if "error" not in o:
                o.update(metrics.scores(spec.output_kind, [r], [g], spec.sample_rate))
        points[which] = {"ok": all(o["ok"] for o in outs.values()), "dims": dims, "shapes": shapes, "outputs": outs}
        log.info(
            "%s %s parity at %s %s: %s",
            spec.name,
            variant,
            which,
            dims,
            {k: (round(v.get("max_abs", float("nan")), 8), v["ok"]) for k, v in outs.items()},
        )
    return {
        "ok": all(p["ok"] for p in points.values()),
        "variant": variant,
        "gate": "allclose",
        "thresholds": thresholds,
        "seed": seed,
        "points": points,
    }


def sample_scores(
    spec: ComponentSpec, reference: list[np.ndarray], output: list[np.ndarray], perceptual_scores: bool = True
) -> dict[str, Any]:
    """One sample's error against PyTorch fp32: the metrics of the component's output kind (analysis/metrics.py;
    the perceptual ones unless told not to: they cost most). Non-finite outputs get no scores: `finite` says so."""
    finite = all(bool(np.isfinite(g).all()) for g in output)
    if not finite:
        return {"finite": False, "snr_db": float("nan")}
    return {"finite": True, **metrics.scores(spec.output_kind, reference, output, spec.sample_rate, perceptual_scores)}


def judge_samples(
    spec: ComponentSpec,
    references: list[list[np.ndarray]],
    outputs: list[list[np.ndarray]],
    thresholds: dict[str, float],
    files: list[Any] | None = None,
    statistic: Statistic = WORST,
    perceptual_scores: bool = True,
) -> dict[str, Any]:
    """Every gate applied to the samples (one per file) by `statistic`: the verdict with each gate's value,
    margin, worst file and fraction passing, and every sample's scores."""
    per = [sample_scores(spec, r, o, perceptual_scores) for r, o in zip(references, outputs, strict=True)]
    verdict = judge(per, thresholds, files, statistic)
    if not all(s["finite"] for s in per):
        verdict.update(status="failed", reason="; ".join(filter(None, ["non-finite outputs", verdict["reason"]])))
    verdict["per_file"] = per
    return verdict


def _fidelity(
    spec: ComponentSpec,
    reference: Infer,
    candidate: Infer,
    variant: str,
    thresholds: dict[str, float],
    samples: list[Feeds],
    seed: int,
    files: list[Any] | None = None,
) -> dict[str, Any]:
    points = {}
    for which in POINTS:  # it must run at every point of the profile, with sane outputs
        dims = spec.point(which)
        feeds = spec.make_inputs(dims, seed)
        ref = reference(feeds)
        got, error = _run(candidate, feeds, ref)
        if error is None and not all(np.isfinite(g).all() for g in got):
            error = "non-finite outputs"
        points[which] = {"ok": error is None, "dims": dims, "shapes": {k: list(v.shape) for k, v in feeds.items()}}
        if error:
            points[which]["error"] = error
    result: dict[str, Any] = {
        "variant": variant,
        "gate": "fidelity",
        "thresholds": thresholds,
        "seed": seed,
        "points": points,
        "samples": len(samples),
    }
    if not samples:
        result.update(ok=False, metrics={}, reason="no samples to judge a fidelity gate on")
        return result
    refs, outs = [reference(f) for f in samples], []
    for feeds, ref in zip(samples, refs, strict=True):
        got, error = _run(candidate, feeds, ref)
        if error:
            result.update(ok=False, metrics={}, reason=f"sample: {error}")
            return result
        outs.append(got)
    verdict = judge_samples(spec, refs, outs, thresholds, files, Statistic.from_settings(spec.raw.get("gating")))
    result.update(
        ok=verdict["status"] == "passed" and all(p["ok"] for p in points.values()),
        metrics=metrics.worst_values(verdict["per_file"]),
        verdict={k: v for k, v in verdict.items() if k != "per_file"},
        per_file=verdict["per_file"],
        reason=verdict["reason"],
    )
    log.info(
        "%s %s on %d samples: %s %s",
        spec.name,
        variant,
        len(samples),
        {k: round(v, 3) for k, v in result["metrics"].items() if isinstance(v, float)},
        verdict["status"],
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
            f"{spec.name} {result['variant']} parity failed for {artifact} at {which} point "
            f"{p['shapes']}: {detail} ({_limits(result['thresholds'])})"
        )
    if result["gate"] == "fidelity" and not result["ok"]:
        return (
            f"{spec.name} {result['variant']} fidelity gate failed for {artifact} on {result['samples']} "
            f"samples: {result.get('reason')} ({_limits(result['thresholds'])})"
        )
    return f"{spec.name}: parity passed"


def _limits(thresholds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(thresholds.items()))
