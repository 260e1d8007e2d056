"""What every chain stage does with a plug-in: load it, map its roles onto the model's components,
open runners for an assignment, run it on files, score it per file against PyTorch fp32's run, judge
the gates on the worst file, and time it.

The reference (`Reference`) is PyTorch fp32's run of the chain on every file it is judged on,
with the conditioning every assignment shares and the timing inputs: the chain stages read it
instead of running PyTorch again.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, Unavailable
from ..core.files import read_json, read_npz
from ..core.gates import judge
from ..core.spec import ComponentSpec, InputSpec, spec_from_json
from ..core.splits import SPLITS, Splits, from_config
from ..core.timing import Policy, measure
from ..runtimes import registry as backends
from ..runtimes.runner import Runner
from .protocol import Chain, Infer, Item, Outputs

# artifacts[component][series] = {"artifact": path, "marker": path or None}
Artifacts = dict[str, dict[str, dict[str, str | None]]]
Roles = dict[str, tuple[str, dict[str, str]]]  # role -> (component, chain's name -> the component's input name)


def plugin_class(module: str) -> type[Chain]:
    """The `CHAIN` class of a plug-in module, imported by name (the config names it)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"chain.plugin: cannot import '{module}' ({e}); install the package that holds it or set PYTHONPATH"
        ) from None
    cls = getattr(mod, "CHAIN", None)
    if not (isinstance(cls, type) and issubclass(cls, Chain)):
        raise ConfigError(f"chain.plugin: '{module}' defines no CHAIN (a workflow_lib.chains.protocol.Chain subclass)")
    return cls


def load(chain_cfg: Mapping[str, Any]) -> Chain:
    """The model's chain plug-in, with its settings (defaults filled in at config time)."""
    return plugin_class(chain_cfg["plugin"])(dict(chain_cfg.get("settings") or {}))


def parse_roles(chain: type[Chain] | Chain, roles: Mapping[str, Any]) -> Roles:
    """role -> (component, {chain's input name: the component's input name}) from chain.roles."""
    out = {}
    for role, entry in roles.items():
        component, names = (entry, {}) if isinstance(entry, str) else (entry["component"], entry.get("inputs", {}))
        out[role] = (component, {n: names.get(n, n) for n in chain.role_inputs[role]})
    return out


def check_roles(chain: type[Chain], model: str, mcfg: Mapping[str, Any]) -> None:
    """Every role of the plug-in is mapped to a component the model has, fed under names it accepts."""
    where = f"models.{model}.chain.roles"
    given, known = dict(mcfg["chain"].get("roles") or {}), set(mcfg["components"])
    for role in chain.roles:
        if role not in given:
            raise ConfigError(f"{where}: the chain needs a component for role '{role}' (roles: {list(chain.roles)})")
    for role in given:
        if role not in chain.roles:
            raise ConfigError(f"{where}.{role}: the chain has no such role (roles: {list(chain.roles)})")
    for role, (comp, names) in parse_roles(chain, given).items():
        if comp not in known:
            raise ConfigError(f"{where}.{role}: no component '{comp}' (components: {sorted(known)})")
        inputs = {i["name"] for i in mcfg["components"][comp]["inputs"]}
        for chain_name, name in names.items():
            if name not in inputs:
                raise ConfigError(
                    f"{where}.{role}: the chain feeds '{chain_name}' as '{name}', but "
                    f"{comp} has inputs {sorted(inputs)}; map it with inputs: {{{chain_name}: <name>}}"
                )


def renamed(runner: Infer, names: Mapping[str, str]) -> Infer:
    """The runner fed under the chain's names, passing the component's own names on."""
    if all(k == v for k, v in names.items()):
        return runner
    return lambda feeds: runner({names.get(k, k): v for k, v in feeds.items()})


def role_inputs(specs: Mapping[str, ComponentSpec], roles: Roles) -> dict[str, dict[str, InputSpec]]:
    """Each role's input specs under the chain's names (what a plug-in's conditioning sizes its tensors by), for
    the roles whose component is among `specs`."""
    out = {}
    for role, (comp, names) in roles.items():
        if comp not in specs:
            continue
        own = {i.name: i for i in specs[comp].inputs}
        out[role] = {chain_name: own[name] for chain_name, name in names.items() if name in own}
    return out


META = "meta.json"  # the roles of the files, as a byte array inside the reference .npz


def splits_of(chain_cfg: Mapping[str, Any]) -> Splits:
    """The roles of the chain's files; with none, the plug-in's synthetic item plays every role."""
    splits = from_config(chain_cfg.get("inputs"))
    return splits if splits.files else Splits(splits.scheme, (), {s: (0,) for s in SPLITS})


def file_name(splits: Splits, index: int) -> str:
    return Path(splits.files[index]).name if splits.files else "synthetic"


def meta_array(splits: Splits) -> np.ndarray:
    return np.frombuffer(json.dumps({"splits": splits.to_json()}, sort_keys=True).encode(), dtype=np.uint8)


def read_items(chain: Chain, splits: Splits) -> list[Item]:
    """Every file as an item, in the splits' order; the plug-in's synthetic item when there is none."""
    return [chain.read(f) for f in splits.files] if splits.files else [chain.synthetic()]


def judged_files(splits: Splits) -> list[int]:
    """The files the reference covers: those of the search and evaluation roles (every file under
    leave-one-out); with no files, the synthetic item."""
    if not splits.files:
        return [0]
    return sorted(set(splits.of("search")) | set(splits.of("evaluation")))


@dataclass
class Reference:
    """PyTorch fp32's run (stages/chain_reference.py): per judged file its item and outputs; the
    conditioning; the timing input per length; the roles of the files."""

    items: dict[int, Item]
    outputs: dict[int, Outputs]
    extra: dict[str, np.ndarray]
    timing: dict[str, Item]
    splits: Splits

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        a = read_npz(path)
        items: dict[int, Item] = {}
        outputs: dict[int, Outputs] = {}
        timing: dict[str, Item] = {}
        extra: dict[str, np.ndarray] = {}
        for key, value in a.items():
            head, _, rest = key.partition("/")
            if head == "file":
                index, kind, name = rest.split("/", 2)
                (items if kind == "item" else outputs).setdefault(int(index), {})[name] = value
            elif head == "timing":
                point, _, name = rest.partition("/")
                timing.setdefault(point, {})[name] = value
            elif head == "extra":
                extra[rest] = value
        meta = json.loads(a[META].tobytes())
        return cls(
            items,
            outputs,
            extra,
            dict(sorted(timing.items(), key=lambda kv: float(kv[0].rstrip("s")))),
            Splits.from_json(meta["splits"]),
        )

    def files(self, split: str) -> list[int]:
        """The judged files of a role (every judged file under leave-one-out, where each is its own fold)."""
        return [i for i in self.splits.of(split) if i in self.items]

    def name(self, index: int) -> str:
        return file_name(self.splits, index)


def resolve(
    specs: Mapping[str, ComponentSpec],
    roles: Roles,
    preferences: Mapping[str, list[str]],
    artifacts: Artifacts,
    threads: int,
    cache: dict[str, tuple[Runner, str]] | None = None,
) -> tuple[dict[str, Infer], dict[str, str]]:
    """Per role, the first series that can run here; Unavailable lists every reason if one cannot.
    `cache` keeps opened runners between calls (the chain search tries many assignments)."""
    cache = {} if cache is None else cache
    runners, chosen, missing = {}, {}, []
    for role, (comp, names) in roles.items():
        reasons = []
        for series in preferences[comp]:
            key = f"{comp}:{series}"
            try:
                if key not in cache:
                    entry = artifacts[comp][series]
                    marker = read_json(entry["marker"]) if entry.get("marker") else None
                    cache[key] = backends.open_series(specs[comp], series, entry["artifact"], marker, threads)
                runner, chosen[comp] = cache[key]
                runners[role] = renamed(runner, names)
                break
            except Unavailable as e:
                reasons.append(f"{series}: {e}")
        else:
            missing.append(f"{comp} ({'; '.join(reasons)})")
    if missing:
        raise Unavailable("no runnable backend for " + ", ".join(missing))
    return runners, chosen


def run_item(chain: Chain, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray]) -> Outputs:
    """The chain's outputs on one item, with the side outputs it scores."""
    outputs, _ = chain.forward(runners, item, extra)
    return {**outputs, **chain.side_outputs(runners, item, extra)}


def score_files(
    chain: Chain, runners: Mapping[str, Infer], ref: Reference, files: list[int]
) -> tuple[list[dict[str, Any]], dict[int, Outputs]]:
    """Per file: its scores per group and its stage errors against PyTorch fp32's run; and the outputs."""
    records, outputs = [], {}
    for i in files:
        out = run_item(chain, runners, ref.items[i], ref.extra)
        expected = ref.outputs[i]
        final = chain.stages[-1]
        if out[final].shape != expected[final].shape:
            raise Unavailable(
                f"the chain returned {final} of shape {list(out[final].shape)} where PyTorch gives "
                f"{list(expected[final].shape)} ({ref.name(i)})"
            )
        records.append(
            {
                "file": ref.name(i),
                "index": i,
                "scores": chain.score(expected, out, ref.items[i]),
                "stages": chain.stage_errors(expected, out),
            }
        )
        outputs[i] = out
    return records, outputs


def verdict(chain: Chain, records: list[dict[str, Any]], gates: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Every gate of every group applied per file, the worst file deciding."""
    per_group = {
        group: judge(
            [r["scores"].get(group, {}) for r in records], dict(gates.get(group) or {}), [r["file"] for r in records]
        )
        for group in chain.metrics
    }
    failed = sorted(g for g, v in per_group.items() if v["status"] == "failed")
    return {
        "status": "failed" if failed else "passed",
        "reason": "; ".join(f"{g}: {per_group[g]['reason']}" for g in failed),
        "failed": failed,
        "groups": per_group,
        "gates": {f"{g}.{k}": v for g, rec in per_group.items() for k, v in rec["gates"].items()},
        "files": [r["file"] for r in records],
    }


def worst_scores(chain: Chain, records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per `<group>_<metric>`, the worst file's value (the lowest; LSD, distances and max errors: the highest)."""
    out: dict[str, float | None] = {}
    for group, metrics in chain.metrics.items():
        for metric in metrics:
            values = [r["scores"].get(group, {}).get(metric) for r in records]
            values = [v for v in values if v is not None]
            higher_is_worse = metric.startswith(("lsd", "max_")) or metric.endswith("_distance")
            out[f"{group}_{metric}"] = (max if higher_is_worse else min)(values) if values else None
    return out


def worst_stages(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage, the lowest SNR over the files: what the culprit search reads."""
    stages: dict[str, dict[str, float]] = {}
    for r in records:
        for s, m in r["stages"].items():
            if s not in stages or m["snr_db"] < stages[s]["snr_db"]:
                stages[s] = m
    return stages


def time_chain(
    chain: Chain, runners: Mapping[str, Infer], item: Item, extra: Mapping[str, np.ndarray], policy: Policy
) -> tuple[list[float], dict[str, Any]]:
    """Latency of the whole chain (its features included) on one item, timed like the components."""
    return measure(lambda: chain.forward(runners, item, extra), lambda: None, policy)


def describe_inputs(splits: Splits, hashes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The roles as the manifest and the report record them: per role its files with their sha256."""
    record = splits.to_json()
    record["roles"] = {
        s: [{"file": splits.files[i], "sha256": (hashes or {}).get(splits.files[i])} for i in splits.of(s)]
        for s in SPLITS
    }
    return record


def chain_step(
    chain_cfg: dict[str, Any],
    specs: dict[str, str],
    preferences: dict[str, list[str]],
    artifacts: Artifacts,
    reference: str,
    point: str,
    threads: int,
) -> tuple[Callable[[], Any], Callable[[], None]]:
    """One assignment's chain, warm, on the timing input of `point`, as (step, sync): what paired timing runs
    (analysis/pairing.py)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    chain = load(chain_cfg)
    roles = parse_roles(chain, chain_cfg["roles"])
    components = {c: spec_from_json(s) for c, s in specs.items()}
    ref = Reference.load(reference)
    runners, _ = resolve(components, roles, preferences, artifacts, threads)
    item = ref.timing[point]
    return lambda: chain.forward(runners, item, ref.extra), lambda: None
