"""The run's whole config checked at once: every component's spec, plus the checks that
span components or name backends (so the Snakefile fails before any job, key named).

Kept apart from config.py, which every stage imports: the backend registry is needed
only here, and a stage's code hash should not depend on backends it never runs. (The
chain's own roles are the chain's to check: models/svc/chain.py.)
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ConfigError
from ..core.spec import ComponentSpec, component_spec
from ..runtimes import registry


def specs_from_config(config: dict[str, Any]) -> dict[tuple[str, str], ComponentSpec]:
    """Every component of every model, checked; raises ConfigError on the first bad one."""
    defaults = {
        "opset": config.get("export", {}).get("opset", 20),
        "max_input_bytes": int(config.get("limits", {}).get("max_input_mb", 1024)) << 20,
        "variants": config.get("variants"),
    }
    _check_backends(config.get("backends"))
    for model, mcfg in config["models"].items():
        _check_e2e(model, mcfg)
    return {
        (model, comp): component_spec(model, comp, ccfg, defaults)
        for model, mcfg in config["models"].items()
        for comp, ccfg in mcfg["components"].items()
    }


def _check_backends(names: list[str] | None) -> None:
    for name in names or []:
        if name not in registry.REGISTRY:
            raise ConfigError(f"backends: unknown backend '{name}' (one of {', '.join(registry.REGISTRY)})")
    if names is not None and registry.REFERENCE not in names:
        raise ConfigError(
            f"backends: must include {registry.REFERENCE}, the reference every speedup is measured against"
        )


def _check_e2e(model: str, mcfg: dict[str, Any]) -> None:
    """Assignments may only name components the model has, and backend.variant choices that exist."""
    e2e = mcfg.get("e2e")
    if not e2e:
        return
    known = set(mcfg["components"])
    for name, assignment in e2e.get("assignments", {}).items():
        for comp in set(assignment) - known - {"default"}:
            raise ConfigError(f"models.{model}.e2e.assignments.{name}.{comp}: no such component (or 'default')")
        for comp, prefs in assignment.items():
            for choice in [prefs] if isinstance(prefs, str) else prefs:
                try:
                    registry.parse_choice(choice)
                except ValueError as e:
                    raise ConfigError(f"models.{model}.e2e.assignments.{name}.{comp}: {e}") from None
