"""Convert a torch pickle you trust into safetensors: the one place the workflow unpickles code.

    python -m workflow_lib.tools.convert --trust-pickle IN OUT.safetensors [--key state_dict] \
        [--select-prefix encoder.]

Checkpoints the pipeline loads are untrusted: torch pickles go through weights_only=True,
which refuses files that also pickle objects (Lightning hyper-parameters, config classes).
Such a file can run code when unpickled. If you know where it came from, convert it once
here (with --trust-pickle, and a loud warning in the log); the safetensors file holds only
tensors and is what the config should point at. The sidecar records the source's sha256.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError
from ..core.files import atomic_path, now, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..jobs import cli
from ..runtimes.loader import load_file, select

log = logging.getLogger(__name__)


def convert(src: str | Path, out: str | Path, key: str | None = None, select_prefix: str = "") -> dict[str, Any]:
    log.warning(
        "UNPICKLING %s WITH weights_only=False: this runs any code the file contains. "
        "Do this only for files from a source you trust.",
        src,
    )
    state = select(load_file(src, allow_unsafe_pickle=True), src, key, select_prefix)
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
    dropped = sorted(k for k in state if k not in tensors)
    if not tensors:
        raise CheckpointError(f"{src}: nothing to convert: no tensors at key {key!r} under prefix {select_prefix!r}")
    if dropped:
        log.warning("%s: %d entries are not tensors and were left out: %s", src, len(dropped), dropped[:10])
    from safetensors.torch import save_file

    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    meta = {
        "stage": "convert",
        "created": now(),
        "source": str(src),
        "source_sha256": sha256_file(src),
        "key": key,
        "select_prefix": select_prefix,
        "tensors": len(tensors),
        "dropped": dropped,
        "parameters": int(sum(t.numel() for t in tensors.values())),
        "sha256": sha256_file(out),
        "versions": versions("torch", "safetensors"),
    }
    write_json(sidecar_path(out), meta)
    log.info("%s -> %s: %d tensors, %d parameters", src, out, meta["tensors"], meta["parameters"])
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("src", help="torch pickle (.pt .pth .ckpt .bin)")
    p.add_argument("out", help="the .safetensors file to write (a .json sidecar goes beside it)")
    p.add_argument("--trust-pickle", action="store_true", help="required: you trust the file to run code")
    p.add_argument("--key", help="dotted path to the state dict inside the file (e.g. state_dict, model.generator)")
    p.add_argument("--select-prefix", default="", help="keep only keys under this prefix, stripped")

    def run(a: argparse.Namespace) -> None:
        if not a.trust_pickle:
            raise CheckpointError("refusing to unpickle without --trust-pickle: unpickling can run code from the file")
        if not a.out.endswith(".safetensors"):
            raise CheckpointError(f"{a.out}: the output must be a .safetensors file")
        convert(a.src, a.out, a.key, a.select_prefix)

    cli.run("convert", run, p, argv)


if __name__ == "__main__":
    main()
