"""Stage: decide what to ship. Per component and device, the fastest validated backend that
is really faster than PyTorch eager, written as a manifest beside the files to ship.

The rule: among backends whose artifact passed validation (marker, or inline parity for
torch.compile) and were measured at the decision point, pick the lowest median latency
whose speedup over PyTorch fp32 on the same device has a 95 % CI lying entirely above 1;
if none does, ship PyTorch eager. Every alternative is listed with its numbers and the
reason it lost, so the decision can be checked by a reader.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from . import cli
from .backends import registry as backends
from .errors import StageError
from .io import link_or_copy, now, read_json, sha256_file, sidecar_path, write_json
from .speedups import summarize

log = logging.getLogger(__name__)


def _device_kind(device: str) -> str:
    return device.split(":")[0]


def _validation(backend: str, precision: str, markers: dict[tuple[str, str, str], dict], component: str
                ) -> tuple[bool, str, str | None]:
    """(validated, how or why not, marker path)."""
    b = backends.get(backend)
    if b.checks_inline(precision):
        return True, "parity checked in the benchmark job", None
    if b.validation == "reference":
        return True, "reference", None
    m = markers.get((component, backend, precision))
    if m is None:
        return False, "no validation marker", None
    if m.get("status") != "passed":
        return False, f"validation {m.get('status')}: {m.get('reason', '')}".rstrip(": "), m["path"]
    return True, "validation passed", m["path"]


def select(csvs: list[str], markers: list[str], point: str = "opt", resamples: int = 2000) -> dict[str, Any]:
    """The manifest (without bundle paths) from component benchmark CSVs and validation markers."""
    table, unavailable = summarize(csvs, resamples)
    marker_by = {(m["component"], m["backend"], m["precision"]): {**m, "path": path}
                 for path, m in ((p, read_json(p)) for p in markers)}
    artifacts = {(m.get("component"), m.get("backend"), m.get("precision")): m.get("artifact")
                 for m in (read_json(sidecar_path(c)) for c in csvs)}
    table = table.filter(pl.col("component") != "e2e")
    if table.height and point not in set(table["point"]):
        raise StageError(f"deploy.point '{point}' was not benchmarked (bench.points has {sorted(set(table['point']))})")
    components: dict[str, dict[str, Any]] = {}
    for comp in sorted(set(table["component"]) if table.height else []):
        rows = table.filter((pl.col("component") == comp) & (pl.col("point") == point))
        components[comp] = {}
        for device in sorted(set(rows.filter(pl.col("backend") == backends.REFERENCE)["device"])):
            here = rows.filter(pl.col("device") == device)
            candidates = []
            for r in here.iter_rows(named=True):
                ok, why, marker = _validation(r["backend"], r["precision"], marker_by, comp)
                candidates.append({"choice": f"{r['backend']}.{r['precision']}", "backend": r["backend"],
                                   "precision": r["precision"], "label": r["label"], "p50_ms": r["p50_ms"],
                                   "speedup": r["speedup"], "ci": [r["ci_low"], r["ci_high"]], "validated": ok,
                                   "validation": why, "marker": marker,
                                   "source": artifacts.get((comp, r["backend"], r["precision"]))})
            components[comp][_device_kind(device)] = _decide(candidates, device)
            notes = [u for u in unavailable if u.get("component") == comp]
            components[comp][_device_kind(device)]["not_measured"] = [
                {"choice": f"{u['backend']}.{u['precision']}", "reason": u.get("reason")} for u in notes]
    return {"model": None if not table.height else table["model"][0], "created": now(), "point": point,
            "rule": "fastest validated backend whose speedup 95 % CI over PyTorch fp32 on the same device lies "
                    "above 1; otherwise PyTorch eager", "components": components}


def _decide(candidates: list[dict[str, Any]], device: str) -> dict[str, Any]:
    reference = next(c for c in candidates if c["backend"] == backends.REFERENCE and c["precision"] == "fp32")
    eligible = [c for c in candidates if c is not reference and c["validated"] and c["ci"][0] is not None
                and c["ci"][0] > 1.0]
    chosen = min(eligible, key=lambda c: c["p50_ms"]) if eligible else reference
    alternatives = []
    for c in sorted(candidates, key=lambda c: c["p50_ms"]):
        if c is chosen:
            continue
        if not c["validated"]:
            why = c["validation"]
        elif c is reference:
            why = "baseline (PyTorch eager)"
        elif c["ci"][0] is None or c["ci"][0] <= 1.0:
            why = f"speedup CI {c['ci'][0]:.2f}-{c['ci'][1]:.2f} does not lie above 1"
        else:
            why = f"slower than {chosen['choice']}"
        alternatives.append({**c, "why_not": why})
    reason = ("fastest validated backend with a speedup CI above 1" if chosen is not reference
              else "no validated backend is faster than PyTorch eager with a CI above 1")
    return {**chosen, "device": device, "reason": reason, "alternatives": alternatives}


def _files(source: str) -> list[Path]:
    """An artifact and the files that must travel with it (OpenVINO's .bin beside its .xml)."""
    path = Path(source)
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def bundle(manifest: dict[str, Any], specs: dict[str, dict[str, Any]], out_dir: str | Path) -> dict[str, Any]:
    """Write the manifest and hard-link (or copy) each chosen artifact beside it; atomic as a directory."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for comp, per_device in manifest["components"].items():
            for kind, pick in per_device.items():
                files = []
                for src in _files(pick["source"]):
                    rel = Path(kind) / f"{comp}.{pick['backend']}.{pick['precision']}{src.suffix}"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    link_or_copy(src, tmp / rel)
                    files.append({"file": str(rel), "sha256": sha256_file(tmp / rel), "bytes": (tmp / rel).stat().st_size})
                pick.update(file=files[0]["file"], files=files)
                if pick["marker"]:  # the evidence travels with the artifact
                    rel = Path(kind) / f"{comp}.{pick['backend']}.{pick['precision']}.validation.json"
                    shutil.copyfile(pick["marker"], tmp / rel)
                    pick["marker"] = str(rel)
                if backends.get(pick["backend"]).artifact == "checkpoint":  # a checkpoint needs its module to load
                    pick["module"] = {k: specs[comp].get(k) for k in ("class", "kwargs", "method")}
                pick["io"] = {"inputs": specs[comp]["inputs"], "outputs": specs[comp].get("outputs"),
                              "dims": specs[comp].get("dims")}
        write_json(tmp / "manifest.json", manifest)
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def main(argv: list[str] | None = None) -> None:
    import json

    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--out", required=True, help="the bundle directory (manifest.json inside)")

    def run(a: argparse.Namespace) -> None:
        manifest = select(a.csvs, a.markers, a.point, a.bootstrap)
        bundle(manifest, {c: json.loads(s) for c, s in a.specs.items()}, a.out)
        for comp, per_device in manifest["components"].items():
            for kind, pick in per_device.items():
                log.info("%s on %s: ship %s (%s)", comp, kind, pick["choice"], pick["reason"])

    cli.run("deploy", run, p, argv)


if __name__ == "__main__":
    main()
