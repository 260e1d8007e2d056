"""The chain protocol: what a model's end-to-end chain implements so the generic chain stages can
run it, calibrate it, score it and search it.

A chain is a plug-in, found by the module named in the model's `chain.plugin`; the module
defines `CHAIN`, a subclass of `Chain`. The generic stages (chain_reference, chain_calibration,
chain_bench, chain_search) never name a model: they read the plug-in's roles, feed it runners
(numpy in, numpy out, any backend) and ask it for scores. Like a pytest plug-in, a chain
overrides only what it uses: the defaults cover a chain whose roles feed each other in order,
compared stage by stage with PyTorch fp32's run.

What a plug-in declares:
- `roles`: the components it runs (the config maps each to a component and, where the
  component names its inputs otherwise, renames them), with the tensor names it feeds each
  (`role_inputs`), the intermediate tensors it produces in order (`stages`, its output last),
  which role produces which (`produces`) and what feeds it (`fed_by`);
- `settings_schema`: the JSON schema of `chain.settings`, its own configuration;
- `metrics`: the score groups it reports and the metrics in each: what `chain.gates` may
  gate (`<group>: {min_<metric>: ..., max_<metric>: ...}`), per file, the worst file deciding;
- `captions`: a sentence per group and for the audio it lets you hear, for the report.

What it implements: `read` (a file into an item, the chain's input), `timing_input` (an item of
a given length, to time), `forward` (the chain over runners), and `score`. Optional:
`conditioning` (inputs every assignment shares, drawn once: noise, a speaker), `side_outputs`
(scored, not timed), `capture` / `upstream` (what a role is fed, for its calibration set),
`stage_errors` and `culprit` (which role to move when the chain fails a gate), `listen`
(what to play in the report).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from ..analysis.fidelity import nsr, tensor_error
from ..core.spec import InputSpec

Item = dict[str, np.ndarray]  # one input of the chain, as arrays (an utterance: {"audio": samples})
Feeds = dict[str, np.ndarray]
Infer = Callable[[Feeds], list[np.ndarray]]
Outputs = dict[str, np.ndarray]  # the chain's tensors by stage name (and side outputs by their names)


class Chain:
    """Base of every chain plug-in; see the module docstring for what a plug-in declares and implements."""

    roles: ClassVar[tuple[str, ...]] = ()
    role_inputs: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    stages: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[Mapping[str, str]] = {}
    fed_by: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    captions: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    # --- inputs -------------------------------------------------------------------------------
    def read(self, path: str) -> Item:
        """One input file as the chain's item; errors name the file."""
        raise NotImplementedError

    def synthetic(self) -> Item:
        """An item when no file is configured (the record says it is synthetic)."""
        raise NotImplementedError(f"{type(self).__name__} needs input files (chain.inputs)")

    def timing_input(self, items: list[Item], seconds: float) -> Item:
        """An item `seconds` long made of `items`: what the chain is timed on."""
        raise NotImplementedError

    def seconds(self, item: Item) -> float:
        """How long an item lasts (real-time factors divide by it)."""
        raise NotImplementedError

    def conditioning(self, inputs: Mapping[str, Mapping[str, InputSpec]], items: list[Item]) -> dict[str, np.ndarray]:
        """Inputs every assignment shares (seeded noise, a speaker embedding), large enough for every item:
        drawn once in the reference run. `inputs[role][name]`: each role's input specs under the chain's names."""
        return {}

    # --- the chain ----------------------------------------------------------------------------
    def forward(
        self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], until: str | None = None
    ) -> tuple[Outputs, dict[str, Feeds]]:
        """Every stage's output (the chain's output last) and what each role was fed (under the chain's
        names). With `until`, stop once that role's inputs are known: only the roles before it need runners."""
        raise NotImplementedError

    def side_outputs(self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray]) -> Outputs:
        """More outputs to score that are not part of the timed chain (e.g. a vocoder's copy synthesis)."""
        return {}

    # --- calibration --------------------------------------------------------------------------
    def upstream(self, role: str) -> list[str]:
        """The roles whose outputs feed `role`, directly or not: what runs to capture its inputs."""
        found: list[str] = []
        for stage in self.fed_by.get(role, ()):
            producer = next(r for r, s in self.produces.items() if s == stage)
            found += [r for r in [*self.upstream(producer), producer] if r not in found]
        return found

    def capture(self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], role: str) -> Feeds:
        """What `role` is fed on `item` (under the chain's names), its upstream run by `runners`."""
        return self.forward(runners, item, extra, until=role)[1][role]

    # --- scores -------------------------------------------------------------------------------
    def score(self, reference: Outputs, outputs: Outputs, item: Item) -> dict[str, dict[str, Any]]:
        """Per group of `metrics`, this item's scores against PyTorch fp32's outputs on it."""
        raise NotImplementedError

    def stage_errors(self, reference: Outputs, outputs: Outputs) -> dict[str, dict[str, float]]:
        """Per stage, SNR and max error against PyTorch fp32's: where error enters and how it grows."""
        return {s: tensor_error(reference[s], outputs[s]) for s in self.stages}

    # --- search -------------------------------------------------------------------------------
    def added_noise(self, stages: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Per role, the error it adds: its output's noise-to-signal ratio minus the worst of its inputs'.
        Noise-to-signal ratios add (roughly) along a chain, so the role whose output is much noisier than
        what it was fed is the one to move first."""
        n = {s: nsr(m["snr_db"]) for s, m in stages.items()}
        return {
            role: max(0.0, n[self.produces[role]] - max((n[s] for s in self.fed_by.get(role, ())), default=0.0))
            for role in self.roles
        }

    def culprit(self, failed: set[str], stages: Mapping[str, Mapping[str, float]], movable: set[str]) -> str | None:
        """The role to move one rung towards PyTorch after a try failed the groups `failed`: the one adding
        the most noise that can still move; None when none can."""
        noise = self.added_noise(stages)
        order = sorted((r for r in noise if r in movable), key=lambda r: -noise[r])
        return order[0] if order else None

    # --- the report ---------------------------------------------------------------------------
    def listen(self, outputs: Outputs) -> tuple[np.ndarray, int] | None:
        """Audio to play in the report for one item's outputs (samples, rate), or None."""
        return None

    def listen_input(self, item: Item) -> tuple[np.ndarray, int] | None:
        """The item itself as audio, or None."""
        return None
