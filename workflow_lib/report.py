"""Stage: one self-contained HTML report (plots embedded) for deciding what to ship.

Tables come from polars, plots from matplotlib (also written as PNG files for
`snakemake --report`), the page from a jinja2 template. Skipped validations and
backends that could not run are shown with their reasons, never hidden.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from . import cli
from .backends import registry as backends
from .fidelity import read_wav
from .io import atomic_path, now, read_json, sidecar_path, versions
from .paths import RESULTS, Layout, wav_beside
from .plots import PLOTS, PlotData, point_order, reference_first, save_png
from .results import RUNTIMES
from .speedups import FLOATS, read_flops, summarize

log = logging.getLogger(__name__)


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


def fp16_rows(sidecars: list[str]) -> list[dict[str, Any]]:
    """Per fp16 graph: how much stayed fp32, set by hand (fp32_ops) or found by the search."""
    rows = []
    for path in sidecars:
        m = read_json(path)
        search = m.get("search") or {}
        rows.append({"model": m["model"], "component": m["component"], "nodes_fp32": m.get("nodes_fp32"),
                     "nodes": m.get("nodes"), "manual": ", ".join(m.get("fp32_ops", [])),
                     "auto": ", ".join(search.get("auto_fp32_ops", [])), "search_seconds": search.get("seconds"),
                     "trials": len(search.get("trials", []))})
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


def ship_rows(manifests: list[str]) -> list[dict[str, Any]]:
    """One row per model, component and device: what the deployment rule picked, and the runners-up."""
    rows = []
    for path in manifests:
        m = read_json(path)
        for comp, per_device in sorted(m["components"].items()):
            for kind, pick in sorted(per_device.items()):
                rows.append({"model": m.get("model"), "component": comp, "device": pick["device"], "choice": pick["choice"],
                             "p50_ms": pick["p50_ms"], "speedup": pick["speedup"], "ci": pick["ci"],
                             "reason": pick["reason"], "file": f"{Path(path).parent.name}/{pick.get('file', '')}",
                             "alternatives": pick["alternatives"], "not_measured": pick.get("not_measured", [])})
    return rows


def e2e_audio(bench_csvs: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Per e2e assignment, its sidecar's fidelity record and its WAV file; plus the reference's."""
    records, wavs = {}, {}
    for csv in bench_csvs:
        meta = read_json(sidecar_path(csv))
        if meta.get("stage") != "e2e" or meta.get("status") != "measured":
            continue
        records[meta["assignment"]] = meta.get("fidelity", {})
        for name, reference in ((meta["assignment"], False), ("reference", True)):
            if Path(wav_beside(csv, reference)).is_file() and name not in wavs:
                wavs[name] = wav_beside(csv, reference)
    return records, wavs


def _players(wavs: dict[str, str], audio: dict[str, tuple]) -> list[dict[str, str]]:
    return [{"name": n, "src": "data:audio/wav;base64," + base64.b64encode(Path(wavs[n]).read_bytes()).decode()}
            for n in reference_first(wavs) if len(audio[n][0])]


def render(summary: pl.DataFrame, unavailable: list[dict], bench_csvs: list[str], markers: list[str],
           engines: list[str], out_html: str | Path, plot_dir: str | Path, config_hash: str,
           failures: list[dict] | None = None, manifests: list[str] | None = None, fp16: list[str] | None = None) -> dict:
    fidelity, wavs = e2e_audio(bench_csvs)
    audio = {name: read_wav(path) for name, path in wavs.items()}
    data = PlotData(summary=summary, bench=_bench_table(bench_csvs), fidelity=fidelity, audio=audio)
    images = {name: save_png(plot(data), Path(plot_dir) / f"{name}.png") for name, plot in PLOTS.items()}
    accuracy = accuracy_rows(markers)
    failures = failures or []
    context = {
        "created": now(), "config_hash": config_hash,
        "versions": versions("onnx", *RUNTIMES, "snakemake", "polars"),
        "models": sorted({r["model"] for r in accuracy + failures}),
        "components": sorted({r["component"] for r in accuracy + failures}),
        "backends": sorted(set(summary.filter(pl.col("component") != "e2e")["label"])),
        "registry": [{"name": b.name, "artifact": b.artifact, "precisions": ", ".join(b.precisions),
                      "description": b.description} for b in backends.REGISTRY.values()],
        "assignments": sorted(set(summary.filter(pl.col("component") == "e2e")["label"])),
        "devices": sorted(set(summary["device"])) if summary.height else [],
        "precisions": sorted({r["precision"] for r in accuracy}),
        "speedups": sorted(summary.filter(pl.col("speedup").is_not_null()).to_dicts(),
                           key=lambda r: (r["component"], point_order(r["point"]), r["label"])),
        "e2e_rows": sorted(summary.filter(pl.col("component") == "e2e").to_dicts(),
                           key=lambda r: (point_order(r["point"]), r["label"])),
        "chains": {r["label"]: r["chain"].replace(";", "; ") for r in summary.iter_rows(named=True)
                   if r["component"] == "e2e" and r.get("chain")},
        "ship": ship_rows(manifests or []),
        "players": _players(wavs, audio),
        "audio_point": next((r.get("audio_point") for r in fidelity.values() if r.get("audio_point")), None),
        "failed_fidelity": sorted({r["label"] for r in summary.iter_rows(named=True)
                                   if r["component"] == "e2e" and r.get("fidelity") == "failed"}),
        "peaks": {r["device"]: f"{r['peak_gflops']:.0f} GFLOP/s ({r['peak_source']})"
                  for r in summary.iter_rows(named=True) if r.get("peak_gflops") and r["component"] != "e2e"},
        "accuracy": accuracy, "engines": engine_rows(engines), "fp16": fp16_rows(fp16 or []), "unavailable": unavailable,
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
        [pl.col(c).cast(pl.Float64) for c in FLOATS])


def render_partial(results: str | Path, engine_dir: str | Path, config_hash: str, resamples: int = 2000) -> dict:
    """After a failed (--keep-going) run: the report from whatever exists, failures shown first."""
    layout = Layout(str(results), str(engine_dir))
    results = Path(results)
    csvs = sorted(str(p) for p in results.glob("bench/*/**/*.csv") if (Path(f"{p}.json")).is_file())
    flops = read_flops(sorted(map(str, Path(RESULTS).glob("onnx/*/*.onnx.json"))))
    summary, unavailable = summarize(csvs, resamples, flops)
    failures = [read_json(p) for p in sorted(Path(layout.failures).glob("*/*.json"))]
    return render(summary, unavailable, csvs, sorted(map(str, results.glob("validation/*/*.json"))),
                  sorted(map(str, Path(engine_dir).glob("*/*.engine.json"))), f"{layout.report_dir}/index.html",
                  layout.report_dir, config_hash, failures, sorted(map(str, results.glob("deploy/*/manifest.json"))),
                  sorted(map(str, Path(RESULTS).glob("onnx_fp16/*/*.onnx.json"))))


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--partial", metavar="RESULTS", help="render from whatever exists under RESULTS (after failures)")
    p.add_argument("--engine-dir", default="results/engines", help="with --partial: where engines are")
    p.add_argument("--summary")
    p.add_argument("--unavailable")
    p.add_argument("--bench", nargs="*", default=[])
    p.add_argument("--markers", nargs="*", default=[])
    p.add_argument("--engines", nargs="*", default=[], help="engine sidecar JSON files")
    p.add_argument("--bundles", nargs="*", default=[], help="deployment bundle directories (manifest.json inside)")
    p.add_argument("--fp16", nargs="*", default=[], help="fp16 graph sidecars")
    p.add_argument("--config-hash", required=True)
    p.add_argument("--out")
    p.add_argument("--plots", help="directory for the PNG plots")

    def run(a: argparse.Namespace) -> None:
        if a.partial:
            ctx = render_partial(a.partial, a.engine_dir, a.config_hash)
            log.warning("partial report: %d failed component stage(s) shown", len(ctx["failures"]))
            return
        ctx = render(read_summary(a.summary), read_json(a.unavailable), a.bench, a.markers, a.engines, a.out,
                     a.plots, a.config_hash, manifests=[f"{b}/manifest.json" for b in a.bundles], fp16=a.fp16)
        log.info("report: %d speedup rows, %d accuracy rows -> %s", len(ctx["speedups"]), len(ctx["accuracy"]), a.out)

    cli.run("report", run, p, argv)


if __name__ == "__main__":
    main()
