"""Stage: PyTorch fp32's run of the voice-conversion chain on the input speech, done once per model.

It is what every assignment is scored against (the e2e jobs and the chain search read it
instead of re-running PyTorch each): the chain's conditioning (speaker, noise), each speech
file resynthesised by the vocoder (copy synthesis), and every stage's output at each
`e2e.seconds` length. Calibration sets are the chain_calibration stage's (calibrate.py).
The input speech comes from `e2e.inputs` (any format, rate and channel count; resampled and downmixed); only when no
file is configured a synthetic sung tone stands in, and the sidecar says so.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...core import cli
from ...core.dsp import write_wav
from ...core.files import now, sha256_file, versions, write_json, write_npz
from ...core.paths import sidecar_path
from ...core.spec import ComponentSpec, spec_from_json
from ...runtimes import torch_eager
from .chain import (
    STAGES,
    Settings,
    conditioning,
    copy_synthesis,
    looped,
    parse_roles,
    renamed,
    speech_inputs,
    svc,
    z_channels,
)

log = logging.getLogger(__name__)


def reference_run(
    specs: dict[str, ComponentSpec], e2e: dict[str, Any], threads: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of the reference .npz and its sidecar record."""
    settings = Settings.from_config(e2e)
    roles = parse_roles(e2e["roles"])
    runners = {
        role: renamed(torch_eager.open_runner(specs[comp], "fp32", None, threads, "cpu"), names)
        for role, (comp, names) in roles.items()
    }
    speech, about = speech_inputs(e2e.get("inputs") or [], settings)
    seconds = list(e2e.get("seconds", [1, 5, 10]))
    hop = settings.mel.hop
    frames = max([int(round(s * settings.sr)) // hop for s in seconds] + [a.size // hop for a in speech])
    extra = conditioning(settings, frames, z_channels(specs, roles))
    arrays: dict[str, np.ndarray] = {f"extra/{k}": v for k, v in extra.items()}
    for i, audio in enumerate(speech):
        arrays[f"speech/{i}/audio"], arrays[f"speech/{i}/fp32"] = (
            audio,
            copy_synthesis(runners["vocoder"], audio, settings)[0],
        )
    for s in seconds:
        point = f"{s:g}s"
        audio = looped(speech, s, settings)
        out, _ = svc(runners, audio, extra, settings)
        arrays[f"chain/{point}/input"] = audio
        arrays.update({f"chain/{point}/{stage}": out[stage] for stage in STAGES})
    record = {
        "stage": "chain_reference",
        "model": next(iter(specs.values())).model,
        "created": now(),
        "inputs": about,
        "synthetic": not e2e.get("inputs"),
        "sample_rate": settings.sr,
        "points": [f"{s:g}s" for s in seconds],
        "frames": frames,
        "seed": settings.seed,
        "versions": versions("torch", "numpy", "soxr", "soundfile"),
    }
    return arrays, record


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--specs", required=True, type=json.loads, help="component -> spec JSON")
    p.add_argument("--e2e", required=True, type=json.loads, help="the model's chain settings as JSON")
    p.add_argument("--out", required=True, help="the reference .npz")
    p.add_argument("--input-wav", required=True, help="the first input file at the chain's rate")
    p.add_argument("--reference-wav", required=True, help="PyTorch fp32's resynthesis of it")

    def run(a: argparse.Namespace) -> None:
        specs = {c: spec_from_json(s) for c, s in a.specs.items()}
        arrays, record = reference_run(specs, a.e2e, a.threads)
        write_npz(a.out, arrays)
        sr = record["sample_rate"]
        write_wav(a.input_wav, arrays["speech/0/audio"], sr)
        write_wav(a.reference_wav, arrays["speech/0/fp32"], sr)
        record.update(
            sha256=sha256_file(a.out),
            bytes=Path(a.out).stat().st_size,
            wavs={"input": a.input_wav, "reference": a.reference_wav},
        )
        write_json(sidecar_path(a.out), record)
        log.info("chain reference: %d input file(s), points %s", len(record["inputs"]), record["points"])

    cli.run("chain_reference", run, p, argv)


if __name__ == "__main__":
    main()
