"""Stage: a chain component's sample set: what PyTorch fp32 feeds it when the chain runs on each file.

INT8 ranges calibrated on random inputs describe random inputs; in a chain a component sees the
chain's own intermediate tensors, so its samples are the tensors PyTorch fp32 fed it when the
chain ran on each input file, computed with only the roles upstream of it (so a new checkpoint
of one component re-captures only itself and what it feeds; a plug-in may capture a role
otherwise, as the demo feeds its last role the features of the input file itself). One sample per file, each in
the role its file plays (calibration, search, evaluation: core/splits.py), with the component's
own PyTorch outputs on the search and evaluation samples: every later check reads them instead of running
PyTorch.
"""

from __future__ import annotations

import argparse
import json
import logging

from ..chains import harness
from ..chains.assignment import renamed
from ..chains.spec import ChainSpec
from ..core.files import sha256_file
from ..core.samples import Feeds, write_calibration
from ..core.spec import ComponentSpec, spec_from_json
from ..jobs import cli
from ..runtimes import torch_eager

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io")  # what this stage reads of each component


def capture(
    specs: dict[str, ComponentSpec], spec: ChainSpec, component: str, threads: int = 0
) -> tuple[list[Feeds], list[str]]:
    """The component's samples (under its own input names), one per file in the splits' order, and the
    components that ran upstream of it."""
    chain = spec.chain
    role = spec.role_of(component)
    names = spec.roles[role].names
    ran = chain.upstream(role)
    runners = {
        r: renamed(
            torch_eager.open_runner(specs[spec.roles[r].component], "fp32", None, threads, "cpu"), spec.roles[r].names
        )
        for r in ran
    }
    items = harness.read_items(chain, spec.splits)
    extra = chain.conditioning(spec.role_inputs(specs), items) if ran else {}
    samples = [{names[k]: v for k, v in chain.capture(runners, item, extra, role).items()} for item in items]
    return samples, [spec.roles[r].component for r in ran]


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON (it and its upstream)")
    p.add_argument("--chain", required=True, type=ChainSpec.from_json, help="the model's chain spec (JSON)")
    p.add_argument("--component", required=True)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        samples, ran = capture(specs, a.chain, a.component, a.threads)
        spec = specs[a.component]
        splits = a.chain.splits
        own = torch_eager.open_runner(spec, "fp32", None, a.threads, "cpu")
        # PyTorch's outputs are what the search and evaluation samples are judged against; a calibration sample
        # needs only its inputs (ranges), so its outputs are not computed (asked for later: computed then)
        judged = set(splits.of("search")) | set(splits.of("evaluation")) if splits.files else set(range(len(samples)))
        upstream = f"PyTorch fp32 of {', '.join(ran)} upstream" if ran else "nothing upstream"
        files = harness.describe_inputs(splits, {f: sha256_file(f) for f in splits.files})
        write_calibration(
            a.out,
            spec.model,
            a.component,
            samples,
            [own(s) if i in judged else [] for i, s in enumerate(samples)],
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
