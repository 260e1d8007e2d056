"""Stage: the checkpoint files a run starts from, for components that do not point at their own.

Two kinds: seeded initial weights for models that ship none (the demo's encoders, flow and
projection: `seed_checkpoints`), and a file shipped inside an installed package
(`checkpoint: pkg:<package>/<path>`, the demo's pretrained HiFi-GAN), located without
importing the package and placed under results/checkpoints (hard link, or copy), so every
later stage and every sidecar names a path inside the run, not a site-packages path. The
sidecar records the file's sha256 and the package's version.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ..core.files import atomic_path, link_or_copy, now, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.spec import PACKAGE_PREFIX, package_distributions, package_file
from ..jobs import cli

log = logging.getLogger(__name__)


def write_seeded(cls: str, kwargs: dict[str, Any], seed: int, out: str | Path) -> dict[str, Any]:
    """Deterministic initial weights for a component (the demo model ships no download)."""
    import torch
    from safetensors.torch import save_file

    from ..runtimes.loader import import_class

    torch.manual_seed(seed)
    module = import_class(cls)(**kwargs)
    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(state, str(tmp))
    return {
        "source": "seeded",
        "class": cls,
        "kwargs": kwargs,
        "seed": seed,
        "parameters": int(sum(v.numel() for v in state.values())),
        "tensors": len(state),
        "versions": versions("torch", "safetensors"),
    }


def place_package_file(source: str, out: str | Path) -> dict[str, Any]:
    """Hard-link (or copy) a package's file to `out`; what it is and where it came from."""
    path = package_file(source)
    package = source[len(PACKAGE_PREFIX) :].partition("/")[0]
    with atomic_path(out, suffix=Path(out).suffix) as tmp:
        tmp.unlink()
        how = link_or_copy(path, tmp)
    return {
        "source": source,
        "package": package,
        "distribution": package_distributions(source),
        "placed_by": how,
        "bytes": Path(out).stat().st_size,
    }


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--out", required=True)
    p.add_argument("--package", help="pkg:<package>/<path>: place this file")
    p.add_argument("--cls", help="seed: dotted nn.Module class path")
    p.add_argument("--kwargs", type=json.loads, default={}, help="seed: constructor kwargs as JSON")
    p.add_argument("--seed", type=int, help="seed: the random seed")

    def run(a: argparse.Namespace) -> None:
        info = place_package_file(a.package, a.out) if a.package else write_seeded(a.cls, a.kwargs, a.seed, a.out)
        sha256 = sha256_file(a.out)
        write_json(sidecar_path(a.out), {"stage": "checkpoint", "created": now(), "sha256": sha256, **info})
        log.info("%s -> %s (sha256 %s)", a.package or f"{a.cls} seed {a.seed}", a.out, sha256[:16])

    cli.run("checkpoints", run, p, argv)


if __name__ == "__main__":
    main()
