"""What every chain stage does with a plug-in: run it on files, score it per file against PyTorch fp32's run,
judge the gates on the worst file, and time it.

The reference (`Reference`) is PyTorch fp32's run of the chain on every file it is judged on,
with the conditioning every assignment shares and the timing inputs: the chain stages read it
instead of running PyTorch again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import metrics
from ..analysis.gates import WORST, Statistic, judge
from ..core.errors import Unavailable
from ..core.files import read_npz
from ..core.spec import spec_from_json
from ..core.splits import SPLITS, Splits, spread
from ..jobs.timing import Policy, measure
from .assignment import open_roles, preferences_from_json
from .protocol import Chain, Infer, Item, Outputs, Scorer
from .spec import ChainSpec

META = "meta.json"  # the roles of the files, as a byte array inside the reference .npz


def file_name(splits: Splits, index: int) -> str:
    return Path(splits.files[index]).name if splits.files else "synthetic"


def meta_array(splits: Splits) -> np.ndarray:
    return np.frombuffer(json.dumps({"splits": splits.to_json()}, sort_keys=True).encode(), dtype=np.uint8)


def read_items(chain: Chain, splits: Splits) -> list[Item]:
    """Every file as an item, in the splits' order; the plug-in's synthetic item when there is none."""
    return [chain.read(f) for f in splits.files] if splits.files else [chain.synthetic()]


def judged_files(splits: Splits, search_files: int | None = None) -> list[int]:
    """The files the reference covers: the search files the chain search judges on (an even spread of
    `search_files` of them; None: all) and the evaluation files; with no files, the synthetic item."""
    if not splits.files:
        return [0]
    return sorted(set(spread(splits.of("search"), search_files)) | set(splits.of("evaluation")))


@dataclass
class Reference:
    """PyTorch fp32's run (stages/chain_reference.py): per judged file its item and outputs; the
    conditioning; the timing input per length; the roles of the files."""

    items: dict[int, Item]
    outputs: dict[int, Outputs]
    extra: dict[str, np.ndarray]
    timing: dict[str, Item]
    splits: Splits

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        a = read_npz(path)
        items: dict[int, Item] = {}
        outputs: dict[int, Outputs] = {}
        timing: dict[str, Item] = {}
        extra: dict[str, np.ndarray] = {}
        for key, value in a.items():
            head, _, rest = key.partition("/")
            if head == "file":
                index, kind, name = rest.split("/", 2)
                (items if kind == "item" else outputs).setdefault(int(index), {})[name] = value
            elif head == "timing":
                point, _, name = rest.partition("/")
                timing.setdefault(point, {})[name] = value
            elif head == "extra":
                extra[rest] = value
        meta = json.loads(a[META].tobytes())
        return cls(
            items,
            outputs,
            extra,
            dict(sorted(timing.items(), key=lambda kv: float(kv[0].rstrip("s")))),
            Splits.from_json(meta["splits"]),
        )

    def files(self, split: str) -> list[int]:
        """The judged files of a role."""
        return [i for i in self.splits.of(split) if i in self.items]

    def name(self, index: int) -> str:
        return file_name(self.splits, index)


def run_item(chain: Chain, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray]) -> Outputs:
    """The chain's outputs on one item, with the side outputs it scores."""
    outputs, _ = chain.forward(runners, item, extra)
    return {**outputs, **chain.side_outputs(runners, item, extra)}


def score_files(
    spec: ChainSpec, runners: Mapping[str, Infer], ref: Reference, files: list[int]
) -> tuple[list[dict[str, Any]], dict[int, Outputs]]:
    """Per file: its scores per group and its stage errors against PyTorch fp32's run; and the outputs."""
    chain, scorer = spec.chain, spec.scorer
    records, outputs = [], {}
    for i in files:
        out = run_item(chain, runners, ref.items[i], ref.extra)
        expected = ref.outputs[i]
        final = chain.stages[-1]
        if out[final].shape != expected[final].shape:
            raise Unavailable(
                f"the chain returned {final} of shape {list(out[final].shape)} where PyTorch gives "
                f"{list(expected[final].shape)} ({ref.name(i)})"
            )
        records.append(
            {
                "file": ref.name(i),
                "index": i,
                "scores": scorer.score(expected, out, ref.items[i]),
                "stages": scorer.stage_errors(expected, out),
            }
        )
        outputs[i] = out
    return records, outputs


def reference_records(spec: ChainSpec, ref: Reference, files: list[int]) -> tuple[list[dict[str, Any]], dict]:
    """The records `score_files` gives for an assignment that is PyTorch fp32 throughout: the reference run is
    that assignment's run (the chain is not run again to be compared with itself), scored against itself."""
    scorer, records = spec.scorer, []
    for i in files:
        expected = ref.outputs[i]
        records.append(
            {
                "file": ref.name(i),
                "index": i,
                "scores": scorer.score(expected, expected, ref.items[i]),
                "stages": scorer.stage_errors(expected, expected),
            }
        )
    return records, {i: ref.outputs[i] for i in files}


def verdict(
    scorer: Scorer,
    records: list[dict[str, Any]],
    gates: Mapping[str, Mapping[str, float]],
    statistic: Statistic = WORST,
) -> dict[str, Any]:
    """Every gate of every group applied to the per-file scores by `statistic` (analysis/gates.py)."""
    per_group = {
        group: judge(
            [r["scores"].get(group, {}) for r in records],
            dict(gates.get(group) or {}),
            [r["file"] for r in records],
            statistic,
        )
        for group in scorer.metrics
    }
    failed = sorted(g for g, v in per_group.items() if v["status"] == "failed")
    return {
        "status": "failed" if failed else "passed",
        "reason": "; ".join(f"{g}: {per_group[g]['reason']}" for g in failed),
        "failed": failed,
        "groups": per_group,
        "gates": {f"{g}.{k}": v for g, rec in per_group.items() for k, v in rec["gates"].items()},
        "files": [r["file"] for r in records],
        "statistic": statistic.describe(),
    }


def worst_scores(scorer: Scorer, records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per `<group>_<metric>`, the worst file's value (the metric's own direction: analysis/metrics.py)."""
    out: dict[str, float | None] = {}
    for group, names in scorer.metrics.items():
        for name in names:
            values = [r["scores"].get(group, {}).get(name) for r in records]
            values = [v for v in values if v is not None]
            out[f"{group}_{name}"] = metrics.get(name).worst(values) if values else None
    return out


def worst_stages(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage, the lowest SNR over the files: what the culprit search reads."""
    stages: dict[str, dict[str, float]] = {}
    for r in records:
        for s, m in r["stages"].items():
            if s not in stages or m["snr_db"] < stages[s]["snr_db"]:
                stages[s] = m
    return stages


def time_chain(
    chain: Chain, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], policy: Policy
) -> tuple[list[float], dict[str, Any]]:
    """Latency of the whole chain (its features included) on one item, timed like the components."""
    return measure(lambda: chain.forward(runners, item, extra), lambda: None, policy)


def describe_inputs(splits: Splits, hashes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The roles as the manifest and the report record them: per role its files with their sha256."""
    record = splits.to_json()
    record["roles"] = {
        s: [{"file": splits.files[i], "sha256": (hashes or {}).get(splits.files[i])} for i in splits.of(s)]
        for s in SPLITS
    }
    return record


def chain_step(
    chain: str, specs: dict[str, str], choices: dict[str, Any], reference: str, point: str, threads: int
) -> tuple[Callable[[], Any], Callable[[], None]]:
    """One assignment's chain, warm, on the timing input of `point`, as (step, sync): what paired timing runs
    (analysis/pairing.py). Arguments as JSON-able values: the chain spec, component specs and choices."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    spec = ChainSpec.from_json(chain)
    components = {c: spec_from_json(s) for c, s in specs.items()}
    ref = Reference.load(reference)
    runners, _ = open_roles(spec, components, preferences_from_json(choices), threads)
    item = ref.timing[point]
    return lambda: spec.chain.forward(runners, item, ref.extra), lambda: None
