"""Stage: the shipped chain converted live: at each configured chunk size, the evaluation files streamed
chunk by chunk (chains/streaming.py: each role on the frames it needs, its receptive field measured on
the shipped runners), with the latency a listener gets and what streaming costs in fidelity.

Per chunk size and file: compute per chunk (p50, p99, the first chunk excluded: it warms the runtimes
up), the listener's latency (chunk + lookahead + compute at p99), the chunks that came late (compute
longer than the chunk) and the real-time factor; the streamed audio against the same chain's offline
output (LSD, PESQ, STOI) and against PyTorch fp32's offline output (LSD). The smallest chunk that keeps
up on every file is what the bundle's README and the report quote. The decision's own files are run,
through the same code the bundle ships (deployment/runner.py streams with it too).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import numpy as np

from ..analysis.fidelity import lsd_db, perceptual
from ..analysis.results import runtime_versions
from ..chains import harness, streaming
from ..core import cli
from ..core.dsp import write_wav
from ..core.files import atomic_path, now, read_json
from ..core.host import cpu_name
from ..core.spec import spec_from_json

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")


def shipped_runners(specs, chain, chain_cfg, decision: dict[str, Any], threads: int, device: str = "cpu"):
    """The decided series of every component, opened as the benchmarks opened them, under the chain's roles."""
    roles = harness.parse_roles(chain, chain_cfg["roles"])
    preferences = {c: [f"{d[device]['series']}@{device}"] for c, d in decision["components"].items()}
    artifacts = {
        c: {f"{d[device]['series']}@{device}": {"artifact": d[device]["source"], "marker": d[device]["marker"]}}
        for c, d in decision["components"].items()
    }
    return harness.resolve(specs, roles, preferences, artifacts, threads)[0], roles


def measure(specs, chain_cfg, decision, reference: str, threads: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """The live record, and the first file streamed at the smallest chunk that keeps up (to listen to)."""
    chain = harness.load(chain_cfg)
    stream_cfg = chain_cfg["stream"]
    runners, roles = shipped_runners(specs, chain, chain_cfg, decision, threads)
    ref = harness.Reference.load(reference)
    ms = 1000 * chain.hop / chain.sample_rate
    rows, plans, heard = [], {}, {}
    final = chain.stages[-1]
    for chunk_ms in stream_cfg["chunks_ms"]:
        for i in ref.files("evaluation"):
            item = ref.items[i]
            extra = chain.conditioning(harness.role_inputs(specs, roles), [item])
            offline = harness.run_item(chain, runners, item, extra)[final].reshape(-1)
            plan = _plan(chain, runners, item, extra, chunk_ms, stream_cfg)
            s = streaming.Stream(chain, runners, extra, plan)
            streamed = s.run(item["audio"])
            n = min(streamed.size, offline.size)
            pytorch = ref.outputs[i][final].reshape(-1)
            row = {
                "chunk_ms": plan.chunk * ms,
                "asked_ms": chunk_ms,
                "file": ref.name(i),
                **streaming.stats(s.timings_ms, plan.chunk * ms, plan.lookahead * ms),
                "lsd_vs_offline_db": lsd_db(offline[:n], streamed[:n], chain.sample_rate),
                **{f"{k}_vs_offline": v for k, v in perceptual(offline[:n], streamed[:n], chain.sample_rate).items()},
                "lsd_vs_pytorch_db": lsd_db(pytorch[:n], streamed[:n], chain.sample_rate),
                "max_abs_vs_offline": float(np.max(np.abs(offline[:n] - streamed[:n]))),
            }
            rows.append(row)
            plans[f"{chunk_ms:g}"] = plan.describe()
            heard.setdefault(chunk_ms, streamed)
            log.info(
                "live %s, %.0f ms chunks: compute p50 %.1f p99 %.1f ms, latency %.0f ms, %d late; LSD vs offline %.2f",
                row["file"],
                row["chunk_ms"],
                row["compute_p50_ms"],
                row["compute_p99_ms"],
                row["latency_ms"],
                row["late_chunks"],
                row["lsd_vs_offline_db"],
            )
    summary = []
    for chunk_ms in stream_cfg["chunks_ms"]:
        mine = [r for r in rows if r["asked_ms"] == chunk_ms]
        summary.append(
            {
                "chunk_ms": mine[0]["chunk_ms"],
                "lookahead_ms": plans[f"{chunk_ms:g}"]["lookahead_ms"],
                "latency_ms": max(r["latency_ms"] for r in mine),
                "compute_p99_ms": max(r["compute_p99_ms"] for r in mine),
                "late_chunks": sum(r["late_chunks"] for r in mine),
                "keeps_up": all(r["keeps_up"] for r in mine),
                "rtf": max(r["rtf"] for r in mine),
                "lsd_vs_offline_db": max(r["lsd_vs_offline_db"] for r in mine),
                "lsd_vs_pytorch_db": max(r["lsd_vs_pytorch_db"] for r in mine),
            }
        )
    keeping = [s for s in summary if s["keeps_up"]]
    smallest = min(keeping, key=lambda s: s["chunk_ms"]) if keeping else None
    record = {
        "stage": "live",
        "created": now(),
        "assignment": {c: d["cpu"]["series"] for c, d in decision["components"].items()},
        "settings": stream_cfg,
        "plans": plans,
        "rows": rows,
        "chunks": summary,
        "smallest_realtime": smallest,
        "threads": threads,
        "cpu": cpu_name(),
        "versions": json.loads(runtime_versions()),
        "files": [ref.name(i) for i in ref.files("evaluation")],
    }
    listen_at = smallest["chunk_ms"] if smallest else None
    chosen = next((c for c in stream_cfg["chunks_ms"] if listen_at and abs(c - listen_at) < ms), None)
    return record, heard.get(chosen) if chosen is not None else None


def _plan(chain, runners, item, extra, chunk_ms: float, cfg: dict[str, Any]) -> streaming.Plan:
    return streaming.plan(
        chain, runners, item, extra, chunk_ms, cfg["lookahead_ms"], cfg.get("crossfade_ms"), cfg["window_ms"]
    )


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=json.loads, help="the model's chain settings (with `stream`)")
    p.add_argument("--decision", required=True, help="what the chain search decided (JSON)")
    p.add_argument("--reference", required=True, help="PyTorch fp32's run of the chain (.npz)")
    p.add_argument("--out", required=True, help="the live record (JSON)")
    p.add_argument("--wav", required=True, help="the first evaluation file streamed at the smallest real-time chunk")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        record, heard = measure(specs, a.chain, read_json(a.decision), a.reference, a.threads)
        chain = harness.load(a.chain)
        write_wav(a.wav, heard if heard is not None else np.zeros(0, np.float32), chain.sample_rate)
        with atomic_path(a.out, suffix=".json") as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        best = record["smallest_realtime"]
        log.info(
            "live: smallest chunk keeping up %s",
            f"{best['chunk_ms']:.0f} ms, latency {best['latency_ms']:.0f} ms" if best else "none",
        )

    cli.run("live", run, p, argv)


if __name__ == "__main__":
    main()
