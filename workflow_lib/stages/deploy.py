"""Stage: decide what to ship for a model without a chain. Per component and device, the fastest
validated backend that is really faster than PyTorch eager, written as a manifest beside the
files to ship.

The rule: among backends whose artifact passed validation (marker, or inline parity for
torch.compile) and were measured at the decision point, pick the lowest median latency
whose speedup over PyTorch fp32 on the same device has a 95 % CI lying entirely above 1;
if none does, ship PyTorch eager. Every alternative is listed with its numbers and the
reason it lost, so the decision can be checked by a reader. (A model with an end-to-end
chain decides on the whole chain instead: models/svc/search.py.)
"""

from __future__ import annotations

import argparse
import json
import logging

from ..analysis import selection
from ..core import cli
from ..core.files import now

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--csvs", nargs="+", required=True, help="the model's component benchmark CSVs")
    p.add_argument("--markers", nargs="*", default=[], help="the model's validation markers")
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--point", default="opt")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--out", required=True, help="the bundle directory (manifest.json inside)")

    def run(a: argparse.Namespace) -> None:
        ranked = selection.rank(a.csvs, a.markers, a.point, a.bootstrap)
        components = {
            comp: {kind: selection.fastest(entry) for kind, entry in per_device.items()}
            for comp, per_device in ranked["components"].items()
        }
        manifest = {
            "model": ranked["model"],
            "created": now(),
            "point": a.point,
            "rule": selection.RULE,
            "components": components,
        }
        selection.bundle(manifest, {c: json.loads(s) for c, s in a.specs.items()}, a.out)
        for comp, per_device in components.items():
            for kind, chosen in per_device.items():
                log.info("%s on %s: ship %s (%s)", comp, kind, chosen["choice"], chosen["reason"])

    cli.run("deploy", run, p, argv)


if __name__ == "__main__":
    main()
