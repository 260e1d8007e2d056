"""The held-out verdict: what a decision ships, judged once on the evaluation files, after every choice.

Every choice (INT8 candidates, which series are candidates at all, the chain's assignment, ties) is made on
the search files. The evaluation files are read here, once, for what ships: each component series whose
variant has a file-based (fidelity) gate is judged on its sample set's evaluation files (a chain's own gates
are judged by the chain search on the chain's evaluation files). A decision that fails here does not go
back and choose again: the rule fixed before any evaluation ships instead (PyTorch fp32, or a chain's safe
assignment), and the manifest and report say so.
"""

from __future__ import annotations

from typing import Any

from ..core import variants
from ..core.files import read_json
from ..core.samples import Outputs, feeds_key, read_sample_set
from ..core.spec import ComponentSpec
from ..runtimes import registry
from . import metrics, parity
from .gates import Statistic


def component(
    spec: ComponentSpec,
    entry: dict[str, Any],
    calibration: str | None,
    reference: str | None,
    threads: int,
    known: dict[str, Outputs] | None = None,
) -> dict[str, Any] | None:
    """A shipped series (a decision's entry) on its component's evaluation files: the verdict of its variant's
    fidelity gate, by the gate statistic; None for a variant without a file-based gate (fp32, fp16: their
    elementwise parity holds at every shape, whatever the files) or a component without a sample set. `known`:
    what this series already answered, by feeds key (a chain's run of the same inputs), read instead of run."""
    if variants.get(entry["variant"]).gate != "fidelity" or not calibration:
        return None
    sset = read_sample_set(calibration)
    names = [i.name for i in spec.inputs]
    samples, files = sset.judged("evaluation", names)
    marker = read_json(entry["marker"]) if entry.get("marker") else None
    series = f"{entry['series']}@{entry['device'].split(':')[0]}"
    known, keys = known or {}, [feeds_key(s) for s in samples]
    runner = None
    if any(k not in known for k in keys):
        runner, _ = registry.open_series(spec, series, entry["source"], marker, threads)
    ref = parity.reference(spec, [reference, calibration])
    judged = parity.judge_samples(
        spec,
        [ref(s) for s in samples],
        [known[k] if k in known else runner(s) for k, s in zip(keys, samples, strict=True)],
        spec.gate(entry["variant"]),
        files,
        Statistic.from_settings(spec.raw.get("gating")),
    )
    per_file = judged.pop("per_file")
    return {
        **judged,
        "worst": metrics.worst_values(per_file),
        "scheme": sset.splits.scheme,
        "series": entry["series"],
    }
