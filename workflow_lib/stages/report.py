"""Stage: one self-contained HTML report (plots and audio embedded) for deciding what to ship.

Tables come from polars, plots from the plot registry (also written as PNG files for
`snakemake --report`), the page from a jinja2 template that places each plot under its
section with its caption. Skipped validations and series that could not run are shown with
their reasons, grouped by backend and reason, never hidden.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import mimetypes
from glob import glob
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape

from ..analysis.plots import PLOTS, PlotData, media_order, point_order, save_png
from ..analysis.results import RUNTIMES
from ..analysis.speedups import FLOATS, read_flops, score_columns, summarize
from ..chains.spec import ChainSpec
from ..core import variants
from ..core.files import atomic_path, now, read_json, versions
from ..core.paths import Paths, ReportInputs, manifest_path, sidecar_path
from ..jobs import cli
from ..runtimes import registry as backends

log = logging.getLogger(__name__)


def _bench_table(summary: pl.DataFrame) -> pl.DataFrame:
    """Each component series' latency per point, against the point's sequence length (the chain has its own plot)."""
    rows = summary.filter((pl.col("component") != "chain") & pl.col("dims").is_not_null())
    if not rows.height:
        return pl.DataFrame(schema={"component": pl.Utf8, "series": pl.Utf8})
    length = pl.col("dims").map_elements(_length, return_dtype=pl.Float64).alias("length")
    iterations = pl.col("iterations").cast(pl.Int64)
    return rows.select("model", "component", "series", "device", "point", length, "p50_ms", iterations)


def _length(dims_json: str) -> float:
    """The sequence length of a point: its `time` dim, else its largest symbolic dim."""
    dims = json.loads(dims_json)
    return float(dims.get("time", max(dims.values(), default=1)))


def accuracy_rows(markers: list[str]) -> list[dict[str, Any]]:
    """Per marker and point: the elementwise error (allclose gates), or the scores on the search files (fidelity
    gates: a marker decides candidacy, so it never reads the evaluation files)."""
    rows = []
    for path in markers:
        m = read_json(path)
        result = m.get("parity") or {}
        base = {k: m.get(k) for k in ("model", "component", "backend", "variant", "status", "gate")} | {
            "reason": m.get("reason", "")
        }
        if result.get("gate") == "fidelity":
            metrics = result.get("metrics") or {}
            rows.append(
                base
                | {
                    "point": f"{result.get('samples', 0)} {result.get('judged_on', 'search')} files",
                    "shapes": "-",
                    "scores": {k: v for k, v in metrics.items() if isinstance(v, float)},
                    "gates": (result.get("verdict") or {}).get("gates", {}),
                }
            )
            continue
        points = result.get("points", {})
        if not points:
            rows.append(base | {"point": "-", "shapes": "-", "max_abs": None, "max_rel": None})
        for which, p in points.items():
            outs = p.get("outputs", {})
            rows.append(
                base
                | {
                    "point": which,
                    "shapes": json.dumps(p["shapes"]),
                    "max_abs": max((o.get("max_abs", float("nan")) for o in outs.values()), default=None),
                    "max_rel": max((o.get("max_rel", float("nan")) for o in outs.values()), default=None),
                }
            )
    return rows


def fp16_rows(sidecars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fp16 graph: how much stayed fp32, set by hand (fp32_ops) or found by the search."""
    rows = []
    for m in sidecars:
        search = m.get("search") or {}
        rows.append(
            {
                "model": m["model"],
                "component": m["component"],
                "nodes_fp32": m.get("nodes_fp32"),
                "nodes": m.get("nodes"),
                "manual": ", ".join(m.get("fp32_ops", [])),
                "auto": ", ".join(search.get("auto_fp32_ops", [])),
                "search_seconds": search.get("seconds"),
                "trials": len(search.get("trials", [])),
            }
        )
    return rows


def int8_rows(sidecars: list[dict[str, Any]], calibrations: dict[str, dict]) -> list[dict[str, Any]]:
    """Per INT8 graph: the gate on the search files (everything here was chosen on them), what stayed float and
    why, the search and its budget, the paired decision, and what it was calibrated on."""
    rows = []
    for m in sidecars:
        search = m["search"]
        chosen = search["candidates"][search["chosen"]]
        cal = calibrations.get(f"{m['model']}/{m['component']}", {})
        rows.append(
            {
                "model": m["model"],
                "component": m["component"],
                "status": m["status"],
                "reason": m["reason"],
                "gate": ", ".join(f"{k} {v:g}" for k, v in sorted(m["gate"].items())),
                "gates": chosen["search"].get("gates", {}),
                "statistic": chosen["search"].get("statistic", ""),
                "float_blocks": chosen["float_blocks"],
                "float_by_block": chosen.get("float_by_block") or {b: None for b in chosen["float_blocks"]},
                "float_nodes": chosen["float_nodes"],
                "techniques": search.get("techniques", []),
                "quantized_nodes": chosen["quantized_nodes"],
                "p50_ms": chosen["p50_ms"],
                "all_int8_p50_ms": search["candidates"][0]["p50_ms"],
                "candidates": len(search["candidates"]),
                "seconds": search["seconds"],
                "stopped": search["stopped"],
                "cut_short": search.get("cut_short", False),
                "paired": search.get("paired"),
                "contributions": (search.get("contributions") or [])[:5],
                "calibration": cal.get("source", "?"),
                "representative": cal.get("representative"),
                "scheme": (m.get("splits") or {}).get("scheme"),
                "samples": m.get("samples"),
                "reduce_range": m["settings"]["reduce_range"],
                "activation": m["settings"]["activation"],
            }
        )
    return rows


def bf16_rows(sidecars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per bf16 graph: the op types kept f32 (configured, or found by the search), and how the search ran."""
    rows = []
    for m in sidecars:
        search = m.get("search") or {}
        rows.append(
            {
                "model": m["model"],
                "component": m["component"],
                "status": m["status"],
                "reason": m["reason"],
                "kept_f32": ", ".join(m["fp32_ops"]) or "nothing",
                "configured": ", ".join(m["configured_fp32_ops"]) or "–",
                "marked_nodes": len(m["keep_fp32_nodes"]),
                "trials": len(search.get("trials") or []),
                "seconds": search.get("seconds"),
                "judged_by": search.get("judged_by") or f"not searched: {search.get('not_searched')}",
                "layers": search.get("layers") or {},
                "gates": (search.get("verdict") or {}).get("gates", {}),
            }
        )
    return rows


def artifact_rows(sidecars: list[str]) -> list[dict[str, Any]]:
    """The TensorRT engines among the made artifacts (their own table: flavour, targets, cache)."""
    rows = []
    for path in sidecars:
        m = read_json(path)
        if m.get("stage") != "engine":
            continue
        rows.append(
            {
                "model": m["model"],
                "component": m["component"],
                "variant": m["variant"],
                "built": m.get("built", True),
                "reason": m.get("reason", ""),
                "size_mb": m["engine_bytes"] / 1e6,
                "build_seconds": m["build_seconds"],
                "cache": "hit (reused)" if m["cache"]["hit"] else "built",
                "flavour": f"{m['flavour']} {m['flavour_version']}",
                "targets": ", ".join(m["targets"]) if isinstance(m["targets"], list) else m["targets"],
            }
        )
    return rows


def ship_rows(manifests: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per model, component and device: what ships and the runners-up; the chain searches; the input
    files' roles per model."""
    rows, searches, inputs = [], [], []
    for path in manifests:
        m = read_json(path)
        judged = {  # a chain's components are judged on the evaluation files by its search, not one by one
            (comp, s.get("device")): v
            for s in m.get("search", [])
            for comp, v in (chain_verdict(s).get("components") or {}).items()
        }
        for comp, per_device in sorted(m["components"].items()):
            for _, chosen in sorted(per_device.items()):
                rows.append(
                    {
                        "model": m.get("model"),
                        "component": comp,
                        "device": chosen["device"],
                        "series": chosen["series"],
                        "p50_ms": chosen["p50_ms"],
                        "speedup": chosen["speedup"],
                        "ci": chosen["ci"],
                        "reason": chosen["reason"],
                        "file": f"{Path(path).parent.name}/{chosen.get('file', '')}",
                        "alternatives": chosen["alternatives"],
                        "not_measured": chosen.get("not_measured", []),
                        "paired": chosen.get("paired"),
                        "held_out": chosen.get("held_out") or judged.get((comp, chosen["device"])),
                        "fallback_from": chosen.get("fallback_from"),
                    }
                )
        for record in m.get("search", []):
            searches.append({"model": m.get("model"), **record})
        if m.get("inputs"):
            inputs.append({"model": m.get("model"), **m["inputs"]})
    return rows, searches, inputs


def chain_verdict(search: dict[str, Any]) -> dict[str, Any]:
    """What ships of a chain search, judged on the evaluation files: the winner's verdict, or that of the safe
    assignment it fell back to ({} where nothing was judged)."""
    return (search.get("fallback") or {}).get("evaluation") or search.get("evaluation") or {}


def shipped_verdicts(ship: list[dict[str, Any]], searches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ships, judged on the evaluation files: each chain search's verdict and each shipped component's own
    held-out verdict."""
    out = {}
    for s in searches:
        verdict = chain_verdict(s)
        if not verdict:
            continue
        out[f"{s['model']} chain"] = verdict
        for comp, v in (verdict.get("components") or {}).items():
            out[f"{s['model']}/{comp} {v.get('series', '')}"] = v
    for r in ship:
        if r.get("held_out"):
            out.setdefault(f"{r['model']}/{r['component']} {r['held_out'].get('series', '')}", r["held_out"])
    return out


def unavailable_groups(unavailable: list[dict]) -> list[dict[str, Any]]:
    """What did not run, grouped by backend (or assignment) and reason: one row per reason, not per component."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for u in unavailable:
        what = u.get("backend") or f"chain {u.get('assignment')}"
        g = groups.setdefault(
            (what, u.get("reason") or ""),
            {"what": what, "reason": u.get("reason") or "", "variants": set(), "components": set()},
        )
        if u.get("variant"):
            g["variants"].add(u["variant"])
        if u.get("component"):
            g["components"].add(u["component"])
    return [
        {**g, "variants": sorted(g["variants"]), "components": sorted(g["components"])}
        for _, g in sorted(groups.items())
    ]


def pruned(bench_csvs: list[str], summary: pl.DataFrame) -> dict[str, Any] | None:
    """The series timed at the decision point only, because they do not ship (bench.prune): which, and the points
    they were not timed at (those no benchmark of what ships measured either)."""
    timed = {tuple(r) for r in summary.select("model", "component", "backend", "variant", "point").iter_rows()}
    left = []
    for meta in (read_json(sidecar_path(c)) for c in bench_csvs):
        if meta.get("status") != "measured":  # not timed at all: listed with the reason elsewhere
            continue
        series = tuple(meta.get(k) for k in ("model", "component", "backend", "variant"))
        points = [p for p in (meta.get("deferred") or {}).get("points", []) if (*series, p) not in timed]
        if points:
            left.append((meta, points))
    if not left:
        return None
    return {
        "points": sorted({p for _, points in left for p in points}, key=point_order),
        "timed": sorted({p for m, _ in left for p in m["settings"]["points"]}, key=point_order),
        "series": {
            c: sorted(f"{m['backend']}.{m['variant']}" for m, _ in left if m["component"] == c)
            for c in sorted({m["component"] for m, _ in left})
        },
    }


def chain_records(bench_csvs: list[str]) -> dict[str, dict]:
    """Per chain assignment, its sidecar's fidelity record."""
    records = {}
    for csv in bench_csvs:
        meta = read_json(sidecar_path(csv))
        if meta.get("stage") == "chain_bench" and meta.get("status") == "measured":
            records[meta["assignment"]] = meta.get("fidelity", {})
    return records


def media_records(media: list[str], references: list[str]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The media a person judges, embedded (audio, images), in order: the input, PyTorch fp32's, each assignment's,
    then live; and their pictures, drawn by each model's chain plug-in."""
    plugins = {}
    for path in references:
        record = read_json(path)
        if record.get("chain"):
            plugins[record["model"]] = ChainSpec.from_json(record["chain"]).chain
    players, pictures = [], {}
    for path in media:
        data = Path(path).read_bytes()
        if not data:
            continue
        model, name = _media_name(Path(path))
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        players.append({"name": name, "mime": mime, "src": f"data:{mime};base64," + base64.b64encode(data).decode()})
        chain = plugins.get(model)
        picture = chain.picture(data) if chain is not None else None
        if picture is not None:
            pictures[name] = picture
    order = media_order([p["name"] for p in players])
    return sorted(players, key=lambda p: order.index(p["name"])), pictures


def _media_name(path: Path) -> tuple[str, str]:
    """(model, name) of a media file, from where Paths puts it: chain/<model>/media/<input|reference>,
    bench/<model>/chain/media/<assignment>, live/media/<model> (named `live`)."""
    if path.parent.parent.name == "live":
        return path.stem, "live"
    if path.parent.parent.name == "chain" and path.parent.parent.parent.parent.name == "bench":
        return path.parent.parent.parent.name, path.stem
    return path.parent.parent.name, path.stem


def chain_tables(chain: pl.DataFrame, records: dict[str, dict]) -> dict[str, Any]:
    """The chain rows by length, with a note where two assignments ran the same series (their latencies differ by
    timing noise between jobs: the paired comparison in the search is the one to trust); and per assignment the
    worst evaluation file of each gate."""
    rows = sorted(chain.to_dicts(), key=lambda r: (point_order(r["point"]), r["series"]))
    same: dict[str, list[str]] = {}
    for r in rows:
        same.setdefault(r.get("chain") or r["series"], [])
        if r["series"] not in same[r.get("chain") or r["series"]]:
            same[r.get("chain") or r["series"]].append(r["series"])
    for r in rows:
        twins = [s for s in same[r.get("chain") or r["series"]] if s != r["series"]]
        r["same_as"] = twins
    gates = []
    for name, rec in sorted(records.items()):
        verdict = rec.get("verdict") or {}
        for key, g in sorted((verdict.get("gates") or {}).items()):
            gates.append({"assignment": name, "gate": key, **g, "status": verdict.get("status")})
    metrics = next((rec.get("metrics") for rec in records.values() if rec.get("metrics")), {})
    captions = next((rec.get("captions") for rec in records.values() if rec.get("captions")), {})
    splits = next((rec.get("splits") for rec in records.values() if rec.get("splits")), {})
    return {"rows": rows, "gates": gates, "metrics": metrics, "captions": captions, "splits": splits}


def render(
    inputs: ReportInputs, out_html: str | Path, plot_dir: str | Path, config_hash: str, resamples: int = 2000
) -> dict:
    """The report from its inputs (every one optional: after a failed run, whatever exists)."""
    if inputs.summary:
        summary, unavailable = read_summary(inputs.summary), read_json(inputs.unavailable)
    else:  # a failed run: summarised here from the CSVs that exist
        summary, unavailable = summarize(list(inputs.bench), resamples, read_flops(list(inputs.graphs)))
    bench_csvs, markers, artifacts = list(inputs.bench), list(inputs.markers), list(inputs.artifacts)
    graphs, calibrations, live = list(inputs.graphs), list(inputs.calibrations), list(inputs.live)
    manifests = [str(manifest_path(b)) for b in inputs.bundles]
    host = read_json(inputs.host) if inputs.host else None
    failures = [read_json(p) for p in sorted(glob(f"{inputs.failures}/*/*.json"))] if inputs.failures else []
    fidelity = chain_records(bench_csvs)
    players, pictures = media_records(list(inputs.media), list(inputs.references))
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for meta in (read_json(p) for p in graphs):
        if meta.get("made") is not False:  # a variant that could not be made is listed with the failures
            by_stage.setdefault(meta.get("stage"), []).append(meta)
    int8_meta = {m["component"]: m for m in by_stage.get("quantize", [])}
    cal = {f"{m['model']}/{m['component']}": m for m in (read_json(p) for p in calibrations)}
    live_records = [{"model": Path(p).stem, **read_json(p)} for p in live]
    for r in live_records:  # what the streamed output was compared with, as the chain's scorer named it
        r["compared"] = sorted({k for c in r.get("chunks", []) for k in c if "_vs_" in k})
    ship, searches, roles = ship_rows(manifests)
    data = PlotData(
        summary=summary,
        bench=_bench_table(summary),
        fidelity=fidelity,
        pictures=pictures,
        int8=int8_meta,
        live=live_records,
        verdicts=shipped_verdicts(ship, searches),
    )
    images = {name: save_png(plot.draw(data), Path(plot_dir) / f"{name}.png") for name, plot in PLOTS.items()}
    plots: dict[str, list[dict[str, str]]] = {}
    for name, plot in PLOTS.items():
        plots.setdefault(plot.section, []).append({"name": name, "image": images[name], "caption": plot.caption})
    accuracy = accuracy_rows(markers)
    chain = summary.filter(pl.col("component") == "chain")
    components = summary.filter(pl.col("component") != "chain")
    context = {
        "created": now(),
        "config_hash": config_hash,
        "host": host or {},
        "versions": versions("onnx", *RUNTIMES, "snakemake", "polars"),
        "models": sorted({r["model"] for r in accuracy + failures} | {r["model"] for r in ship}),
        "components": sorted({r["component"] for r in accuracy + failures}),
        "series": sorted(set(components["series"])),
        "registry": [
            {
                "name": b.name,
                "artifact": b.artifact.name,
                "variants": ", ".join(b.variants),
                "description": b.description,
            }
            for b in backends.REGISTRY.values()
        ],
        "variant_table": [
            {
                "name": v.name,
                "precision": v.precision,
                "parent": v.parent or "checkpoint",
                "stage": v.stage,
                "gate": f"{v.gate} ({', '.join(f'{k} {x:g}' for k, x in v.default_gate.items())})",
                "consumers": ", ".join(b.name for b in backends.REGISTRY.values() if v.name in b.variants),
                "description": v.description,
            }
            for v in variants.VARIANTS.values()
        ],
        "assignments": sorted(set(chain["series"])),
        "devices": sorted(set(summary["device"])) if summary.height else [],
        "speedups": sorted(
            components.filter(pl.col("speedup").is_not_null()).to_dicts(),
            key=lambda r: (r["component"], point_order(r["point"]), r["series"]),
        ),
        "pruned": pruned(bench_csvs, summary),
        "chain": chain_tables(chain, fidelity),
        "comparison": comparison_rows(list(inputs.comparison)),
        "live": live_records,
        "ship": ship,
        "searches": searches,
        "inputs": roles,
        "players": players,
        "failed_fidelity": sorted({r["series"] for r in chain.iter_rows(named=True) if r.get("fidelity") == "failed"}),
        "peaks": {
            r["device"]: f"{r['peak_gflops']:.0f} GFLOP/s ({r['peak_source']})"
            for r in components.iter_rows(named=True)
            if r.get("peak_gflops")
        },
        "accuracy": accuracy,
        "engines": artifact_rows(artifacts),
        "fp16": fp16_rows(by_stage.get("fp16", [])),
        "int8": int8_rows(by_stage.get("quantize", []), cal),
        "bf16": bf16_rows(by_stage.get("bf16", [])),
        "unavailable": unavailable_groups(unavailable),
        "skipped": [r for r in accuracy if r["status"] == "skipped"],
        "failures": failures,
        "plots": plots,
        "counts": {
            s: len({(r["component"], r["backend"], r["variant"]) for r in accuracy if r["status"] == s})
            for s in ("passed", "skipped", "failed")
        },
    }
    env = Environment(loader=PackageLoader("workflow_lib", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = number
    html = env.get_template("report.html.j2").render(**context)
    with atomic_path(out_html, suffix=".html") as tmp:
        tmp.write_text(html)
    return context


def comparison_rows(paths: list[str]) -> dict[str, Any] | None:
    """This run against the baseline: what changed (every series that did not stay the same), and the counts."""
    if not paths:
        return None
    table = pl.read_csv(paths[0], infer_schema_length=0)
    meta = read_json(sidecar_path(paths[0]))
    rows = table.filter(pl.col("mark") != "unchanged").to_dicts()
    for r in rows:
        r.update(
            {k: float(r[k]) if r.get(k) not in (None, "") else None for k in ("old_p50_ms", "new_p50_ms", "ratio")}
        )
    return {k: meta.get(k) for k in ("baseline", "factor", "min_ms", "counts")} | {"rows": rows}


def number(v: Any, fmt: str | None = None) -> str:
    """A number as a reader takes it in at a glance: thousands grouped (1,300 ms, not 1.3e+03), three significant
    digits below that; a dash for nothing."""
    if v is None or isinstance(v, Undefined) or v != v:
        return "–"
    if fmt is not None:
        return fmt.format(v)
    if v in (float("inf"), float("-inf")):
        return "∞" if v > 0 else "-∞"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def read_summary(path: str | Path) -> pl.DataFrame:
    df = pl.read_csv(path, infer_schema_length=0)
    return df.with_columns(
        [pl.col(c).cast(pl.Float64) for c in [*FLOATS, *score_columns(df.columns)] if c in df.columns]
    )


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--partial", metavar="RESULTS", help="render from whatever exists under RESULTS (after failures)")
    p.add_argument("--engine-dir", default="results/engines", help="with --partial: where engines are")
    p.add_argument("--inputs", type=ReportInputs.from_json, help="what the report reads (JSON: core/paths.py)")
    p.add_argument("--config-hash", required=True)
    p.add_argument("--out", help="the page (default with --partial: the run's report path)")
    p.add_argument("--plots", help="directory for the PNG plots (default with --partial: the report's)")

    def run(a: argparse.Namespace) -> None:
        if a.partial:
            paths = Paths(a.partial, a.engine_dir)
            ctx = render(
                ReportInputs.discover(paths, backends.made_kinds()), paths.report, paths.report_dir, a.config_hash
            )
            log.warning("partial report: %d failed component stage(s) shown", len(ctx["failures"]))
            return
        ctx = render(a.inputs, a.out, a.plots, a.config_hash)
        log.info("report: %d speedup rows, %d accuracy rows -> %s", len(ctx["speedups"]), len(ctx["accuracy"]), a.out)

    cli.run("report", run, p, argv)


if __name__ == "__main__":
    main()
