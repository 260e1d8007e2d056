"""Stage: a chain component's calibration set: what PyTorch fp32 feeds it when the chain runs on the
input speech.

INT8 ranges calibrated on random inputs describe random inputs; in the SVC chain a component
sees the chain's own intermediate tensors, so its samples are the tensors PyTorch fp32 fed it
when the chain ran on each input file, computed with only the components upstream of it (so a
new checkpoint of one component recalibrates only itself and what it feeds). The component's
own PyTorch outputs on them are stored too: every later check reads them instead of running
PyTorch. The vocoder's come from the
copy-synthesis chain instead, the real log-mels of the input speech: that is what a pretrained
vocoder is made for, while the demo's seeded upstream components feed it mels no trained
model would produce (and a perceptual gate means nothing on those).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ...core import cli
from ...core.dsp import log_mel
from ...core.samples import Feeds, write_calibration
from ...core.spec import ComponentSpec, spec_from_json
from ...runtimes import torch_eager
from .chain import Settings, calibration_upstream, conditioning, parse_roles, renamed, speech_inputs, svc, z_channels

log = logging.getLogger(__name__)


def capture(
    specs: dict[str, ComponentSpec], e2e: dict[str, Any], component: str, threads: int = 0
) -> tuple[list[Feeds], list[dict[str, Any]], list[str]]:
    """The component's samples (its own input names), the speech they came from, and the components that ran."""
    settings = Settings.from_config(e2e)
    roles = parse_roles(e2e["roles"])
    role = next(r for r, (comp, _) in roles.items() if comp == component)
    names = roles[role][1]
    speech, about = speech_inputs(e2e.get("inputs") or [], settings)
    ran = calibration_upstream(role)
    if role == "vocoder":
        return [{names["mel"]: log_mel(audio, settings.mel)[None]} for audio in speech], about, []
    runners = {
        r: renamed(torch_eager.open_runner(specs[roles[r][0]], "fp32", None, threads, "cpu"), roles[r][1]) for r in ran
    }
    needs_flow = role == "flow" or "flow" in ran  # the speaker and noise only matter from the flow on
    z = z_channels(specs, roles) if needs_flow else 0
    samples = []
    for audio in speech:
        extra = conditioning(settings, audio.size // settings.mel.hop, z) if needs_flow else {}
        _, feeds = svc(runners, audio, extra, settings, until=role)
        samples.append({names[k]: v for k, v in feeds[role].items()})
    return samples, about, [roles[r][0] for r in ran]


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--e2e", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--component", required=True)
    p.add_argument("--out", required=True)

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        samples, about, ran = capture(specs, a.e2e, a.component, a.threads)
        spec = specs[a.component]
        own = torch_eager.open_runner(spec, "fp32", None, a.threads, "cpu")
        upstream = f"PyTorch fp32 of {', '.join(ran)} upstream" if ran else "features of the speech, nothing upstream"
        source = f"the chain on the input speech ({upstream})"
        outputs = [own(s) for s in samples]
        write_calibration(a.out, spec.model, a.component, samples, outputs, source, True, inputs=about)
        log.info(
            "%s: %d calibration samples from the chain (%s upstream)",
            a.component,
            len(samples),
            ", ".join(ran) or "nothing",
        )

    cli.run("calibration", run, p, argv)


if __name__ == "__main__":
    main()
