"""An assignment (per component, the series to run it with and the files they read) turned into the chain's
runners: the one way a config's assignment, a search's try, a decision and a deployed bundle are opened.

A `Choice` is one series (`backend.variant`, optionally pinned to a device) over one artifact, usable only
if its validation marker passed (runtimes/registry.py); per component the choices are tried in order, and
the first that runs here is taken. Runners come back keyed by role, fed under the chain's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.errors import Unavailable
from ..core.files import read_json
from ..core.samples import feeds_key
from ..core.spec import ComponentSpec
from ..runtimes import registry as backends
from ..runtimes.runner import Runner
from .protocol import Infer
from .spec import ChainSpec


@dataclass(frozen=True)
class Choice:
    series: str  # backend.variant
    artifact: str | None  # what the backend reads (None: nothing, for backends that read the checkpoint by spec)
    marker: str | None = None  # the validation marker that gates it
    device: str | None = None  # cpu | cuda; None: where it runs here (CUDA first)
    quantized_nodes: int = 0

    @property
    def key(self) -> str:
        return f"{self.series}@{self.device}" if self.device else self.series

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Choice:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})


Preferences = dict[str, list[Choice]]  # per component, the choices in the order they are tried


def choice_of(entry: Mapping[str, Any], device: str | None = None, root: str | Path | None = None) -> Choice:
    """A decision's or a ranking's entry for one component (series, source or bundled file, marker) as a choice;
    `root`: the bundle it lies in (its files are relative to it)."""
    if root is None:
        artifact, marker = entry["source"], entry.get("marker")
    else:
        artifact = str(Path(root) / entry["file"])
        marker = str(Path(root) / entry["marker"]) if entry.get("marker") else None
    return Choice(entry["series"], artifact, marker, device, int(entry.get("quantized_nodes") or 0))


def from_decision(
    decision: Mapping[str, Any], devices: list[str] | None = None, root: str | Path | None = None
) -> Preferences:
    """What a decision (or a bundle's manifest, with `root`) ships, per component: its series on each of
    `devices` it ships for (default: every one, CUDA first)."""
    out: Preferences = {}
    for comp, per_device in decision["components"].items():
        order = devices or sorted(per_device, key=lambda d: d == "cpu")
        out[comp] = [choice_of(per_device[d], d, root) for d in order if d in per_device]
    return out


def preferences_json(prefs: Preferences) -> dict[str, list[dict[str, Any]]]:
    return {c: [ch.to_json() for ch in choices] for c, choices in prefs.items()}


def preferences_from_json(d: Mapping[str, Any]) -> Preferences:
    return {c: [Choice.from_json(x) for x in choices] for c, choices in d.items()}


def renamed(runner: Infer, names: Mapping[str, str]) -> Infer:
    """The runner fed under the chain's names, passing the component's own names on."""
    if all(k == v for k, v in names.items()):
        return runner
    return lambda feeds: runner({names.get(k, k): v for k, v in feeds.items()})


def open_roles(
    chain: ChainSpec,
    specs: Mapping[str, ComponentSpec],
    prefs: Preferences,
    threads: int,
    cache: dict[str, tuple[Runner, str]] | None = None,
) -> tuple[dict[str, Infer], dict[str, str]]:
    """Per role, the runner of its component's first choice that can run here, and per component the series it
    took (`backend.variant@device`); Unavailable lists every reason if one cannot run. `cache` keeps runners
    open between calls (a search tries many assignments)."""
    cache = {} if cache is None else cache
    runners, chosen, missing = {}, {}, []
    for role, b in chain.roles.items():
        reasons = []
        for choice in prefs[b.component]:
            key = f"{b.component}:{choice.key}:{choice.artifact}"
            try:
                if key not in cache:
                    marker = read_json(choice.marker) if choice.marker else None
                    cache[key] = backends.open_series(specs[b.component], choice.key, choice.artifact, marker, threads)
                runner, chosen[b.component] = cache[key]
                runners[role] = renamed(runner, b.names)
                break
            except Unavailable as e:
                reasons.append(f"{choice.key}: {e}")
        else:
            missing.append(f"{b.component} ({'; '.join(reasons)})")
    if missing:
        raise Unavailable("no runnable backend for " + ", ".join(missing))
    return runners, chosen


def remembered(
    spec: ChainSpec, runners: Mapping[str, Infer], chosen: Mapping[str, str], memo: dict[tuple, list]
) -> dict[str, Infer]:
    """The runners, answering feeds they have seen from `memo` (keyed by component, series and the bytes of the
    feeds under the component's own names, as `answers` reads them): a search scores many assignments that share
    most of their components, on the same files, so a component whose series and inputs did not change is not run
    again. For scoring only, never for timing."""

    def one(role: str, runner: Infer) -> Infer:
        component, names = spec.roles[role].component, spec.roles[role].names

        def run(feeds):
            key = (component, chosen[component], feeds_key({names.get(k, k): v for k, v in feeds.items()}))
            if key not in memo:
                memo[key] = runner(feeds)
            return memo[key]

        return run

    return {role: one(role, r) for role, r in runners.items()}


def answers(memo: dict[tuple, list], component: str, series: str) -> dict[str, list]:
    """What `remembered` kept of one component's series: outputs by feeds key (core/samples.py `feeds_key`)."""
    return {key: out for (c, s, key), out in memo.items() if (c, s) == (component, series)}
