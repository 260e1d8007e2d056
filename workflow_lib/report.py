"""Stage: one self-contained HTML report (plots embedded) for deciding what to ship.

Tables come from polars, plots from matplotlib (also written as PNG files for
`snakemake --report`), the page from a jinja2 template. Skipped validations and
backends that could not run are shown with their reasons, never hidden.
"""

from __future__ import annotations

import argparse
import base64
import io as _io
import json
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from . import cli  # noqa: E402
from .cli import FAILURES  # noqa: E402
from .config import POINTS  # noqa: E402
from .io import atomic_path, now, read_json, sidecar_path, versions  # noqa: E402

log = logging.getLogger(__name__)
PLOTS = ("speedup", "latency", "e2e_rtf")


def _png(fig, path: Path) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def _empty(message: str):
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def point_order(point: str) -> float:
    """Shape points in min, opt, max order; e2e audio lengths ('1s', '10s') by duration."""
    return float(POINTS.index(point)) if point in POINTS else float(point.rstrip("s"))


def speedup_plot(summary: pl.DataFrame):
    """Speedup over PyTorch fp32 at the opt point, per component and backend, with 95 % CI bars."""
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


def latency_plot(bench: pl.DataFrame):
    """p50 latency against sequence length (time dim) per component and backend."""
    df = bench
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


def e2e_plot(summary: pl.DataFrame):
    df = summary.filter(pl.col("component") == "e2e")
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


def _bench_table(csvs: list[str]) -> pl.DataFrame:
    frames = []
    for csv in csvs:
        df = pl.read_csv(csv, infer_schema_length=0)
        if df.is_empty():
            continue
        if "assignment" in df.columns:  # the e2e chain has its own plot, from the summary
            continue
        df = df.with_columns(pl.col("dims").map_elements(_length, return_dtype=pl.Float64).alias("length"))
        frames.append(df.select("model", "component", "label", "device", "point", "length",
                                pl.col("p50_ms").cast(pl.Float64), pl.col("iterations").cast(pl.Int64)))
    return pl.concat(frames) if frames else pl.DataFrame(schema={"component": pl.Utf8, "label": pl.Utf8})


def _length(dims_json: str) -> float:
    """The sequence length of a point: its `time` dim, else its largest symbolic dim."""
    dims = json.loads(dims_json)
    return float(dims.get("time", max(dims.values(), default=1)))


def accuracy_rows(markers: list[str]) -> list[dict[str, Any]]:
    rows = []
    for path in markers:
        m = read_json(path)
        points = (m.get("parity") or {}).get("points", {})
        base = {k: m[k] for k in ("model", "component", "backend", "precision", "status")} | {"reason": m.get("reason", "")}
        if not points:
            rows.append(base | {"point": "-", "shapes": "-", "max_abs": None, "max_rel": None})
        for which, p in points.items():
            outs = p.get("outputs", {})
            rows.append(base | {"point": which, "shapes": json.dumps(p["shapes"]),
                                "max_abs": max((o.get("max_abs", float("nan")) for o in outs.values()), default=None),
                                "max_rel": max((o.get("max_rel", float("nan")) for o in outs.values()), default=None)})
    return rows


def engine_rows(sidecars: list[str]) -> list[dict[str, Any]]:
    rows = []
    for path in sidecars:
        m = read_json(path)
        rows.append({"model": m["model"], "component": m["component"], "precision": m["precision"],
                     "size_mb": m["engine_bytes"] / 1e6, "build_seconds": m["build_seconds"],
                     "cache": "hit (reused)" if m["cache"]["hit"] else "built", "flavour": f"{m['flavour']} {m['flavour_version']}",
                     "targets": ", ".join(m["targets"]) if isinstance(m["targets"], list) else m["targets"]})
    return rows


def render(summary: pl.DataFrame, unavailable: list[dict], bench_csvs: list[str], markers: list[str],
           engines: list[str], out_html: str | Path, plot_dir: str | Path, config_hash: str,
           failures: list[dict] | None = None) -> dict:
    bench = _bench_table(bench_csvs)
    plot_dir = Path(plot_dir)
    figures = {"speedup": speedup_plot(summary), "latency": latency_plot(bench), "e2e_rtf": e2e_plot(summary)}
    images = {name: _png(figures[name], plot_dir / f"{name}.png") for name in PLOTS}
    accuracy = accuracy_rows(markers)
    failures = failures or []
    context = {
        "created": now(), "config_hash": config_hash, "versions": versions("torch", "onnx", "onnxruntime", "tensorrt",
                                                                              "tensorrt-rtx-cu13", "snakemake", "polars"),
        "models": sorted({r["model"] for r in accuracy + failures}),
        "components": sorted({r["component"] for r in accuracy + failures}),
        "backends": sorted(set(summary.filter(pl.col("component") != "e2e")["label"])),
        "assignments": sorted(set(summary.filter(pl.col("component") == "e2e")["label"])),
        "devices": sorted(set(summary["device"])) if summary.height else [],
        "precisions": sorted({r["precision"] for r in accuracy}),
        "speedups": sorted(summary.filter(pl.col("speedup").is_not_null()).to_dicts(),
                           key=lambda r: (r["component"], point_order(r["point"]), r["label"])),
        "chains": {r["label"]: r["chain"].replace(";", "; ") for r in summary.iter_rows(named=True)
                   if r["component"] == "e2e" and r.get("chain")},
        "accuracy": accuracy, "engines": engine_rows(engines), "unavailable": unavailable,
        "skipped": [r for r in accuracy if r["status"] == "skipped"], "failures": failures, "images": images,
        "counts": {s: len({(r["component"], r["backend"], r["precision"]) for r in accuracy if r["status"] == s})
                   for s in ("passed", "skipped", "failed")},
    }
    env = Environment(loader=PackageLoader("workflow_lib", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, fmt="{:.3g}": "–" if v is None or v != v else fmt.format(v)
    html = env.get_template("report.html.j2").render(**context)
    with atomic_path(out_html, suffix=".html") as tmp:
        tmp.write_text(html)
    return context


def read_summary(path: str | Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema_length=0).with_columns(
        [pl.col(c).cast(pl.Float64) for c in ("p50_ms", "speedup", "ci_low", "ci_high", "baseline_p50_ms", "rtf")])


def render_partial(results: str | Path, engine_dir: str | Path, config_hash: str, resamples: int = 2000) -> dict:
    """After a failed (--keep-going) run: the report from whatever exists, failures shown first."""
    from .summary import summarize

    results = Path(results)
    csvs = sorted(str(p) for p in results.glob("bench/*/**/*.csv") if (Path(f"{p}.json")).is_file())
    summary, unavailable = summarize(csvs, resamples)
    failures = [read_json(p) for p in sorted(FAILURES.glob("*/*.json"))]
    return render(summary, unavailable, csvs, sorted(map(str, results.glob("validation/*/*.json"))),
                  sorted(map(str, Path(engine_dir).glob("*/*.engine.json"))), results / "report" / "index.html",
                  results / "report", config_hash, failures)


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--partial", metavar="RESULTS", help="render from whatever exists under RESULTS (after failures)")
    p.add_argument("--engine-dir", default="results/engines", help="with --partial: where engines are")
    p.add_argument("--summary")
    p.add_argument("--unavailable")
    p.add_argument("--bench", nargs="*", default=[])
    p.add_argument("--markers", nargs="*", default=[])
    p.add_argument("--engines", nargs="*", default=[], help="engine sidecar JSON files")
    p.add_argument("--config-hash", required=True)
    p.add_argument("--out")
    p.add_argument("--plots", help="directory for the PNG plots")

    def run(a: argparse.Namespace) -> None:
        if a.partial:
            ctx = render_partial(a.partial, a.engine_dir, a.config_hash)
            log.warning("partial report: %d failed component stage(s) shown", len(ctx["failures"]))
            return
        ctx = render(read_summary(a.summary), read_json(a.unavailable), a.bench, a.markers, a.engines, a.out,
                     a.plots, a.config_hash)
        log.info("report: %d speedup rows, %d accuracy rows -> %s", len(ctx["speedups"]), len(ctx["accuracy"]), a.out)

    cli.run("report", run, p, argv)


if __name__ == "__main__":
    main()
