"""The chain protocol: what a model's end-to-end chain implements so the generic chain stages can run it,
calibrate it, score it and search it.

A chain is a plug-in in two parts, each a module named in the model's config:

- `chain.plugin` defines `CHAIN`, a `Chain` subclass: the forward pass. Its `dataflow` is one declared
  graph: the roles in run order, each with the names it is fed under (its component's inputs, renamable
  in the config), the tensors those feeds are made from (the item's features, or an earlier role's
  output), and the tensor it writes (a stage of the chain; the last role writes the chain's output).
  Everything else the generic stages ask about the graph (roles, feeds, stages, who produces what, what
  feeds whom, what must run upstream of a role) is derived from it, and checked when the class is made.
  It implements `read` (a file into an item), `features` (the item's source tensors), `timing_input`
  and `seconds`; it may override `feed` (a role's feeds from its tensors: conditioning, renames),
  `conditioning` (inputs every assignment shares, drawn once: noise, a speaker), `side_outputs` (scored,
  not timed), `capture` (what a role's sample set holds), `write` (the chain's output as a file) and
  `listen` / `picture` (the media a person judges in the report).
- `chain.scoring` (default: the plug-in module itself) defines `SCORER`, a `Scorer` subclass: the score
  groups and their metrics (what `chain.gates` may gate), `score`, and what the search reads to decide
  which role to move (`stage_errors`, `culprit`). Kept apart, a change to how a chain is judged reruns the
  jobs that judge (scores, timing, the search, the report) and none that make graphs: the forward
  module's code is what the sample sets and graph variants hash.

Like a pytest plug-in, a chain overrides only what it uses: the defaults run the roles in order and
compare stage by stage with PyTorch fp32's run. Tensors are numpy; runners take numpy feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..analysis import fidelity
from ..core.errors import StageError
from ..core.spec import InputSpec

Item = dict[str, np.ndarray]  # one input of the chain, as arrays (an utterance: {"audio": samples})
Feeds = dict[str, np.ndarray]
Infer = Callable[[Feeds], list[np.ndarray]]
Outputs = dict[str, np.ndarray]  # the chain's tensors by stage name (and side outputs by their names)
Span = tuple[int, int]  # (first position, count) along a chain's frame axis, for chains that stream


@dataclass(frozen=True)
class Role:
    """One node of a chain's dataflow: a component the config maps to `name`."""

    name: str
    feeds: tuple[str, ...]  # the names it is fed under (the component's inputs, unless renamed in the config)
    reads: tuple[str, ...]  # the tensors its feeds are made from: features of the item, or earlier roles' outputs
    writes: str  # the tensor it produces


class Chain:
    """Base of every chain plug-in's forward pass; see the module docstring."""

    dataflow: ClassVar[tuple[Role, ...]] = ()
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    media_suffix: ClassVar[str] = ".npy"  # what `listen` encodes and `write` writes (".wav" for audio)
    streams: ClassVar[bool] = False  # whether `live` converts chunk by chunk (chain.stream needs it)
    requirements: ClassVar[tuple[str, ...]] = ()  # the distributions its forward pass needs beyond numpy (a bundle's)
    # derived from `dataflow` when the class is made (__init_subclass__)
    roles: ClassVar[tuple[str, ...]] = ()
    role_inputs: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    stages: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[Mapping[str, str]] = {}
    fed_by: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    sources: ClassVar[tuple[str, ...]] = ()  # the tensors `features` computes: read, never written

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "dataflow" in cls.__dict__:
            derive(cls)

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    def role(self, name: str) -> Role:
        return next(r for r in self.dataflow if r.name == name)

    # --- inputs -------------------------------------------------------------------------------
    def read(self, path: str) -> Item:
        """One input file as the chain's item; errors name the file."""
        raise NotImplementedError

    def read_input(self, path: str) -> tuple[Item, list[str]]:
        """A user's file as the chain's item (the deployed runner), and what was converted on the way (stated,
        not silent); a file that cannot be converted is an error naming it."""
        if not Path(path).is_file():
            raise StageError(f"{path}: no such file")
        return self.read(path), []

    def synthetic(self) -> Item:
        """An item when no file is configured (the record says it is synthetic)."""
        raise NotImplementedError(f"{type(self).__name__} needs input files (chain.inputs)")

    def timing_input(self, items: list[Item], seconds: float) -> Item:
        """An item `seconds` long made of `items`: what the chain is timed on."""
        raise NotImplementedError

    def seconds(self, item: Item) -> float:
        """How long an item lasts (real-time factors divide by it)."""
        raise NotImplementedError

    def features(self, item: Item) -> dict[str, np.ndarray]:
        """The source tensors of the dataflow (every name in `sources`) for one item."""
        raise NotImplementedError

    def conditioning(self, inputs: Mapping[str, Mapping[str, InputSpec]], items: list[Item]) -> dict[str, np.ndarray]:
        """Inputs every assignment shares (seeded noise, a speaker embedding), large enough for every item:
        drawn once in the reference run. `inputs[role][name]`: each role's input specs under the chain's names."""
        return {}

    def feed(self, role: str, tensors: Mapping[str, np.ndarray], extra: Mapping[str, Any], span: Span | None) -> Feeds:
        """The role's feeds (under the chain's names) from the tensors it reads; `span`: the positions they
        cover, for chains whose conditioning is sliced by position (None: the whole item). Default: the
        tensors themselves, in the order the role declares."""
        r = self.role(role)
        return dict(zip(r.feeds, (tensors[n] for n in r.reads), strict=True))

    # --- the chain ----------------------------------------------------------------------------
    def forward(
        self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], until: str | None = None
    ) -> tuple[Outputs, dict[str, Feeds]]:
        """Every stage's output (the chain's output last) and what each role was fed (under the chain's
        names). With `until`, stop once that role's inputs are known: only the roles upstream of it run."""
        tensors = dict(self.features(item))
        needed = set(self.upstream(until)) if until else set(self.roles)
        out: Outputs = {}
        feeds: dict[str, Feeds] = {}
        for r in self.dataflow:
            if r.name != until and r.name not in needed:
                continue
            feeds[r.name] = self.feed(r.name, {n: tensors[n] for n in r.reads}, extra, self.span(item))
            if r.name == until:
                break
            tensors[r.writes] = out[r.writes] = runners[r.name](feeds[r.name])[0]
        return self.finish(out), feeds

    def span(self, item: Item) -> Span | None:
        """The positions an item covers (chains that stream: frames); None for chains that do not."""
        return None

    def finish(self, outputs: Outputs) -> Outputs:
        """The outputs as the chain hands them on (e.g. audio flattened to samples)."""
        return outputs

    def live(
        self,
        runners: Mapping[str, Infer],
        item: Item,
        extra: Mapping[str, np.ndarray],
        settings: Mapping[str, Any],
        like: Any = None,
    ):
        """A live session (chains that stream, `streams`): its `run(input, clock)` gives the output and the compute
        and latency record; `push` takes input as it arrives. `like`: an earlier session over the same runners,
        whose measurements of them are reused."""
        raise NotImplementedError(f"{type(self).__name__} does not stream (chain.stream needs a chain that does)")

    def side_outputs(self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray]) -> Outputs:
        """More outputs to score that are not part of the timed chain (e.g. the last role run on the input's own
        features)."""
        return {}

    # --- calibration --------------------------------------------------------------------------
    def upstream(self, role: str) -> list[str]:
        """The roles whose outputs feed `role`, directly or not, in run order: what runs to capture its inputs."""
        found: set[str] = set()
        todo = list(self.fed_by.get(role, ()))
        while todo:
            tensor = todo.pop()
            producer = next(r for r, s in self.produces.items() if s == tensor)
            if producer not in found:
                found.add(producer)
                todo += self.fed_by.get(producer, ())
        return [r for r in self.roles if r in found]

    def capture(self, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], role: str) -> Feeds:
        """What `role` is fed on `item` (under the chain's names), its upstream run by `runners`."""
        return self.forward(runners, item, extra, until=role)[1][role]

    # --- what a person judges -----------------------------------------------------------------
    def write(self, path: str, outputs: Outputs) -> None:
        """The chain's output as a file (the deployed runner's `convert`): .npy of the final stage by default."""
        from ..core.files import atomic_path

        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(outputs[self.stages[-1]]))

    def listen(self, outputs: Outputs) -> bytes | None:
        """One item's outputs as media to judge in the report (encoded, `media_suffix`), or None."""
        return None

    def listen_input(self, item: Item) -> bytes | None:
        """The item itself as media, or None."""
        return None

    def picture(self, media: bytes) -> np.ndarray | None:
        """A 2-D picture of media `listen` made (the report draws it), or None."""
        return None


def derive(cls: type[Chain]) -> None:
    """Every view of the dataflow graph, derived from it, and the graph checked: roles and tensors are unique,
    every read is a source or written by an earlier role, and the last role writes the chain's output."""
    flow = cls.dataflow
    name = cls.__name__
    if not flow:
        raise TypeError(f"{name}.dataflow: a chain needs at least one role")
    roles = [r.name for r in flow]
    writes = [r.writes for r in flow]
    if len(set(roles)) != len(roles) or len(set(writes)) != len(writes):
        raise TypeError(f"{name}.dataflow: roles {roles} and the tensors they write {writes} must be unique")
    written: set[str] = set()
    sources: list[str] = []
    for r in flow:
        if len(r.feeds) != len(set(r.feeds)):
            raise TypeError(f"{name}.dataflow: role {r.name} is fed under duplicate names {r.feeds}")
        for t in r.reads:
            if t in writes and t not in written:
                raise TypeError(f"{name}.dataflow: role {r.name} reads {t}, written by a later role")
            if t not in writes and t not in sources:
                sources.append(t)
        if r.writes in sources:
            raise TypeError(f"{name}.dataflow: {r.writes} is read before role {r.name} writes it")
        written.add(r.writes)
    cls.roles = tuple(roles)
    cls.role_inputs = {r.name: r.feeds for r in flow}
    cls.stages = tuple(writes)
    cls.produces = {r.name: r.writes for r in flow}
    cls.fed_by = {r.name: tuple(t for t in r.reads if t in writes) for r in flow}
    cls.sources = tuple(sources)


class Scorer:
    """Base of a chain's scoring: how its outputs are judged against PyTorch fp32's run; see the module
    docstring. `metrics`: per score group, the metrics it reports (registered names, or qualified ones:
    analysis/metrics.py), which `chain.gates` may gate, per file."""

    metrics: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    captions: ClassVar[Mapping[str, str]] = {}

    def __init__(self, chain: Chain):
        self.chain = chain

    def score(self, reference: Outputs, outputs: Outputs, item: Item) -> dict[str, dict[str, Any]]:
        """Per group of `metrics`, this item's scores against PyTorch fp32's outputs on it."""
        raise NotImplementedError

    def compare(self, reference: np.ndarray, output: np.ndarray) -> dict[str, Any]:
        """The chain's final output against another run of it (live against offline): tensor metrics by default."""
        return fidelity.scores([reference], [output])

    def stage_errors(self, reference: Outputs, outputs: Outputs) -> dict[str, dict[str, float]]:
        """Per stage, SNR and max error against PyTorch fp32's: where error enters and how it grows."""
        return {s: fidelity.tensor_error(reference[s], outputs[s]) for s in self.chain.stages}

    def added_noise(self, stages: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Per role, the error it adds: its output's noise-to-signal ratio minus the worst of its inputs'.
        Noise-to-signal ratios add (roughly) along a chain, so the role whose output is much noisier than
        what it was fed is the one to move first."""
        chain = self.chain
        n = {s: fidelity.nsr(m["snr_db"]) for s, m in stages.items()}
        return {
            role: max(0.0, n[chain.produces[role]] - max((n[s] for s in chain.fed_by.get(role, ())), default=0.0))
            for role in chain.roles
        }

    def culprit(self, failed: set[str], stages: Mapping[str, Mapping[str, float]], movable: set[str]) -> str | None:
        """The role to move one rung towards PyTorch after a try failed the groups `failed`: the one adding
        the most noise that can still move; None when none can."""
        noise = self.added_noise(stages)
        order = sorted((r for r in noise if r in movable), key=lambda r: -noise[r])
        return order[0] if order else None
