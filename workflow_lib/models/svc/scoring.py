"""Running an assignment's chain and scoring it against PyTorch fp32's reference run: what the e2e
benchmark and the chain search both do.

Two chains, two questions. The SVC chain (every component) is timed, and its audio and every
intermediate tensor are compared with PyTorch fp32's on the same speech, noise and speaker:
that says where error enters and how it grows. The copy-synthesis chain (real speech through
the vocoder) is where fidelity is meaningful for a listener: its output is scored with PESQ
and STOI against PyTorch fp32's resynthesis, and against the input speech itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...analysis.fidelity import audio_metrics, gate, perceptual, tensor_error
from ...core.dsp import log_mel
from ...core.errors import Unavailable
from ...core.files import read_json, read_npz
from ...core.spec import ComponentSpec
from ...core.timing import Policy, measure
from ...runtimes import registry as backends
from ...runtimes.runner import Runner
from .chain import ROLES, STAGES, Infer, Roles, Settings, copy_synthesis, renamed, svc

# artifacts[component][choice] = {"artifact": path, "marker": path or None}
Artifacts = dict[str, dict[str, dict[str, str | None]]]
COPY_SCORES = ("pesq", "stoi", "lsd_db", "snr_db")


@dataclass
class Reference:
    """PyTorch fp32's run (models/svc/reference.py): the speech, its resynthesis, and the chain per audio length."""

    speech: list[np.ndarray]
    fp32: list[np.ndarray]
    extra: dict[str, np.ndarray]
    points: dict[str, dict[str, np.ndarray]]

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        a = read_npz(path)
        count = len({k.split("/")[1] for k in a if k.startswith("speech/")})
        points: dict[str, dict[str, np.ndarray]] = {}
        for key, value in a.items():
            if key.startswith("chain/"):
                _, point, name = key.split("/")
                points.setdefault(point, {})[name] = value
        return cls(
            [a[f"speech/{i}/audio"] for i in range(count)],
            [a[f"speech/{i}/fp32"] for i in range(count)],
            {"speaker": a["extra/speaker"], "noise": a["extra/noise"]},
            dict(sorted(points.items(), key=lambda kv: float(kv[0].rstrip("s")))),
        )


def resolve(
    specs: dict[str, ComponentSpec],
    roles: Roles,
    choices: dict[str, list[str]],
    artifacts: Artifacts,
    threads: int,
    cache: dict[str, tuple[Runner, str]] | None = None,
) -> tuple[dict[str, Infer], dict[str, str]]:
    """Per role, the first choice that can run here; Unavailable lists every reason if one cannot.
    `cache` keeps opened runners between calls (the chain search tries many assignments)."""
    cache = {} if cache is None else cache
    runners, chosen, missing = {}, {}, []
    for role in ROLES:
        comp, names = roles[role]
        reasons = []
        for choice in choices[comp]:
            key = f"{comp}:{choice}"
            try:
                if key not in cache:
                    entry = artifacts[comp][choice]
                    marker = read_json(entry["marker"]) if entry.get("marker") else None
                    cache[key] = backends.open_choice(specs[comp], choice, entry["artifact"], marker, threads)
                runner, chosen[comp] = cache[key]
                runners[role] = renamed(runner, names)
                break
            except Unavailable as e:
                reasons.append(f"{choice}: {e}")
        else:
            missing.append(f"{comp} ({'; '.join(reasons)})")
    if missing:
        raise Unavailable("no runnable backend for " + ", ".join(missing))
    return runners, chosen


def score_chain(runners: dict[str, Infer], ref: Reference, point: str, settings: Settings) -> dict[str, Any]:
    """The SVC chain's audio and stage tensors against PyTorch fp32's at one audio length.

    The audio stage is compared on its log-mel, the domain of the vocoder's input: a quantized vocoder
    shifts phase (costing waveform SNR) without changing what it says, and the per-stage errors must be
    comparable, since the chain search backs off the stage that adds the most."""
    expected = ref.points[point]
    out, _ = svc(runners, expected["input"], ref.extra, settings)
    if out["audio"].size != expected["audio"].size:
        raise Unavailable(
            f"the chain returned {out['audio'].size} samples where PyTorch gives {expected['audio'].size}"
        )
    stages = {st: tensor_error(expected[st], out[st]) for st in STAGES if st != "audio"}
    stages["audio"] = tensor_error(log_mel(expected["audio"], settings.mel), log_mel(out["audio"], settings.mel))
    return {"metrics": audio_metrics(expected["audio"].ravel(), out["audio"].ravel(), settings.sr), "stages": stages}


def score_copy(vocoder: Infer, ref: Reference, settings: Settings) -> tuple[dict[str, Any], np.ndarray]:
    """Real speech resynthesised by the assignment's vocoder: against PyTorch fp32's resynthesis and against
    the speech itself, per file and on average; plus the first file's resynthesis, to listen to."""
    files, first = [], None
    for speech, fp32 in zip(ref.speech, ref.fp32, strict=True):
        out, _ = copy_synthesis(vocoder, speech, settings)
        first = out if first is None else first
        n = min(out.size, speech.size)
        files.append(
            {
                "vs_fp32": audio_metrics(fp32, out, settings.sr),
                "vs_speech": perceptual(speech[:n], out[:n], settings.sr),
            }
        )
    mean = {}
    for key in COPY_SCORES:
        values = [f["vs_fp32"].get(key) for f in files]
        mean[key] = None if any(v is None for v in values) else float(np.mean(values))
    for key in ("pesq", "stoi"):
        values = [f["vs_speech"].get(key) for f in files]
        mean[f"speech_{key}"] = None if any(v is None for v in values) else float(np.mean(values))
    return {"files": files, "mean": mean}, first


def verdict(chain: dict[str, Any], copy: dict[str, Any], gates: dict[str, dict[str, float]]) -> tuple[str, str]:
    """e2e.fidelity: `chain` gates on the SVC chain's audio, `copy_synthesis` gates on the resynthesised speech."""
    problems = []
    for name, metrics in (("chain", chain["metrics"]), ("copy_synthesis", copy["mean"])):
        status, why = gate(metrics, gates.get(name) or {})
        if status == "failed":
            problems.append(f"{name}: {why}")
    return ("failed", "; ".join(problems)) if problems else ("passed", "")


def time_chain(
    runners: dict[str, Infer], ref: Reference, point: str, settings: Settings, policy: Policy
) -> tuple[list[float], dict[str, Any]]:
    """Latency of the whole SVC chain (features included) at one audio length, timed like the components."""
    audio = ref.points[point]["input"]
    return measure(lambda: svc(runners, audio, ref.extra, settings), lambda: None, policy)
