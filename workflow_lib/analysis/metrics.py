"""The metric registry: every metric a gate, a search, parity or the report may name, with its direction and
what computes it; and the output kinds, with the metrics each is scored by.

One owner for "which way is worse": gates, searches, the chain's worst-file summaries and the report ask
here instead of testing name prefixes. A chain plug-in may report a metric under a qualified name
(`speech_pesq`: PESQ against the input speech); its direction is the registered metric's after the first
underscore-separated qualifier.

An output kind names the module that scores it (`scores(references, outputs, rate, perceptual) -> dict`),
imported only when an output of that kind is judged: a tensor-output component never loads the audio
package (workflow_lib/audio), which owns PESQ, STOI and the log-spectral distance.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fidelity import nsr


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    about: str

    def worst(self, values: Iterable[float]) -> float:
        """The worst of `values`: NaN (a number that could not be computed) counts as the worst of all."""
        values = list(values)
        if any(v != v for v in values):
            return float("nan")
        return (min if self.higher_is_better else max)(values)

    def worse(self, a: float, b: float) -> bool:
        """Whether `a` is worse than `b`."""
        return a < b if self.higher_is_better else a > b


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("snr_db", True, "signal-to-noise ratio against the reference, dB (+inf: identical)"),
        Metric("max_abs", False, "largest absolute elementwise error"),
        Metric("max_rel", False, "largest absolute error relative to the reference's peak"),
        Metric("lsd_db", False, "log-spectral distance on mel spectra, dB (audio)"),
        Metric("pesq", True, "PESQ, ITU-T P.862.2 wideband at 16 kHz, 1 to 4.64 (audio)"),
        Metric("stoi", True, "short-time objective intelligibility, 0 to 1 (audio)"),
    )
}


def get(name: str) -> Metric:
    """A metric by name, or by a qualified name (`speech_pesq`, `copy_lsd_db`) whose remainder is registered."""
    if name in METRICS:
        return METRICS[name]
    head, _, rest = name.partition("_")
    if rest and rest in METRICS:
        return METRICS[rest]
    raise KeyError(f"no metric '{name}' (metrics: {', '.join(METRICS)}; qualified: <qualifier>_<metric>)")


def known(name: str) -> bool:
    try:
        get(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class Kind:
    """An output kind: the metrics its outputs are scored by, the one candidates are ranked by (where it
    could be computed; else SNR), and the cheap error a search ranks blocks by."""

    name: str
    metrics: tuple[str, ...]
    score: str
    module: str  # scores(references, outputs, rate, perceptual) -> {metric: value}
    quick: str = "nsr"  # the cheap error (lower is better): nsr (from SNR) or a registered metric


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("tensor", ("snr_db", "max_abs", "max_rel"), "snr_db", "workflow_lib.analysis.fidelity"),
        # waveform SNR misleads for vocoders (a phase shift costs SNR, not sound): ranked by PESQ, searched by LSD
        Kind("audio", ("snr_db", "lsd_db", "pesq", "stoi", "max_abs"), "pesq", "workflow_lib.audio.metrics", "lsd_db"),
    )
}


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"no output kind '{name}' (one of {', '.join(KINDS)})") from None


def scores(
    kind_name: str, references: list[np.ndarray], outputs: list[np.ndarray], rate: int, perceptual: bool = True
) -> dict[str, Any]:
    """Every metric of the kind for one sample's outputs against PyTorch's (perceptual ones only if asked:
    they cost most)."""
    return importlib.import_module(kind(kind_name).module).scores(references, outputs, rate, perceptual)


def score_of(kind_name: str, values: dict[str, Any]) -> float:
    """The number candidates are ranked by (bigger is better): the kind's score where it could be computed,
    else SNR."""
    value = values.get(kind(kind_name).score)
    return float(value if value is not None else values["snr_db"])


def error_of(kind_name: str, values: dict[str, Any]) -> float:
    """The cheap error a search ranks by (bigger is worse): the kind's quick metric, else the noise-to-signal
    ratio from SNR."""
    quick = kind(kind_name).quick
    if quick != "nsr" and values.get(quick) is not None:
        return float(values[quick])
    return nsr(values["snr_db"])


def worst_values(per_file: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per metric, the worst file's value (None where some file lacks it)."""
    out: dict[str, float | None] = {}
    for key in sorted({k for s in per_file for k, v in s.items() if isinstance(v, float) and known(k)}):
        values = [s.get(key) for s in per_file]
        out[key] = get(key).worst(values) if all(isinstance(v, float) for v in values) else None
    return out
