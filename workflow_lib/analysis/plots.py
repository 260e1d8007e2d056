"""The report's plots, as a registry: name -> the function that draws it, its caption, and the
report section it belongs to.

The report rule declares one PNG output per entry, the report stage draws them all, and
the HTML template places each under its section with its caption (so does `snakemake
--report`, from the same captions): a new plot is one function and one entry. matplotlib is
imported only when a plot is drawn: the Snakefile reads PLOTS while it builds the DAG.
"""

from __future__ import annotations

import base64
import io as _io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..core.files import atomic_path
from ..core.spec import POINTS
from . import gates, metrics


@dataclass
class PlotData:
    summary: pl.DataFrame  # speedups.summarize() of every benchmark CSV
    bench: pl.DataFrame  # per-component rows with a numeric `length`
    fidelity: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # assignment -> its chain sidecar's fidelity record
    pictures: dict[str, Any] = field(default_factory=dict)  # "input" / "reference" / assignment / "live" -> 2-D array
    int8: dict[str, dict[str, Any]] = field(default_factory=dict)  # component -> the int8 variant's sidecar
    live: list[dict[str, Any]] = field(default_factory=list)  # per model, the live record (stages/live.py)
    # what ships, judged on the evaluation files: label -> a gates verdict (analysis/gates.judge) with per-file values
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    """Shape points in min, opt, max order; chain input lengths ('1s', '10s') by duration."""
    return float(POINTS.index(point)) if point in POINTS else float(point.rstrip("s"))


def speedup_plot(data: PlotData):
    """Speedup over PyTorch fp32 at the opt point, per component and backend, with 95 % CI bars."""
    plt, summary = _pyplot(), data.summary
    df = summary.filter(
        (pl.col("component") != "chain")
        & (pl.col("point") == "opt")
        & pl.col("speedup").is_not_null()
        & ~((pl.col("backend") == "pytorch") & (pl.col("variant") == "fp32"))
    )
    if df.is_empty():
        return _empty("No speedups: only the PyTorch fp32 baseline was measured.")
    comps = sorted(set(df["component"]))
    labels = sorted(set(df["series"]))
    colours = series_colours(data)
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(comps)), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        sub = {r["component"]: r for r in df.filter(pl.col("series") == label).iter_rows(named=True)}
        xs = [c for c in range(len(comps)) if comps[c] in sub]
        ys = [sub[comps[c]]["speedup"] for c in xs]
        err = [  # no bar where too few samples gave no CI
            [sub[comps[c]]["speedup"] - (sub[comps[c]]["ci_low"] or sub[comps[c]]["speedup"]) for c in xs],
            [(sub[comps[c]]["ci_high"] or sub[comps[c]]["speedup"]) - sub[comps[c]]["speedup"] for c in xs],
        ]
        ax.bar([x + i * width for x in xs], ys, width, yerr=err, capsize=3, label=label, color=colours[label])
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(comps))], comps, rotation=15)
    ax.set_ylabel("speedup vs PyTorch fp32 (x)")
    ax.set_title("Speedup at the opt shape (bars: 95 % bootstrap CI)")
    ax.legend(fontsize=8)
    return fig


def latency_plot(data: PlotData):
    """p50 latency against sequence length per component, each series in the colour it has in every plot; one
    legend for all panels (a panel's own legend would name only its series)."""
    plt, df = _pyplot(), data.bench
    if df.is_empty():
        return _empty("No per-component timings were measured.")
    comps = sorted(set(df["component"]))
    colours = series_colours(data)
    fig, axes = plt.subplots(1, len(comps), figsize=(3.2 * len(comps), 3.2), squeeze=False)
    for ax, comp in zip(axes[0], comps, strict=True):
        sub = df.filter(pl.col("component") == comp)
        for label in sorted(set(sub["series"])):
            line = sub.filter(pl.col("series") == label).sort("length")
            ax.plot(line["length"].to_list(), line["p50_ms"].to_list(), marker="o", color=colours[label], label=label)
        ax.set_title(comp, fontsize=9)
        ax.set_xlabel("sequence length (time dim)", fontsize=8)
        ax.set_yscale("log")
    axes[0][0].set_ylabel("p50 latency (ms)")
    shown = sorted(set(df["series"]))
    handles = [plt.Line2D([], [], color=colours[s], marker="o", label=s) for s in shown]
    rows = -(-len(shown) // 6)
    fig.tight_layout(rect=(0, 0.04 + 0.075 * rows, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(shown)), fontsize=9, frameon=False)
    return fig


def series_colours(data: PlotData) -> dict[str, Any]:
    """One colour per component series (backend.variant@device) for every plot, so a series reads the same in
    each; ten distinct colours while there are at most ten series."""
    import matplotlib

    frames = (data.summary.filter(pl.col("component") != "chain"), data.bench)
    labels = sorted({s for df in frames if "series" in df.columns for s in df["series"]})
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def chain_plot(data: PlotData):
    """Real-time factor of each chain assignment per input length."""
    plt, df = _pyplot(), data.summary.filter(pl.col("component") == "chain")
    if df.is_empty():
        return _empty("No chain was measured.")
    points = sorted(set(df["point"]), key=point_order)
    labels = sorted(set(df["series"]))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        sub = {r["point"]: r for r in df.filter(pl.col("series") == label).iter_rows(named=True)}
        xs = [j for j, p in enumerate(points) if p in sub]
        ax.bar([x + i * width for x in xs], [sub[points[x]]["rtf"] for x in xs], width, label=label)
    ax.axhline(1.0, color="red", linewidth=0.8, linestyle="--", label="real time")
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(points))], [f"{p} of input" for p in points])
    ax.set_ylabel("real-time factor (lower is faster)")
    ax.set_title("The whole chain")
    ax.legend(fontsize=8)
    return fig


MEDIA_FIRST = ("input", "reference")  # the item itself, then what PyTorch fp32 makes of it


def media_order(names) -> list[str]:
    """The input, what PyTorch fp32 makes of it, then the assignments by name: how plots and players list media."""
    return sorted(names, key=lambda n: (MEDIA_FIRST.index(n) if n in MEDIA_FIRST else len(MEDIA_FIRST), n))


def propagation_plot(data: PlotData):
    """SNR of each stage's output against PyTorch fp32 along the chain, per assignment (the worst evaluation file)."""
    plt = _pyplot()
    lines = {
        name: (rec.get("stage_order"), rec["stages"])
        for name, rec in sorted(data.fidelity.items())
        if rec.get("stages")
    }
    lines = {k: v for k, v in lines.items() if any(m["snr_db"] != float("inf") for m in v[1].values())}
    if not lines:
        return _empty("No chain assignment differs from PyTorch fp32 (or none was measured).")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, (order, stages) in lines.items():  # the chain's own stage order, as the record keeps it
        names = order or list(stages)
        ax.plot(names, [min(stages[s]["snr_db"], 200.0) for s in names], marker="o", label=name)
    ax.set_ylabel("SNR vs PyTorch fp32 (dB)")
    ax.set_title("Where error enters the chain (higher is closer)")
    ax.legend(fontsize=8)
    return fig


def spectrogram_plot(data: PlotData):
    """The pictures the chain plug-in draws of its media (audio: mel spectrograms), side by side."""
    plt = _pyplot()
    if not data.pictures:
        return _empty("No chain made media it can draw.")
    names = media_order(data.pictures)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.6), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        ax.imshow(data.pictures[name], origin="lower", aspect="auto", cmap="magma")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("frame", fontsize=7)
    fig.tight_layout()
    return fig


def int8_plot(data: PlotData):
    """Per component, every INT8 candidate the search tried: latency against fidelity, the gate, the one shipped."""
    plt = _pyplot()
    comps = {c: m for c, m in sorted(data.int8.items()) if (m.get("search") or {}).get("candidates")}
    if not comps:
        return _empty("No INT8 variant was made.")
    fig, axes = plt.subplots(1, len(comps), figsize=(3.4 * len(comps), 3.2), squeeze=False)
    for ax, (comp, meta) in zip(axes[0], comps.items(), strict=True):
        search = meta["search"]
        cands = search["candidates"]
        score = metrics.kind(meta.get("output_kind", "tensor")).score  # what `score` holds where computed
        metric, limit = f"{score} vs fp32 (worst search file)", meta["gate"].get(f"min_{score}")
        front = set(search.get("front") or [])
        for c in cands:
            color = "tab:green" if c["verdict"] == "passed" else "tab:red"
            ax.scatter(c["p50_ms"], c["score"], color=color, marker="o" if c["index"] in front else "x", zorder=3)
            ax.annotate(
                str(c["float_nodes"]), (c["p50_ms"], c["score"]), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
        chosen = cands[search["chosen"]]
        ax.scatter(
            chosen["p50_ms"], chosen["score"], s=160, facecolors="none", edgecolors="black", zorder=4, label="shipped"
        )
        if limit is not None:
            ax.axhline(limit, color="gray", linestyle="--", linewidth=0.8, label="gate")
        ax.set_title(comp, fontsize=9)
        ax.set_xlabel("p50 ms at opt (ONNX Runtime)", fontsize=7)
        ax.set_ylabel(metric, fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def live_plot(data: PlotData):
    """Per model, compute per chunk (p95) and the latency a listener gets by the clock (with the smallest buffer
    that played without a stall) against the chunk."""
    plt = _pyplot()
    records = [r for r in data.live if r.get("chunks")]
    if not records:
        return _empty("No chain was converted live (chain.stream).")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    top = 0.0
    for r in records:
        chunks = sorted(r["chunks"], key=lambda c: c["chunk_ms"])
        xs = [c["chunk_ms"] for c in chunks]
        ax.plot(xs, [c["compute_p95_ms"] for c in chunks], marker="o", label=f"{r['model']}: compute per chunk (p95)")
        ax.plot(
            xs,
            [c["latency_ms"] for c in chunks],
            marker="s",
            linestyle="--",
            label=f"{r['model']}: latency a listener gets (by the clock, no stall)",
        )
        for c in chunks:
            if not c["keeps_up"]:
                ax.annotate("falls behind", (c["chunk_ms"], c["latency_ms"]), fontsize=7, color="red")
        top = max(top, *xs)
    ax.plot([0, top * 1.1], [0, top * 1.1], color="red", linewidth=0.8, label="real time (compute = chunk)")
    ax.set_xlabel("chunk (ms)")
    ax.set_ylabel("ms")
    ax.set_title("Live conversion: compute below the red line keeps up")
    ax.legend(fontsize=7)
    return fig


def gate_files_plot(data: PlotData):
    """Per gate of what ships, every evaluation file's value against the limit: how far the files spread, which
    fail on their own, and the statistic that decided."""
    plt = _pyplot()
    rows = [
        (label, key, g)
        for label, verdict in sorted(data.verdicts.items())
        for key, g in sorted((verdict.get("gates") or {}).items())
        if g.get("values")
    ]
    if not rows:
        return _empty("Nothing shipped was judged on evaluation files.")
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 0.9 + 0.75 * len(rows)), squeeze=False)
    for ax, (label, key, g) in zip(axes[:, 0], rows, strict=True):
        values = [v for v in g["values"].values() if v is not None and abs(v) != float("inf")]
        ok = [(v >= g["limit"]) if gates.higher_is_better(key) else (v <= g["limit"]) for v in values]
        ax.scatter(values, [0] * len(values), c=["tab:green" if o else "tab:red" for o in ok], s=14, zorder=3)
        ax.axvline(g["limit"], color="gray", linestyle="--", linewidth=0.8)
        if g.get("value") is not None:
            ax.axvline(g["value"], color="black", linewidth=1.0)
        ax.set_yticks([])
        share = g.get("passing")
        ax.set_title(
            f"{label} {key} {g['limit']:g}: {len(values)} files"
            + (f", {share:.0%} pass alone" if share is not None else "")
            + (f"; {g.get('statistic')}" if g.get("statistic") else ""),
            fontsize=7,
            loc="left",
        )
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Plot:
    draw: Callable[[PlotData], Any]
    section: str  # the report section it is shown in
    caption: str


PLOTS: dict[str, Plot] = {
    "gate_files": Plot(
        gate_files_plot,
        "ship",
        "What ships, judged once on the evaluation files (files nothing was chosen on): per gate, every file's "
        "value (green passes the limit on its own, red does not), the limit (dashed) and the statistic that "
        "decided (solid; a tolerance bound over the files, or the worst file where there are few).",
    ),
    "speedup": Plot(
        speedup_plot,
        "speedup",
        "Speedup of each backend and graph variant over PyTorch fp32 at the opt "
        "shape, per component; error bars are bootstrap 95 % confidence intervals of the ratio of medians.",
    ),
    "latency": Plot(
        latency_plot,
        "latency",
        "p50 latency against sequence length (the time dim at the min, opt and max point), per component and "
        "series, log scale; a series has one colour in every plot. Lines join the points of a series timed at "
        "every point (PyTorch fp32, and what ships); a lone dot is a series timed only at the point that decides "
        "(bench.prune).",
    ),
    "int8_search": Plot(
        int8_plot,
        "int8",
        "Every INT8 candidate the search tried, per component: p50 latency at the "
        "opt shape (ONNX Runtime) against fidelity on the worst search file (the output kind's score, "
        "SNR where it could not be computed). Green passed the gate (dashed) on the search files, red failed; "
        "circles are the front, numbers count the nodes kept float; the ringed point was chosen. The evaluation "
        "files judge what ships, once, after every choice (the gate plot in the section on what ships).",
    ),
    "chain_rtf": Plot(
        chain_plot,
        "chain",
        "Real-time factor (chain latency / input duration) of each chain "
        "assignment per input length; below the dashed line is faster than real time.",
    ),
    "spectrograms": Plot(
        spectrogram_plot,
        "chain",
        "Pictures of the first evaluation file, of what PyTorch fp32 makes of it and of what each assignment "
        "makes of it, as the chain plug-in draws its media (audio: mel spectrograms of what a listener hears).",
    ),
    "live": Plot(
        live_plot,
        "live",
        "The shipped chain converted live, chunk by chunk, each chunk pushed when its last sample would have been "
        "captured: compute per chunk at p95 (below the red line it keeps up) and the delay from a sample entering "
        "to it being heard, measured by the clock, with the smallest output buffer that played the file without "
        "a stall (worst file).",
    ),
    "error_propagation": Plot(
        propagation_plot,
        "chain",
        "SNR of each stage of the chain against PyTorch fp32 on the same input, on the worst evaluation "
        "file: where error enters and how it grows (the chain plug-in says how each stage is compared).",
    ),
}
