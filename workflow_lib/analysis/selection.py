"""What could ship, per component and device, and the bundle that ships it.

`rank` reads a model's component benchmarks and validation markers and lists, per component
and device, the candidates that may ship: validated (a passed marker, inline parity, or the
reference itself) and really faster than PyTorch eager (the 95 % bootstrap CI of the speedup
lies above 1), fastest first; every other series is listed with the reason it may not ship.
The deployment stage times the two fastest candidates of each component against each other;
a model with a chain has its candidates tried together by the chain search instead; the bundle
stage then writes what was decided, with the files, as the folder you ship.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ..core import variants
from ..core.errors import StageError
from ..core.files import read_json
from ..core.paths import sidecar_path
from ..runtimes import registry as backends
from .speedups import summarize

RULE = (
    "fastest validated backend whose speedup 95 % CI over PyTorch fp32 on the same device lies above 1; "
    "otherwise PyTorch eager"
)


def device_kind(device: str) -> str:
    return device.split(":")[0]


def _validation(
    backend: str, variant: str, markers: dict[tuple[str, str, str], dict], component: str
) -> tuple[bool, str, str | None]:
    """(validated, how or why not, marker path)."""
    b = backends.get(backend)
    if b.checks_inline(variant):
        return True, "parity checked in the benchmark job", None
    if b.validation == "reference":
        return True, "reference", None
    m = markers.get((component, backend, variant))
    if m is None:
        return False, "no validation marker", None
    if m.get("status") != "passed":
        return False, f"validation {m.get('status')}: {m.get('reason', '')}".rstrip(": "), m["path"]
    return True, "validation passed", m["path"]


def rank(csvs: list[str], markers: list[str], point: str = "opt", resamples: int = 2000) -> dict[str, Any]:
    """Per component and device kind: `candidates` (may ship, fastest first), `reference`, `others` (why not)."""
    table, unavailable = summarize(csvs, resamples)
    marker_by = {
        (m["component"], m["backend"], m["variant"]): {**m, "path": path}
        for path, m in ((p, read_json(p)) for p in markers)
    }
    sources = {
        (m.get("component"), m.get("backend"), m.get("variant")): m.get("artifact")
        for m in (read_json(sidecar_path(c)) for c in csvs)
    }
    table = table.filter(pl.col("component") != "chain")
    if table.height and point not in set(table["point"]):
        raise StageError(f"deploy.point '{point}' was not benchmarked (bench.points has {sorted(set(table['point']))})")
    ranked: dict[str, dict[str, Any]] = {}
    for comp in sorted(set(table["component"]) if table.height else []):
        rows = table.filter((pl.col("component") == comp) & (pl.col("point") == point))
        ranked[comp] = {}
        for device in sorted(set(rows.filter(pl.col("backend") == backends.REFERENCE)["device"])):
            entries = []
            for r in rows.filter(pl.col("device") == device).iter_rows(named=True):
                ok, why, marker = _validation(r["backend"], r["variant"], marker_by, comp)
                source = sources.get((comp, r["backend"], r["variant"]))
                entries.append(
                    {
                        "series": f"{r['backend']}.{r['variant']}",
                        "backend": r["backend"],
                        "variant": r["variant"],
                        "precision": variants.get(r["variant"]).precision,
                        "quantized_nodes": quantized_nodes(source),
                        "p50_ms": r["p50_ms"],
                        "speedup": r["speedup"],
                        "ci": [r["ci_low"], r["ci_high"]],
                        "validated": ok,
                        "validation": why,
                        "marker": marker,
                        "source": source,
                        "device": device,
                    }
                )
            ranked[comp][device_kind(device)] = _split(entries)
            ranked[comp][device_kind(device)]["not_measured"] = [
                {"series": f"{u['backend']}.{u['variant']}", "reason": u.get("reason")}
                | ({"error": u["error"]} if u.get("error") else {})
                for u in unavailable
                if u.get("component") == comp
            ]
    return {"model": table["model"][0] if table.height else None, "point": point, "components": ranked}


def failures(ranked: dict[str, Any]) -> list[dict[str, Any]]:
    """The series not measured because of an error (not a gate, not this host): per component and series, the
    stage that failed, why, and its log. What a manifest names under `failures`."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for comp, per_device in ranked["components"].items():
        for entry in per_device.values():
            for u in entry["not_measured"]:
                if u.get("error"):
                    seen.setdefault((comp, u["series"]), {"component": comp, "series": u["series"], **u["error"]})
    return [seen[k] for k in sorted(seen)]


def _split(entries: list[dict[str, Any]]) -> dict[str, Any]:
    reference = next(c for c in entries if variants.is_reference(c["backend"], c["variant"]))
    candidates, others = [], []
    for c in sorted(entries, key=lambda c: c["p50_ms"]):
        if c is reference:
            continue
        if not c["validated"]:
            others.append({**c, "why_not": c["validation"]})
        elif c["ci"][0] is None or c["ci"][0] <= 1.0:
            low, high = c["ci"]
            others.append(
                {
                    **c,
                    "why_not": "speedup CI "
                    + (f"{low:.2f}-{high:.2f} does not lie above 1" if low is not None else "unknown"),
                }
            )
        else:
            candidates.append(c)
    return {"candidates": candidates, "reference": reference, "others": others}


def pick(entry: dict[str, Any], chosen: dict[str, Any], reason: str) -> dict[str, Any]:
    """The manifest's record for one component and device: the choice, why, and every alternative with why not."""
    alternatives = [
        {
            **c,
            "why_not": f"slower than {chosen['series']}"
            if c["p50_ms"] >= chosen["p50_ms"]
            else "not chosen (see the search)",
        }
        for c in entry["candidates"]
        if c is not chosen
    ]
    if entry["reference"] is not chosen:
        alternatives.append({**entry["reference"], "why_not": "baseline (PyTorch eager)"})
    alternatives += [c for c in entry["others"] if c["series"] != chosen["series"]]
    return {
        **{k: v for k, v in chosen.items() if k != "why_not"},
        "reason": reason,
        "alternatives": sorted(alternatives, key=lambda c: c["p50_ms"]),
        "not_measured": entry["not_measured"],
    }


# Most faithful first: what a component too small to time in its chain gets (stages/chain_search.py).
FAITHFUL = ("fp32", "fp16", "bf16", "int8")
# Cheapest arithmetic first: the order of the series its chain's timing cannot tell apart (stages/chain_search.py).
CHEAPEST = tuple(reversed(FAITHFUL))


def faithful_key(e: dict[str, Any]) -> tuple:
    """Closest to PyTorch fp32's arithmetic first, by a key no timing enters: fp32, then fp16, bf16, INT8; fewer
    quantized nodes; a runtime before PyTorch eager; then the series' name."""
    return (FAITHFUL.index(e["precision"]), e["quantized_nodes"] or 0, e["backend"] == backends.REFERENCE, e["series"])


def cheapest_key(e: dict[str, Any]) -> tuple:
    """The arithmetic usually fastest first, by a key no timing enters: INT8, then bf16, fp16, fp32; more quantized
    nodes; a runtime before PyTorch eager; then the series' name."""
    return (
        CHEAPEST.index(e["precision"]),
        -(e["quantized_nodes"] or 0),
        e["backend"] == backends.REFERENCE,
        e["series"],
    )


def most_faithful(entry: dict[str, Any]) -> dict[str, Any]:
    """The most faithful validated series of a component (PyTorch fp32 where none is validated)."""
    usable = [e for e in [*entry["candidates"], *entry["others"]] if e["validated"]]
    return min(usable, key=faithful_key, default=entry["reference"])


def quantized_nodes(source: str | None) -> int:
    """How many nodes of a series' graph run quantized (a tie between two candidates goes to fewer): from the
    sidecar of the graph it reads, or of the graph its IR or engine was made from; 0 for none."""
    seen = 0
    while source and sidecar_path(source).is_file() and seen < 3:
        meta = read_json(sidecar_path(source))
        if "quantized_nodes" in meta:
            return int(meta["quantized_nodes"])
        source, seen = meta.get("input"), seen + 1
    return 0
