"""How well the gates predict: the shipped chain of a finished run on clips held out from every role.

Every choice of a run is made on its search files and judged once on its evaluation files. Those verdicts
say how the shipped chain does on files like the evaluation files; this measures it on files no role ever
saw (benchmarks/holdout/: other speakers, languages, singers; config/audio/corpus.csv lists them). Per
clip, the chain's gates applied to that clip alone; then the fraction of clips passing every gate, with a
Wilson 95 % interval, the worst clip per gate, and the run's own gate statistic over all the clips.

    .venv/bin/python benchmarks/holdout.py [--run .] [--model svc_demo] [--out holdout.json]

RUN is a finished run's directory (its results/ and config/config.yaml, else the repository's config).
Prints one line per clip and a JSON summary (written to --out too).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import yaml

from workflow_lib.analysis.gates import Statistic
from workflow_lib.chains import harness
from workflow_lib.chains.assignment import from_decision, open_roles
from workflow_lib.chains.spec import ChainSpec
from workflow_lib.core.files import read_json, write_json, write_npz
from workflow_lib.jobs.host import cpu_features, cpu_name
from workflow_lib.plan import config as plan
from workflow_lib.stages.chain_reference import reference_run

REPO = Path(__file__).resolve().parents[1]


def wilson(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at 0 or n passing, unlike the normal one."""
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def measure(run: Path, model: str, clips: list[str], threads: int) -> dict:
    config_path = run / "config/config.yaml"
    config = yaml.safe_load((config_path if config_path.is_file() else REPO / "config/config.yaml").read_text())
    specs, chains = plan.check(config, REPO / "config/schema.yaml")
    chain = chains[model]
    raw = dict(chain.raw)
    # every clip judged (evaluation); the reference run needs the other roles named, and they are not read here
    raw["inputs"] = {"calibration": clips[:1], "search": clips[:1], "evaluation": clips}
    spec = ChainSpec(model, chain.plugin, raw)
    components = {c: s for (m, c), s in specs.items() if m == model}
    arrays, _, _ = reference_run(components, spec, threads)
    decision = read_json(run / f"results/decisions/{model}.json")
    with tempfile.TemporaryDirectory() as tmp:
        write_npz(Path(tmp) / "reference.npz", arrays)
        ref = harness.Reference.load(Path(tmp) / "reference.npz")
    runners, _ = open_roles(spec, components, from_decision(decision, ["cpu"]), threads)
    files = ref.files("evaluation")
    records, _ = harness.score_files(spec, runners, ref, files)
    gates = spec.gates
    per_clip = []
    for r in records:
        alone = harness.verdict(spec.scorer, [r], gates)
        per_clip.append(
            {"file": r["file"], "status": alone["status"], "reason": alone["reason"], "scores": r["scores"]}
        )
        print(f"{r['file']}: {alone['status']} {alone['reason']}", file=sys.stderr)
    passed = sum(c["status"] == "passed" for c in per_clip)
    overall = harness.verdict(spec.scorer, records, gates, Statistic.from_settings(raw.get("gating")))
    worst = {key: {"file": g["file"], "value": g["worst"], "limit": g["limit"]} for key, g in overall["gates"].items()}
    shipped = {c: d["cpu"]["series"] for c, d in decision["components"].items()}
    return {
        "model": model,
        "shipped": shipped,
        "clips": len(per_clip),
        "passing": passed,
        "fraction": passed / len(per_clip) if per_clip else None,
        "wilson_95": wilson(passed, len(per_clip)),
        "worst": worst,
        "statistic": overall["statistic"],
        "statistic_verdict": {"status": overall["status"], "reason": overall["reason"]},
        "per_clip": per_clip,
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("."), help="a finished run's directory")
    p.add_argument("--model", default="svc_demo")
    p.add_argument("--clips", type=Path, default=REPO / "benchmarks/holdout", help="a folder of held-out clips")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    os.chdir(a.run)  # the decision's paths are relative to the run
    clips = sorted(str(f) for f in a.clips.glob("*.wav"))
    if not clips:
        sys.exit(f"no .wav clips under {a.clips}")
    summary = measure(Path("."), a.model, clips, a.threads)
    if a.out:
        write_json(a.out, summary)
    brief = {k: v for k, v in summary.items() if k != "per_clip"}
    print(json.dumps(brief, indent=2, default=str))


if __name__ == "__main__":
    main()
