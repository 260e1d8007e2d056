"""Stage: the calibration set of a component outside a chain: the inputs it really sees, as arrays.

INT8 ranges calibrated on random inputs describe random inputs. A component of a model with an
end-to-end chain is calibrated on the chain's own tensors (models/svc/calibrate.py); any other
names files of input arrays under `calibration.files` (`.npz` with one array per input name,
or `.npy` for a one-input component; one sample per file), or falls back to its input
generators at the opt point, which the sidecar and the report mark as unrepresentative. The
set's size and sha256 are recorded, with PyTorch fp32's outputs on each sample (every later
check reads them instead of running PyTorch).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..core import cli
from ..core.errors import StageError
from ..core.files import read_npz
from ..core.samples import Feeds, write_calibration
from ..core.spec import ComponentSpec

log = logging.getLogger(__name__)


def from_files(spec: ComponentSpec, files: list[str]) -> list[Feeds]:
    names = [i.name for i in spec.inputs]
    samples = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise StageError(f"{spec.label}: calibration file {path} not found")
        if path.suffix == ".npy":
            if len(names) != 1:
                raise StageError(
                    f"{spec.label}: calibration file {path} is one array, but the component has inputs "
                    f"{names}: use an .npz with one array per input name"
                )
            feeds = {names[0]: np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            feeds = read_npz(path)
        else:
            raise StageError(f"{spec.label}: calibration file {path}: expected .npz or .npy")
        if set(feeds) != set(names):
            raise StageError(
                f"{spec.label}: calibration file {path} holds {sorted(feeds)}, the component's inputs are {names}"
            )
        for i in spec.inputs:
            if feeds[i.name].ndim != len(i.shape):
                raise StageError(
                    f"{spec.label}: calibration file {path}: input '{i.name}' has shape "
                    f"{list(feeds[i.name].shape)}, expected {len(i.shape)} dims like {list(i.shape)}"
                )
        samples.append(feeds)
    return samples


def from_generators(spec: ComponentSpec, count: int) -> list[Feeds]:
    return [spec.make_inputs(spec.point("opt"), seed) for seed in range(count)]


def make(spec: ComponentSpec, out: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    if settings.get("files"):
        samples, source, representative = from_files(spec, settings["files"]), "calibration.files", True
    else:
        count = int(settings.get("samples", 8))
        samples = from_generators(spec, count)
        source, representative = f"the input generators at the opt point ({count} seeds)", False
        log.warning(
            "%s: calibrating on generated inputs: they are not what the component sees in use, so INT8 "
            "ranges and fidelity judged on them are unrepresentative (set calibration.files)",
            spec.label,
        )
    from ..runtimes import torch_eager

    pytorch = torch_eager.open_runner(spec, "fp32", None, 0, "cpu")
    outputs = [pytorch(s) for s in samples]
    meta = write_calibration(out, spec.model, spec.component, samples, outputs, source, representative)
    log.info("%s: %d calibration samples from %s", spec.label, len(samples), source)
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        make(a.spec, a.out, a.spec.raw.get("calibration") or {})

    cli.run("calibration", run, p, argv)


if __name__ == "__main__":
    main()
