"""Stage: the shipped chain converted live, by the clock: at each configured chunk size, evaluation files fed at
the audio clock through the chain's live session (a chain that streams: audio/streaming.py, keeping state, so
each chunk costs its own frames and the roles' contexts), into a simulated output device.

Per chunk size and file: the delay from a sample entering to it being heard (p50, p95, max: measured by the
clock, the first chunk included), the chunks that came late (the device ran dry), compute per chunk, and the
streamed output against the same chain run offline and against PyTorch fp32's offline output (the chain's
scorer: `compare`). The smallest chunk with no late chunk on any file is what the bundle's runner defaults to.
Then the lookahead/fidelity trade-off: at that chunk, each configured lookahead and the exact one (where the
output equals offline for a chain without a global role), against offline, run unpaced. The files are an even
spread of the evaluation role (`chain.stream.files`): each paced run lasts as long as its audio.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import numpy as np

from ..analysis import metrics
from ..analysis.results import runtime_versions
from ..chains import harness
from ..chains.assignment import from_decision, open_roles
from ..chains.spec import ChainSpec
from ..core.files import atomic_path, now, read_json, write_npz
from ..core.spec import spec_from_json
from ..core.splits import spread
from ..jobs import cli
from ..jobs.host import cpu_name

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")


def _compared(scorer, reference: np.ndarray, output: np.ndarray, against: str) -> dict[str, Any]:
    n = min(reference.size, output.size)
    values = scorer.compare(reference.reshape(-1)[:n], output.reshape(-1)[:n])
    return {f"{k}_vs_{against}": v for k, v in values.items() if isinstance(v, float)}


def _worst(rows: list[dict[str, Any]], key: str) -> float | None:
    metric = key.rsplit("_vs_", 1)[0]
    values = [r[key] for r in rows if r.get(key) is not None]
    return metrics.get(metric).worst(values) if values and metrics.known(metric) else None


def measure(specs, spec: ChainSpec, decision, reference: str, threads: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """The live record, and the first file streamed at the smallest chunk that keeps up (to listen to)."""
    chain, scorer, cfg = spec.chain, spec.scorer, spec.stream
    runners, _ = open_roles(spec, specs, from_decision(decision, ["cpu"]), threads)
    ref = harness.Reference.load(reference)
    files = spread(ref.files("evaluation"), cfg.get("files"))
    final = chain.stages[-1]
    offline, extras, rows, plans, heard = {}, {}, [], {}, {}
    for i in files:
        extras[i] = chain.conditioning(spec.role_inputs(specs), [ref.items[i]])
        offline[i] = harness.run_item(chain, runners, ref.items[i], extras[i])[final].reshape(-1)
    first = None  # the first session: every later one reuses what it measured of the runners (their contexts)
    for chunk_ms in cfg["chunks_ms"]:
        for i in files:
            item = ref.items[i]
            session = chain.live(runners, item, extras[i], {**cfg, "chunk_ms": chunk_ms}, like=first)
            first = first or session
            streamed, record = session.run(item, clock=True)
            plans[f"{chunk_ms:g}"] = session.plan.describe()
            rows.append(
                {
                    "asked_ms": chunk_ms,
                    "chunk_ms": session.plan.chunk * session.plan.frame_ms,
                    "lookahead_ms": session.plan.lookahead * session.plan.frame_ms,
                    "file": ref.name(i),
                    **record,
                    **_compared(scorer, offline[i], streamed, "offline"),
                    **_compared(scorer, ref.outputs[i][final], streamed, "pytorch"),
                }
            )
            heard.setdefault(chunk_ms, streamed)
            log.info(
                "live %s, %.0f ms chunks: delay p50 %.0f p95 %.0f max %.0f ms, %d late; compute p95 %.1f ms",
                rows[-1]["file"],
                rows[-1]["chunk_ms"],
                record["delay_p50_ms"],
                record["delay_p95_ms"],
                record["delay_max_ms"],
                record["late_chunks"],
                record["compute_p95_ms"],
            )
    compared = sorted({k for r in rows for k in r if "_vs_" in k})
    summary = []
    for chunk_ms in cfg["chunks_ms"]:
        mine = [r for r in rows if r["asked_ms"] == chunk_ms]
        summary.append(
            {
                "chunk_ms": mine[0]["chunk_ms"],
                "lookahead_ms": mine[0]["lookahead_ms"],
                **{
                    k: max(r[k] for r in mine)
                    for k in ("delay_p50_ms", "delay_p95_ms", "delay_max_ms", "buffer_ms", "latency_ms")
                },
                **{k: max(r[k] for r in mine) for k in ("compute_p50_ms", "compute_p95_ms", "explained_ms", "rtf")},
                "late_chunks": sum(r["late_chunks"] for r in mine),
                "keeps_up": all(r["keeps_up"] for r in mine),
                **{k: _worst(mine, k) for k in compared},
            }
        )
    keeping = [s for s in summary if s["keeps_up"]]
    smallest = min(keeping, key=lambda s: s["chunk_ms"]) if keeping else None
    at = next((c for c, s in zip(cfg["chunks_ms"], summary, strict=True) if s is smallest), cfg["chunks_ms"][0])
    tradeoff = []
    exact = plans[f"{at:g}"]["exact_lookahead_ms"]
    for lookahead_ms in sorted({*cfg.get("lookaheads_ms", []), cfg["lookahead_ms"], exact}):
        per_file = []
        for i in files:
            if lookahead_ms == cfg["lookahead_ms"]:  # streamed by the clock above, with these settings: the same output
                paced = next(r for r in rows if r["asked_ms"] == at and r["file"] == ref.name(i))
                per_file.append({k: v for k, v in paced.items() if k.endswith("_vs_offline")})
                continue
            settings = {**cfg, "chunk_ms": at, "lookahead_ms": lookahead_ms}
            session = chain.live(runners, ref.items[i], extras[i], settings, like=first)
            streamed, _ = session.run(ref.items[i])
            per_file.append(_compared(scorer, offline[i], streamed, "offline"))
        tradeoff.append(
            {
                "lookahead_ms": lookahead_ms,
                "exact": lookahead_ms == exact,
                **{k: _worst(per_file, k) for k in per_file[0]},
            }
        )
    record = {
        "stage": "live",
        "created": now(),
        "assignment": {c: d["cpu"]["series"] for c, d in decision["components"].items()},
        "settings": cfg,
        "plans": plans,
        "rows": rows,
        "chunks": summary,
        "smallest_realtime": smallest,
        "tradeoff": {"chunk_ms": at, "rows": tradeoff},
        "threads": threads,
        "cpu": cpu_name(),
        "versions": json.loads(runtime_versions()),
        "files": [ref.name(i) for i in files],
    }
    return record, heard.get(at) if smallest else None


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument(
        "--chain", required=True, type=ChainSpec.from_json, help="the model's chain spec (JSON, with stream)"
    )
    p.add_argument("--decision", required=True, help="what the chain search decided (JSON)")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--out", required=True, help="the live record (JSON)")
    p.add_argument("--listen", required=True, help="the first file streamed (.npz), for its media")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        record, heard = measure(specs, a.chain, read_json(a.decision), a.reference, a.threads)
        final = a.chain.chain.stages[-1]
        write_npz(a.listen, {f"stream/{final}": heard} if heard is not None else {})
        with atomic_path(a.out, suffix=".json") as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        best = record["smallest_realtime"]
        log.info(
            "live: smallest chunk keeping up %s",
            f"{best['chunk_ms']:.0f} ms, delay p95 {best['delay_p95_ms']:.0f} ms" if best else "none",
        )

    cli.run("live", run, p, argv)


if __name__ == "__main__":
    main()
