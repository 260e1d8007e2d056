"""Stage: PyTorch fp32's run of a model's chain on every file it is judged on, done once per model: the search
files the chain search judges on (`chain.search.files` of them) and the evaluation files.

It is what every assignment is scored against (the chain benchmarks and the chain search read
it instead of running PyTorch each): the conditioning every assignment shares (drawn once by
the plug-in: seeded noise, a speaker), per file of the search and evaluation roles its item and
every stage's output (and the side outputs the plug-in scores), and the timing input at each
`chain.seconds` length. Files come from `chain.inputs` (resampled and downmixed by an audio
plug-in); with none, the plug-in's synthetic item stands in and the sidecar says so. Beside it, the first
evaluation file and PyTorch fp32's outputs on it, from which the media stage makes what a person judges.

A call whose inputs a component's sample set already answered (its PyTorch fp32 outputs on the same bytes)
is read from there, not run again: a plug-in that feeds a role the input file's own features (the demo does)
finds that role's whole side run there, and every role upstream finds what the sample sets captured.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import parity
from ..chains import harness
from ..chains.assignment import renamed
from ..chains.spec import ChainSpec
from ..core.files import now, sha256_file, versions, write_json, write_npz
from ..core.paths import sidecar_path
from ..core.spec import ComponentSpec, spec_from_json
from ..jobs import cli

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what this stage reads of each component


def reference_run(
    specs: dict[str, ComponentSpec], spec: ChainSpec, threads: int = 0, stored: dict[str, str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """The arrays of the reference .npz, its sidecar record, and the first evaluation file's item and PyTorch's
    outputs on it (what the media a person judges are made from: stages/media.py). `stored`: component -> its
    sample set, whose PyTorch outputs answer the calls on the same inputs."""
    chain = spec.chain
    pytorch = {
        b.component: parity.reference(specs[b.component], [(stored or {}).get(b.component)], threads)
        for b in spec.roles.values()
    }
    runners = {role: renamed(pytorch[b.component], b.names) for role, b in spec.roles.items()}
    splits = spec.splits
    items = harness.read_items(chain, splits)
    judged = harness.judged_files(splits, spec.search.get("files"))
    timing = {f"{s:g}s": chain.timing_input([items[i] for i in judged], s) for s in spec.seconds}
    extra = chain.conditioning(spec.role_inputs(specs), [*items, *timing.values()])
    arrays: dict[str, np.ndarray] = {f"extra/{k}": v for k, v in extra.items()}
    outputs = {}
    for i in judged:
        arrays.update({f"file/{i}/item/{k}": v for k, v in items[i].items()})
        outputs[i] = harness.run_item(chain, runners, items[i], extra)
        arrays.update({f"file/{i}/out/{k}": v for k, v in outputs[i].items()})
    for point, item in timing.items():
        arrays.update({f"timing/{point}/{k}": v for k, v in item.items()})
    arrays[harness.META] = harness.meta_array(splits)
    first = next(i for i in judged if i in (splits.of("evaluation") or judged))
    listen = {
        **{f"input/{k}": v for k, v in items[first].items()},
        **{f"reference/{k}": v for k, v in outputs[first].items()},
    }
    hashes = {f: sha256_file(f) for f in splits.files}
    record = {
        "stage": "chain_reference",
        "model": spec.model,
        "plugin": spec.plugin,
        "chain": spec.slice("settings"),  # what the report asks the plug-in to draw its media with
        "created": now(),
        "splits": splits.to_json(),
        "inputs": harness.describe_inputs(splits, hashes),
        "synthetic": not splits.files,
        "judged": [harness.file_name(splits, i) for i in judged],
        "points": list(timing),
        "versions": versions("torch", "numpy", "soxr", "soundfile"),
        "listen_file": harness.file_name(splits, first),
        "pytorch_calls": {c: {"stored": r.answered, "run": r.computed} for c, r in pytorch.items()},
    }
    return arrays, record, listen


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=ChainSpec.from_json, help="the model's chain spec (JSON)")
    p.add_argument("--out", required=True, help="the reference .npz")
    p.add_argument("--listen", required=True, help="the first evaluation file and PyTorch's outputs on it (.npz)")
    p.add_argument("--stored", type=json.loads, default={}, help="component -> its sample set (JSON)")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        arrays, record, listen = reference_run(specs, a.chain, a.threads, a.stored)
        write_npz(a.listen, listen)
        write_npz(a.out, arrays)
        record.update(sha256=sha256_file(a.out), bytes=Path(a.out).stat().st_size, listen=a.listen)
        write_json(sidecar_path(a.out), record)
        log.info("chain reference: %d file(s) judged, timing points %s", len(record["judged"]), record["points"])
        log.info("PyTorch calls read from the sample sets / run: %s", record["pytorch_calls"])

    cli.run("chain_reference", run, p, argv)


if __name__ == "__main__":
    main()
