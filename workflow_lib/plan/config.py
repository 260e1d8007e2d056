"""The run's whole config, checked at once before any job: older keys renamed (with a deprecation
message), the JSON schema assembled from config/schema.yaml and what the stages and chain plug-ins
declare, defaults filled in, and the checks a schema cannot make (so the Snakefile fails before
any job, key named).

The schema file describes the workflow's own sections. A graph variant with settings has its
section described by its stage (`SETTINGS_SCHEMA`, read without importing the stage:
core/declarations.py), and a chain's `settings` by its plug-in (`settings_schema`): adding
either needs no edit here or in the schema file. Gate keys are checked against the metrics
that exist (a component's fidelity gates: core/gates.py; a chain's: its plug-in's `metrics`),
so a typo cannot switch a gate off. A chain's input files must play disjoint roles, by content.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..analysis import metrics
from ..analysis.gates import gate_keys
from ..chains.spec import ChainSpec
from ..core import variants
from ..core.declarations import declared
from ..core.errors import ConfigError
from ..core.spec import ComponentSpec, component_spec
from ..core.splits import DISJOINT, check_disjoint, from_config
from ..runtimes import registry

# The older chain keys that are now the plug-in's settings.
_SETTINGS_KEYS = ("mel", "speaker_dim", "noise_scale", "seed")


def normalise(config: dict[str, Any]) -> list[str]:
    """Older keys renamed in place; one deprecation message per rename."""
    messages = []
    for model, mcfg in (config.get("models") or {}).items():
        for comp, ccfg in (mcfg.get("components") or {}).items():
            if "tolerance" in ccfg:
                ccfg.setdefault("gates", ccfg.pop("tolerance"))
                messages.append(f"models.{model}.components.{comp}.tolerance is now `gates` (same format)")
        if "e2e" in mcfg:
            if "chain" in mcfg:
                raise ConfigError(
                    f"models.{model}: both `e2e` (the older name) and `chain`; `e2e` would be ignored: move what it "
                    "holds under `chain` and drop it"
                )
            mcfg["chain"] = mcfg.pop("e2e")
            messages.append(f"models.{model}.e2e is now `chain`")
        chain = mcfg.get("chain")
        if not isinstance(chain, dict):
            continue
        where = f"models.{model}.chain"
        if "fidelity" in chain:
            if "gates" in chain:
                raise ConfigError(f"{where}: both `fidelity` (the older name) and `gates`; merge them into `gates`")
            chain["gates"] = chain.pop("fidelity")
            messages.append(f"{where}.fidelity is now `gates` (same format)")
        moved = [k for k in _SETTINGS_KEYS if k in chain]
        if moved:
            chain.setdefault("settings", {}).update({k: chain.pop(k) for k in moved})
            messages.append(f"{where}.{{{', '.join(moved)}}} are now under {where}.settings (the plug-in's own)")
        if isinstance(chain.get("inputs"), list) and chain["inputs"]:
            messages.append(
                f"{where}.inputs is a list: its files are dealt out to the calibration, search and evaluation roles "
                "in turn; give {calibration: [...], search: [...], evaluation: [...]} to choose them (by speaker)"
            )
    return messages


def schema(path: str | Path) -> dict[str, Any]:
    """config/schema.yaml with each variant's settings section (its stage's schema) and each chain's settings
    (its plug-in's schema) filled in."""
    doc = yaml.safe_load(Path(path).read_text())
    for v in variants.VARIANTS.values():
        if v.settings:
            doc["properties"][v.settings] = declared(v.stage, "SETTINGS_SCHEMA", {"type": "object", "default": {}})
    return doc


def _with_defaults(validator_class):
    """A validator that fills in `default`s of properties, as it validates (the jsonschema FAQ's recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate(instance: Any, doc: dict[str, Any], where: str) -> None:
    """Validate (defaults filled in); a ConfigError naming the key path of the first problem."""
    errors = sorted(Validator(doc).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in [where, *e.absolute_path] if p != "")
        raise ConfigError(f"{path or 'config'}: {e.message}")


def check(
    config: dict[str, Any], schema_path: str | Path
) -> tuple[dict[tuple[str, str], ComponentSpec], dict[str, ChainSpec]]:
    """The config normalised, validated with defaults, checked; every component's spec and every chain's."""
    validate(config, schema(schema_path), "")
    _check_backends(config.get("backends"))
    point, points = config["deploy"]["point"], config["bench"]["points"]
    if point not in points:
        raise ConfigError(
            f"deploy.point: '{point}' is not timed (bench.points: {', '.join(points)}); the decision reads it"
        )
    chains = {
        model: _check_chain(model, mcfg, config.get("gating") or {})
        for model, mcfg in config["models"].items()
        if mcfg.get("chain")
    }
    return specs_from_config(config), chains


def specs_from_config(config: dict[str, Any]) -> dict[tuple[str, str], ComponentSpec]:
    """Every component of every model, checked; raises ConfigError on the first bad one."""
    defaults = {
        "opset": config.get("export", {}).get("opset", 20),
        "max_input_bytes": int(config.get("limits", {}).get("max_input_mb", 1024)) << 20,
        "variants": config.get("variants"),
        "gating": config.get("gating"),
    }
    specs = {
        (model, comp): component_spec(model, comp, ccfg, defaults)
        for model, mcfg in config["models"].items()
        for comp, ccfg in mcfg["components"].items()
    }
    for spec in specs.values():
        _check_gates(spec)
    return specs


def _check_gates(spec: ComponentSpec) -> None:
    """A fidelity gate names metrics its output kind is scored by, each on its own side (analysis/gates.py)."""
    allowed = metrics.kind(spec.output_kind).metrics
    for name, gates in spec.raw.get("gates", {}).items():
        if variants.get(name).gate == "fidelity":
            problems = gate_keys(gates, allowed, f"models.{spec.model}.components.{spec.component}.gates.{name}")
            if problems:
                raise ConfigError(problems[0])


def _check_backends(names: list[str] | None) -> None:
    for name in names or []:
        if name not in registry.REGISTRY:
            raise ConfigError(f"backends: unknown backend '{name}' (one of {', '.join(registry.REGISTRY)})")
    if names is not None and registry.REFERENCE not in names:
        raise ConfigError(
            f"backends: must include {registry.REFERENCE}, the reference every speedup is measured against"
        )


def _check_chain(model: str, mcfg: dict[str, Any], gating: dict[str, Any]) -> ChainSpec:
    """The chain's spec: the plug-in and its scorer load; its settings, roles and gates are theirs; assignments
    name components and series that exist, as does the safe one; the input files play disjoint roles."""
    chain_cfg, where = mcfg["chain"], f"models.{model}.chain"
    chain_cfg["gating"] = {**gating, **(chain_cfg.get("gating") or {})}
    try:
        spec = ChainSpec.from_config(model, chain_cfg, mcfg["components"])
        validate(chain_cfg.setdefault("settings", {}), spec.chain_class.settings_schema, f"{where}.settings")
        scorer = spec.scorer
    except ConfigError as e:
        raise ConfigError(f"models.{model}.{e}" if str(e).startswith("chain.") else str(e)) from None
    for group, gates in spec.gates.items():
        if group not in scorer.metrics:
            raise ConfigError(f"{where}.gates.{group}: the chain scores no such group (groups: {list(scorer.metrics)})")
        problems = gate_keys(gates, scorer.metrics[group], f"{where}.gates.{group}")
        if problems:
            raise ConfigError(problems[0])
    known = set(mcfg["components"])
    for name, assignment in spec.assignments.items():
        for comp in set(assignment) - known - {"default"}:
            raise ConfigError(f"{where}.assignments.{name}.{comp}: no such component (or 'default')")
        for comp, prefs in assignment.items():
            for series in prefs:
                try:
                    registry.parse_series(series)
                except ValueError as e:
                    raise ConfigError(f"{where}.assignments.{name}.{comp}: {e}") from None
    safe = chain_cfg.get("safe")
    if safe is not None and safe not in spec.assignments:
        raise ConfigError(f"{where}.safe: '{safe}' is not one of the assignments ({', '.join(spec.assignments)})")
    splits = from_config(chain_cfg.get("inputs"))
    if splits.scheme != DISJOINT and splits.files:
        raise ConfigError(f"{where}.inputs: {len(splits.files)} file(s) cannot play three roles; give at least three")
    check_disjoint(splits, f"{where}.inputs")
    return spec
