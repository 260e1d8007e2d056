"""Stage: PyTorch fp32's run of a model's chain on every file it is judged on, done once per model.

It is what every assignment is scored against (the chain benchmarks and the chain search read
it instead of running PyTorch each): the conditioning every assignment shares (drawn once by
the plug-in: seeded noise, a speaker), per file of the search and evaluation roles its item and
every stage's output (and the side outputs the plug-in scores), and the timing input at each
`chain.seconds` length. Files come from `chain.inputs` (resampled and downmixed by an audio
plug-in); with none, the plug-in's synthetic item stands in and the sidecar says so. Two WAVs
to listen to: the first evaluation file, and what PyTorch fp32 makes of it (the plug-in says
which output a listener hears).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..chains import harness
from ..core import cli
from ..core.dsp import write_wav
from ..core.files import now, sha256_file, versions, write_json, write_npz
from ..core.paths import sidecar_path
from ..core.spec import ComponentSpec, spec_from_json
from ..runtimes import torch_eager

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what this stage reads of each component


def reference_run(
    specs: dict[str, ComponentSpec], chain_cfg: dict[str, Any], threads: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """The arrays of the reference .npz, its sidecar record, and the input and PyTorch's output to listen to."""
    chain = harness.load(chain_cfg)
    roles = harness.parse_roles(chain, chain_cfg["roles"])
    runners = {
        role: harness.renamed(torch_eager.open_runner(specs[comp], "fp32", None, threads, "cpu"), names)
        for role, (comp, names) in roles.items()
    }
    splits = harness.splits_of(chain_cfg)
    items = harness.read_items(chain, splits)
    judged = harness.judged_files(splits)
    seconds = list(chain_cfg.get("seconds") or [])
    timing = {f"{s:g}s": chain.timing_input([items[i] for i in judged], s) for s in seconds}
    extra = chain.conditioning(harness.role_inputs(specs, roles), [*items, *timing.values()])
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
    heard = {
        "input": chain.listen_input(items[first]),
        "reference": chain.listen(outputs[first]),
        "file": harness.file_name(splits, first),
    }
    hashes = {f: sha256_file(f) for f in splits.files}
    record = {
        "stage": "chain_reference",
        "model": next(iter(specs.values())).model,
        "plugin": chain_cfg["plugin"],
        "created": now(),
        "splits": splits.to_json(),
        "inputs": harness.describe_inputs(splits, hashes),
        "synthetic": not splits.files,
        "judged": [harness.file_name(splits, i) for i in judged],
        "points": list(timing),
        "versions": versions("torch", "numpy", "soxr", "soundfile"),
    }
    return arrays, record, heard


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--chain", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--out", required=True, help="the reference .npz")
    p.add_argument("--input-wav", required=True, help="the first evaluation file, to listen to")
    p.add_argument("--reference-wav", required=True, help="what PyTorch fp32 makes of it")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        arrays, record, heard = reference_run(specs, a.chain, a.threads)
        for which, path in (("input", a.input_wav), ("reference", a.reference_wav)):
            audio, sr = heard[which] or (np.zeros(0, np.float32), 8000)  # an empty WAV: nothing to hear
            write_wav(path, audio, sr)
        write_npz(a.out, arrays)
        record.update(
            sha256=sha256_file(a.out),
            bytes=Path(a.out).stat().st_size,
            wavs={"input": a.input_wav, "reference": a.reference_wav, "file": heard["file"]},
        )
        write_json(sidecar_path(a.out), record)
        log.info("chain reference: %d file(s) judged, timing points %s", len(record["judged"]), record["points"])

    cli.run("chain_reference", run, p, argv)


if __name__ == "__main__":
    main()
