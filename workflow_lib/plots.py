"""The report's plots, as a registry: name -> function(data) -> matplotlib figure.

The report rule declares one PNG output per entry (with `report/<name>.rst` as its
caption), and the report stage draws them all, so a new plot is one function and one
entry. matplotlib is imported only when a plot is drawn: the Snakefile reads PLOTS while
it builds the DAG.
"""

from __future__ import annotations

import base64
import io as _io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl

from .config import POINTS
from .io import atomic_path


@dataclass
class PlotData:
    summary: pl.DataFrame  # speedups.summarize() of every benchmark CSV
    bench: pl.DataFrame  # per-component rows with a numeric `length`
    fidelity: dict[str, dict[str, Any]] = field(default_factory=dict)  # assignment -> e2e sidecar's fidelity record
    audio: dict[str, tuple[Any, int]] = field(default_factory=dict)  # "reference" / assignment -> (samples, rate)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> str:
    """Write the figure as a PNG file (atomically) and return it base64-encoded for embedding."""
    plt = _pyplot()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def _empty(message: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def point_order(point: str) -> float:
    """Shape points in min, opt, max order; e2e audio lengths ('1s', '10s') by duration."""
    return float(POINTS.index(point)) if point in POINTS else float(point.rstrip("s"))


def speedup_plot(data: PlotData):
    """Speedup over PyTorch fp32 at the opt point, per component and backend, with 95 % CI bars."""
    plt, summary = _pyplot(), data.summary
    df = summary.filter((pl.col("component") != "e2e") & (pl.col("point") == "opt") & pl.col("speedup").is_not_null()
                        & ~((pl.col("backend") == "pytorch") & (pl.col("precision") == "fp32")))
    if df.is_empty():
        return _empty("No speedups: only the PyTorch fp32 baseline was measured.")
    comps = sorted(set(df["component"]))
    labels = sorted(set(df["label"]))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(comps)), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        sub = {r["component"]: r for r in df.filter(pl.col("label") == label).iter_rows(named=True)}
        xs = [c for c in range(len(comps)) if comps[c] in sub]
        ys = [sub[comps[c]]["speedup"] for c in xs]
        err = [[sub[comps[c]]["speedup"] - sub[comps[c]]["ci_low"] for c in xs],
               [sub[comps[c]]["ci_high"] - sub[comps[c]]["speedup"] for c in xs]]
        ax.bar([x + i * width for x in xs], ys, width, yerr=err, capsize=3, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(comps))], comps, rotation=15)
    ax.set_ylabel("speedup vs PyTorch fp32 (x)")
    ax.set_title("Speedup at the opt shape (bars: 95 % bootstrap CI)")
    ax.legend(fontsize=8)
    return fig


def latency_plot(data: PlotData):
    """p50 latency against sequence length (time dim) per component and backend."""
    plt, df = _pyplot(), data.bench
    if df.is_empty():
        return _empty("No per-component timings were measured.")
    comps = sorted(set(df["component"]))
    fig, axes = plt.subplots(1, len(comps), figsize=(3.2 * len(comps), 3.2), squeeze=False)
    for ax, comp in zip(axes[0], comps):
        sub = df.filter(pl.col("component") == comp)
        for label in sorted(set(sub["label"])):
            line = sub.filter(pl.col("label") == label).sort("length")
            ax.plot(line["length"].to_list(), line["p50_ms"].to_list(), marker="o", label=label)
        ax.set_title(comp, fontsize=9)
        ax.set_xlabel("sequence length (time dim)", fontsize=8)
        ax.set_yscale("log")
    axes[0][0].set_ylabel("p50 latency (ms)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def e2e_plot(data: PlotData):
    """Real-time factor of each end-to-end assignment per audio length."""
    plt, df = _pyplot(), data.summary.filter(pl.col("component") == "e2e")
    if df.is_empty():
        return _empty("No end-to-end chain was measured.")
    points = sorted(set(df["point"]), key=point_order)
    labels = sorted(set(df["label"]))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        sub = {r["point"]: r for r in df.filter(pl.col("label") == label).iter_rows(named=True)}
        xs = [j for j, p in enumerate(points) if p in sub]
        ax.bar([x + i * width for x in xs], [sub[points[x]]["rtf"] for x in xs], width, label=label)
    ax.axhline(1.0, color="red", linewidth=0.8, linestyle="--", label="real time")
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(points))], [f"{p} audio" for p in points])
    ax.set_ylabel("real-time factor (lower is faster)")
    ax.set_title("End-to-end voice conversion")
    ax.legend(fontsize=8)
    return fig


def reference_first(names) -> list[str]:
    """The reference clip, then the assignments by name: how plots and players list audio."""
    return sorted(names, key=lambda n: (n != "reference", n))


def propagation_plot(data: PlotData):
    """SNR of each stage's output against PyTorch fp32 along the chain, per assignment (first audio length)."""
    plt = _pyplot()
    from .models.svc_chain import STAGES

    lines = {name: rec["points"][min(rec["points"], key=point_order)]["stages"]
             for name, rec in sorted(data.fidelity.items()) if rec.get("points")}
    lines = {k: v for k, v in lines.items() if any(v[s]["snr_db"] != float("inf") for s in STAGES)}
    if not lines:
        return _empty("No end-to-end assignment differs from PyTorch fp32 (or none was measured).")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, stages in lines.items():
        ax.plot(list(STAGES), [min(stages[s]["snr_db"], 200.0) for s in STAGES], marker="o", label=name)
    ax.set_ylabel("SNR vs PyTorch fp32 (dB)")
    ax.set_title("Where error enters the chain (higher is closer)")
    ax.legend(fontsize=8)
    return fig


def spectrogram_plot(data: PlotData):
    """Mel spectrograms of the reference audio and each assignment's output, side by side."""
    plt = _pyplot()
    from .fidelity import log_mel_db

    clips = {k: v for k, v in data.audio.items() if len(v[0])}
    if not clips:
        return _empty("No end-to-end audio was produced.")
    names = reference_first(clips)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.6), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        samples, rate = clips[name]
        ax.imshow(log_mel_db(samples, rate), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("frame", fontsize=7)
    axes[0][0].set_ylabel("mel band", fontsize=7)
    fig.tight_layout()
    return fig


PLOTS: dict[str, Callable[[PlotData], Any]] = {"speedup": speedup_plot, "latency": latency_plot, "e2e_rtf": e2e_plot,
                                               "error_propagation": propagation_plot, "spectrograms": spectrogram_plot}
