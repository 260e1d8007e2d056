"""Stage: seeded initial checkpoints for models that ship none (the embedded demo)."""

from __future__ import annotations

import argparse
import json
import logging

from . import cli
from .components import write_seeded_checkpoint
from .io import now, sha256_file, sidecar_path, versions, write_json

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--cls", required=True, help="dotted nn.Module class path")
    p.add_argument("--kwargs", required=True, type=json.loads, help="constructor kwargs as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        info = write_seeded_checkpoint(a.cls, a.kwargs, a.seed, a.out)
        write_json(sidecar_path(a.out), {"stage": "checkpoint", "class": a.cls, "kwargs": a.kwargs, "seed": a.seed,
                                         "created": now(), "sha256": sha256_file(a.out), **info,
                                         "versions": versions("torch", "safetensors")})
        log.info("%s: %d parameters, seed %d -> %s", a.cls, info["parameters"], a.seed, a.out)

    cli.run("checkpoints", run, p, argv)


if __name__ == "__main__":
    main()
