"""Stage: the sample set of a component outside a chain: the inputs it really sees, as arrays, in
three roles (calibration, search, evaluation: core/splits.py).

INT8 ranges calibrated on random inputs describe random inputs. A component of a model with a
chain is calibrated on the chain's own tensors (stages/chain_calibration.py); any other names
files of input arrays under `calibration.files` (`.npz` with one array per input name, or
`.npy` for a one-input component; one sample per file), with `calibration.search` and
`calibration.evaluation` files for the other roles (without them: the files dealt out to the roles in
turn), or falls
back to its input generators at the opt point (disjoint seeds per role), which the sidecar and
the report mark as unrepresentative. The set's size and sha256 are recorded, with PyTorch
fp32's outputs on each sample (every later check reads them instead of running PyTorch).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import StageError
from ..core.files import read_npz
from ..core.samples import Feeds, write_calibration
from ..core.spec import ComponentSpec
from ..core.splits import GENERATED, SPLITS, Splits, from_config
from ..jobs import cli

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io", "calibration")  # what this stage reads of a component


def from_files(spec: ComponentSpec, files: list[str]) -> list[Feeds]:
    names = [i.name for i in spec.inputs]
    samples = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise StageError(f"{spec.name}: calibration file {path} not found")
        if path.suffix == ".npy":
            if len(names) != 1:
                raise StageError(
                    f"{spec.name}: calibration file {path} is one array, but the component has inputs "
                    f"{names}: use an .npz with one array per input name"
                )
            feeds = {names[0]: np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            feeds = read_npz(path)
        else:
            raise StageError(f"{spec.name}: calibration file {path}: expected .npz or .npy")
        if set(feeds) != set(names):
            raise StageError(
                f"{spec.name}: calibration file {path} holds {sorted(feeds)}, the component's inputs are {names}"
            )
        for i in spec.inputs:
            if feeds[i.name].ndim != len(i.shape):
                raise StageError(
                    f"{spec.name}: calibration file {path}: input '{i.name}' has shape "
                    f"{list(feeds[i.name].shape)}, expected {len(i.shape)} dims like {list(i.shape)}"
                )
        samples.append(feeds)
    return samples


def from_generators(spec: ComponentSpec, count: int, first_seed: int = 0) -> list[Feeds]:
    return [spec.make_inputs(spec.point("opt"), seed) for seed in range(first_seed, first_seed + count)]


def make(spec: ComponentSpec, out: str | Path, settings: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """The component's sample set: its files in their roles (calibration, search, evaluation; with no search or
    evaluation files, the calibration files dealt out to the three roles), or generated samples with disjoint seeds per
    role, marked unrepresentative."""
    if settings.get("files"):
        given = {
            "calibration": settings["files"],
            "search": settings.get("search"),
            "evaluation": settings.get("evaluation"),
        }
        splits = from_config(given if given["search"] and given["evaluation"] else list(settings["files"]))
        samples = from_files(spec, list(splits.files))
        files = list(range(len(samples)))
        source, representative = "calibration files", True
    else:
        count = int(settings.get("samples", 8))
        samples = [s for i in range(len(SPLITS)) for s in from_generators(spec, count, i * count)]
        files = list(range(len(samples)))
        splits = Splits(GENERATED, (), {s: tuple(range(i * count, (i + 1) * count)) for i, s in enumerate(SPLITS)})
        source, representative = f"the input generators at the opt point ({count} seeds per role)", False
        log.warning(
            "%s: calibrating on generated inputs: they are not what the component sees in use, so INT8 "
            "ranges and fidelity judged on them are unrepresentative (set calibration.files)",
            spec.name,
        )
    from ..runtimes import torch_eager

    pytorch = torch_eager.open_runner(spec, "fp32", None, threads, "cpu")
    outputs = [pytorch(s) for s in samples]
    meta = write_calibration(out, spec.model, spec.component, samples, outputs, source, representative, splits, files)
    log.info("%s: %d samples from %s (%s)", spec.name, len(samples), source, splits.scheme)
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        make(a.spec, a.out, a.spec.raw.get("calibration") or {}, a.threads)

    cli.run("calibration", run, p, argv)


if __name__ == "__main__":
    main()
