"""Stage: a chain component's sample set: what PyTorch fp32 feeds it when the chain runs on each file.

INT8 ranges calibrated on random inputs describe random inputs; in a chain a component sees the
chain's own intermediate tensors, so its samples are the tensors PyTorch fp32 fed it when the
chain ran on each input file, computed with only the roles upstream of it (so a new checkpoint
of one component re-captures only itself and what it feeds; a plug-in may capture a role
otherwise, as the demo's vocoder is fed real speech's log-mel). One sample per file, each in
the role its file plays (calibration, search, evaluation: core/splits.py), with the component's
own PyTorch outputs on it: every later check reads them instead of running PyTorch.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..chains import harness
from ..core import cli
from ..core.files import sha256_file
from ..core.samples import Feeds, write_calibration
from ..core.spec import ComponentSpec, spec_from_json
from ..runtimes import torch_eager

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what this stage reads of each component


def capture(
    specs: dict[str, ComponentSpec], chain_cfg: dict[str, Any], component: str, threads: int = 0
) -> tuple[list[Feeds], list[str]]:
    """The component's samples (under its own input names), one per file in the splits' order, and the
    components that ran upstream of it."""
    chain = harness.load(chain_cfg)
    roles = harness.parse_roles(chain, chain_cfg["roles"])
    role = next(r for r, (comp, _) in roles.items() if comp == component)
    names = roles[role][1]
    ran = chain.upstream(role)
    runners = {
        r: harness.renamed(torch_eager.open_runner(specs[roles[r][0]], "fp32", None, threads, "cpu"), roles[r][1])
        for r in ran
    }
    items = harness.read_items(chain, harness.splits_of(chain_cfg))
    extra = chain.conditioning(harness.role_inputs(specs, roles), items) if ran else {}
    samples = [{names[k]: v for k, v in chain.capture(runners, item, extra, role).items()} for item in items]
    return samples, [roles[r][0] for r in ran]


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON (it and its upstream)")
    p.add_argument("--chain", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--component", required=True)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        samples, ran = capture(specs, a.chain, a.component, a.threads)
        spec = specs[a.component]
        splits = harness.splits_of(a.chain)
        own = torch_eager.open_runner(spec, "fp32", None, a.threads, "cpu")
        upstream = f"PyTorch fp32 of {', '.join(ran)} upstream" if ran else "nothing upstream"
        files = harness.describe_inputs(splits, {f: sha256_file(f) for f in splits.files})
        write_calibration(
            a.out,
            spec.model,
            a.component,
            samples,
            [own(s) for s in samples],
            f"the chain on each input file ({upstream})",
            bool(splits.files),
            splits,
            list(range(len(samples))),
            inputs=files,
        )
        log.info(
            "%s: %d samples from the chain (%s upstream), %s",
            a.component,
            len(samples),
            ", ".join(ran) or "nothing",
            splits.scheme,
        )

    cli.run("calibration", run, p, argv)


if __name__ == "__main__":
    main()
