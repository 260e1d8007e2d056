"""Instantiate a component's nn.Module and load its checkpoint into it, without trusting the file.

Config import paths are trusted code (the user wrote them); checkpoint files are not:
.pt/.pth go through `torch.load(weights_only=True)`, which refuses pickles that would
construct arbitrary objects, and safetensors carry no code at all.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..core.errors import CheckpointError, plain
from ..core.spec import CHECKPOINT_SUFFIXES, ComponentSpec

log = logging.getLogger(__name__)


def import_class(dotted: str) -> type[nn.Module]:
    module_name, _, attr = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise CheckpointError(f"cannot import class '{dotted}': {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"'{dotted}' is not an nn.Module subclass")
    return cls


CONVERT = "python -m workflow_lib.tools.convert --trust-pickle IN OUT.safetensors [--key ...] [--select-prefix ...]"
# Fewer than this share of the module's tensors found in the checkpoint means a wrong key or
# prefix, not a partial fine-tune: even a non-strict load refuses to export random weights.
MIN_LOADED = 0.5


def load_file(path: str | Path, allow_unsafe_pickle: bool = False) -> Any:
    """The checkpoint's top-level object; torch pickles only with weights_only=True unless allowed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = CHECKPOINT_SUFFIXES.get(path.suffix)
    if kind is None:
        raise CheckpointError(f"{path}: unknown checkpoint format (one of {', '.join(CHECKPOINT_SUFFIXES)})")
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    if allow_unsafe_pickle:
        log.warning(
            "allow_unsafe_pickle is set: %s is unpickled with weights_only=False and "
            "CAN EXECUTE ARBITRARY CODE. Use only for files you produced yourself.",
            path,
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: the pickle holds objects beyond tensors and plain containers "
            f"(weights_only=True), and unpickling those runs code from the file. If you trust the file, "
            f"convert it once to safetensors: {CONVERT} (see README 'Safety'). Detail: "
            f"{plain(str(e)).splitlines()[0]}"
        ) from e
    except ModuleNotFoundError as e:  # a trusted pickle naming classes this Python does not have
        raise CheckpointError(
            f"{path}: the pickle names objects from the module '{e.name}', which is not installed in this Python: "
            f"install the package that provides '{e.name}' (e.g. pip install {e.name.split('.')[0]}) and run this "
            f"again; only the tensors are kept"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({plain(str(e)).splitlines()[0]})") from e


def _keys(obj: Any) -> str:
    return str(sorted(obj)[:8]) if isinstance(obj, dict) else type(obj).__name__


def select(obj: Any, path: str | Path, key: str | None = None, select_prefix: str = "") -> dict[str, Any]:
    """The state dict inside a loaded checkpoint: at `key` (a dotted path into nested dicts), under `select_prefix`."""
    if key:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        else:
            for i, part in enumerate(key.split(".")):
                if not isinstance(obj, dict) or part not in obj:
                    where = ".".join(key.split(".")[:i]) or "top level"
                    raise CheckpointError(
                        f"{path}: no key '{key}' (state_dict_key): '{part}' is not at {where}; keys there: {_keys(obj)}"
                    )
                obj = obj[part]
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path}: expected a mapping of tensor names to tensors, found {type(obj).__name__}; "
            f"set state_dict_key to the entry that holds the state dict"
        )
    if select_prefix:
        selected = {k[len(select_prefix) :]: v for k, v in obj.items() if k.startswith(select_prefix)}
        if not selected:
            prefixes = sorted({k.split(".")[0] + "." for k in obj})[:8]
            raise CheckpointError(
                f"{path}: no key starts with select_prefix '{select_prefix}'; prefixes there: {prefixes}"
            )
        obj = selected
    return obj


def read_state_dict(
    path: str | Path,
    key: str | None = None,
    strip_prefix: str = "",
    allow_unsafe_pickle: bool = False,
    select_prefix: str = "",
) -> dict[str, torch.Tensor]:
    obj = select(load_file(path, allow_unsafe_pickle), path, key, select_prefix)
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        other = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))[:5]
        raise CheckpointError(
            f"{path}: expected a mapping of tensor names to tensors, but {other} are not tensors; "
            f"set state_dict_key to the entry that holds the state dict"
        )
    if strip_prefix:
        obj = {k[len(strip_prefix) :] if k.startswith(strip_prefix) else k: v for k, v in obj.items()}
    return obj


@dataclass
class LoadReport:
    """What a load matched: recorded in the export sidecar, so a non-strict load is never silent."""

    strict: bool
    loaded: int
    module_tensors: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def _mismatch(module: nn.Module, state: dict[str, torch.Tensor], strict: bool) -> tuple[str | None, LoadReport]:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs module {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    report = LoadReport(strict, len(own) - len(missing), len(own), missing, unexpected)
    problems = []
    if shapes:
        problems.append(f"shape mismatch ({len(shapes)}): {'; '.join(shapes[:4])}")
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:5])}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:5])}")
    if not strict and own and report.loaded < MIN_LOADED * len(own):
        problems.append(
            f"only {report.loaded} of the module's {len(own)} tensors are in the checkpoint (strict: false "
            f"allows some, not most: a wrong state_dict_key, select_prefix or strip_prefix?); "
            f"module keys look like {list(own)[:3]}, checkpoint keys like {list(state)[:3]}"
        )
    return " | ".join(problems) or None, report


def _weight_norm_compat(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map old `weight_g`/`weight_v` keys onto `parametrizations.weight.original0/1`."""
    own = module.state_dict()
    out = {}
    for k, v in state.items():
        for old, new in (
            ("weight_g", "parametrizations.weight.original0"),
            ("weight_v", "parametrizations.weight.original1"),
        ):
            if k.endswith(old) and k not in own and k[: -len(old)] + new in own:
                k = k[: -len(old)] + new
        out[k] = v
    return out


def load(spec: ComponentSpec) -> tuple[nn.Module, LoadReport]:
    """The module with its checkpoint loaded, parametrizations folded, in eval mode, and what matched."""
    try:
        module = import_class(spec.cls)(**spec.kwargs)
    except CheckpointError:
        raise
    except Exception as e:  # the user's constructor: any error, named with the kwargs that caused it
        raise CheckpointError(f"{spec.cls}(**{spec.kwargs}) failed: {type(e).__name__}: {plain(str(e))}") from e
    state = _weight_norm_compat(
        module,
        read_state_dict(
            spec.checkpoint, spec.state_dict_key, spec.strip_prefix, spec.allow_unsafe_pickle, spec.select_prefix
        ),
    )
    problem, report = _mismatch(module, state, spec.strict)
    if problem:
        raise CheckpointError(f"{spec.checkpoint} does not fit {spec.cls}: {problem}")
    if report.missing or report.unexpected:
        log.warning(
            "%s: non-strict load of %s: %d of %d module tensors loaded; missing %s; unexpected %s",
            spec.name,
            spec.checkpoint,
            report.loaded,
            report.module_tensors,
            report.missing[:10],
            report.unexpected[:10],
        )
    module.load_state_dict(state, strict=spec.strict)
    fold_parametrizations(module)
    return module.eval(), report


def load_component(spec: ComponentSpec) -> nn.Module:
    return load(spec)[0]


def fold_parametrizations(module: nn.Module) -> None:
    """Bake weight norm and other parametrizations into plain weights; exporters want plain graphs."""
    for m in module.modules():
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)


class MethodWrapper(nn.Module):
    """Exposes a method other than forward (a flow's `inverse`) as forward, for the exporter."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        if not callable(getattr(module, method, None)):
            raise CheckpointError(f"{type(module).__name__} has no method '{method}'")
        self.module, self.method = module, method

    def forward(self, *args):
        return getattr(self.module, self.method)(*args)


def with_method(module: nn.Module, spec: ComponentSpec) -> nn.Module:
    return module if spec.method == "forward" else MethodWrapper(module, spec.method).eval()


def exportable(spec: ComponentSpec) -> nn.Module:
    return with_method(load_component(spec), spec)
