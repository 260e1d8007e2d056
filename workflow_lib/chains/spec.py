"""A model's chain, as the config states it, typed: built once from the config (plan/config.py checks it
there) and handed to each stage as the slice of it that stage reads, like `ComponentSpec`.

The plug-in (`plugin`, its forward pass) and its scoring (`scoring`) are modules named by the config;
`roles` maps each role of the plug-in's dataflow to a component, and each name the chain feeds that
role under to the component's own input name. A stage receives `slice(...)` as JSON (a rule's param:
a change to a key the stage does not read never reruns it) and reads it back with `from_json`.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError
from ..core.spec import ComponentSpec, InputSpec
from ..core.splits import SPLITS, Splits, from_config
from .protocol import Chain, Scorer

# What a stage may read of a chain, besides the model and the plug-in (always there).
KEYS = (
    "scoring",
    "settings",
    "roles",
    "inputs",
    "seconds",
    "stream",
    "gates",
    "gating",
    "search",
    "assignments",
    "safe",
)


def _load(module: str, name: str, base: type, key: str) -> type:
    """The class `name` of a plug-in module the config names under `chain.<key>`."""
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"chain.{key}: cannot import '{module}' ({e}); install the package that holds it or set PYTHONPATH"
        ) from None
    cls = getattr(mod, name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"chain.{key}: '{module}' defines no {name} (a {base.__module__}.{base.__name__} subclass)")
    return cls


def plugin_class(module: str) -> type[Chain]:
    return _load(module, "CHAIN", Chain, "plugin")


def scorer_class(module: str) -> type[Scorer]:
    return _load(module, "SCORER", Scorer, "scoring")


@dataclass(frozen=True)
class Binding:
    """The component a role runs, and per name the chain feeds it under, the component's input name."""

    component: str
    names: Mapping[str, str]


@dataclass(frozen=True)
class ChainSpec:
    model: str
    plugin: str
    raw: dict[str, Any] = field(compare=False, repr=False)  # the config section (what slices are cut from)

    @classmethod
    def from_config(cls, model: str, section: Mapping[str, Any], components: Mapping[str, Any] | None = None):
        """The chain of `models.<model>.chain`; with the model's `components`, every role is checked against
        them (a component that exists, fed under names it has)."""
        spec = cls(model, section["plugin"], dict(section))
        chain, where = spec.chain_class, f"models.{model}.chain.roles"
        given = dict(section.get("roles") or {})
        for role in chain.roles:
            if role not in given:
                raise ConfigError(
                    f"{where}: the chain needs a component for role '{role}' (roles: {list(chain.roles)})"
                )
        for role in given:
            if role not in chain.roles:
                raise ConfigError(f"{where}.{role}: the chain has no such role (roles: {list(chain.roles)})")
        for role, b in spec.roles.items():
            if components is None:
                continue
            if b.component not in components:
                raise ConfigError(f"{where}.{role}: no component '{b.component}' (components: {sorted(components)})")
            inputs = {i["name"] for i in components[b.component]["inputs"]}
            for chain_name, name in b.names.items():
                if name not in inputs:
                    raise ConfigError(
                        f"{where}.{role}: the chain feeds '{chain_name}' as '{name}', but {b.component} has inputs "
                        f"{sorted(inputs)}; map it with inputs: {{{chain_name}: <name>}}"
                    )
        return spec

    def slice(self, *keys: str) -> str:
        """The spec as JSON with only `keys` (and the model and plug-in): a rule's param."""
        unknown = set(keys) - set(KEYS)
        if unknown:
            raise ValueError(f"no chain keys {sorted(unknown)} (keys: {', '.join(KEYS)})")
        keep = {k: self.raw[k] for k in keys if k in self.raw}
        return json.dumps({"model": self.model, "plugin": self.plugin, **keep}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> ChainSpec:
        """The spec (or the slice of it) a rule passed, or a bundle's manifest recorded."""
        raw = dict(json.loads(text) if isinstance(text, str) else text)
        return cls(raw.pop("model", ""), raw["plugin"], raw)

    # --- the plug-in ----------------------------------------------------------------------------------
    @property
    def scoring(self) -> str:
        """The module that judges the chain (its `SCORER`): the plug-in module itself unless the config names one."""
        return self.raw.get("scoring") or self.plugin

    @functools.cached_property
    def chain_class(self) -> type[Chain]:
        return plugin_class(self.plugin)

    @functools.cached_property
    def chain(self) -> Chain:
        """The plug-in's forward pass, with its settings."""
        return self.chain_class(dict(self.raw.get("settings") or {}))

    @functools.cached_property
    def scorer(self) -> Scorer:
        return scorer_class(self.scoring)(self.chain)

    # --- what the config says -------------------------------------------------------------------------
    @functools.cached_property
    def roles(self) -> dict[str, Binding]:
        """Per role (those the config maps), its component and the names it is fed under."""
        out = {}
        for role, entry in (self.raw.get("roles") or {}).items():
            component, names = (entry, {}) if isinstance(entry, str) else (entry["component"], entry.get("inputs", {}))
            feeds = self.chain_class.role_inputs.get(role, ())
            out[role] = Binding(component, {n: names.get(n, n) for n in feeds})
        return out

    def role_of(self, component: str) -> str:
        return next(r for r, b in self.roles.items() if b.component == component)

    def components(self) -> list[str]:
        return [b.component for b in self.roles.values()]

    def upstream(self, component: str) -> list[str]:
        """The components whose PyTorch runs produce a component's sample set (the roles upstream of its own)."""
        return [self.roles[r].component for r in self.chain.upstream(self.role_of(component))]

    def role_inputs(self, specs: Mapping[str, ComponentSpec]) -> dict[str, dict[str, InputSpec]]:
        """Each role's input specs under the chain's names (what a plug-in's conditioning sizes its tensors by),
        for the roles whose component is among `specs`."""
        out = {}
        for role, b in self.roles.items():
            if b.component in specs:
                own = {i.name: i for i in specs[b.component].inputs}
                out[role] = {chain_name: own[name] for chain_name, name in b.names.items() if name in own}
        return out

    @functools.cached_property
    def splits(self) -> Splits:
        """The roles of the chain's files; with none, the plug-in's synthetic item plays every role."""
        splits = from_config(self.raw.get("inputs"))
        return splits if splits.files else Splits(splits.scheme, (), {s: (0,) for s in SPLITS})

    @property
    def seconds(self) -> list[float]:
        return [float(s) for s in self.raw.get("seconds") or []]

    @property
    def gates(self) -> dict[str, dict[str, float]]:
        return {g: dict(v or {}) for g, v in (self.raw.get("gates") or {}).items()}

    @property
    def search(self) -> dict[str, Any]:
        return dict(self.raw.get("search") or {})

    @property
    def stream(self) -> dict[str, Any] | None:
        return self.raw.get("stream")

    @property
    def assignments(self) -> dict[str, dict[str, list[str]]]:
        """Per assignment and component (or `default`), the series it names, in preference order."""
        return {
            name: {c: [s] if isinstance(s, str) else list(s) for c, s in spec.items()}
            for name, spec in (self.raw.get("assignments") or {}).items()
        }

    def recorded(self) -> dict[str, Any]:
        """What a bundle's manifest keeps of the chain: enough to run it (from_json reads it back)."""
        return json.loads(self.slice("scoring", "settings", "roles", "stream"))
