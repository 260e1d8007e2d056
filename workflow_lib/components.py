"""Instantiate a component's nn.Module and load its checkpoint, without trusting the file.

Config import paths are trusted code (the user wrote them); checkpoint files are not:
.pt/.pth go through `torch.load(weights_only=True)`, which refuses pickles that would
construct arbitrary objects, and safetensors carry no code at all.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .config import ComponentSpec
from .errors import CheckpointError

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


def read_state_dict(path: str | Path, key: str | None = None, strip_prefix: str = "",
                    allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            obj: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    else:
        if allow_unsafe_pickle:
            log.warning("allow_unsafe_pickle is set: %s is unpickled with weights_only=False and "
                        "CAN EXECUTE ARBITRARY CODE. Use only for files you produced yourself.", path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"{path}: refused to load: the pickle holds objects beyond tensors and plain containers "
                f"(weights_only=True). Convert it to .safetensors, or see README 'Safety'. Detail: "
                f"{str(e).splitlines()[0]}") from e
        except (RuntimeError, EOFError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0]})") from e
    if key:
        if not isinstance(obj, dict) or key not in obj:
            found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{path}: no key '{key}' (state_dict_key); top-level keys: {found}")
        obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a mapping of tensor names to tensors; set state_dict_key "
                              f"to the entry that holds the state dict")
    if strip_prefix:
        obj = {k[len(strip_prefix):] if k.startswith(strip_prefix) else k: v for k, v in obj.items()}
    return obj


def _mismatch(module: nn.Module, state: dict[str, torch.Tensor], strict: bool) -> str | None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs module {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    problems = []
    if shapes:
        problems.append(f"shape mismatch ({len(shapes)}): {'; '.join(shapes[:4])}")
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:5])}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:5])}")
    return " | ".join(problems) or None


def _weight_norm_compat(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map old `weight_g`/`weight_v` keys onto `parametrizations.weight.original0/1`."""
    own = module.state_dict()
    out = {}
    for k, v in state.items():
        for old, new in (("weight_g", "parametrizations.weight.original0"), ("weight_v", "parametrizations.weight.original1")):
            if k.endswith(old) and k not in own and k[: -len(old)] + new in own:
                k = k[: -len(old)] + new
        out[k] = v
    return out


def load_component(spec: ComponentSpec) -> nn.Module:
    """The module with its checkpoint loaded, parametrizations folded, in eval mode."""
    module = import_class(spec.cls)(**spec.kwargs)
    state = _weight_norm_compat(module, read_state_dict(
        spec.checkpoint, spec.state_dict_key, spec.strip_prefix, spec.allow_unsafe_pickle))
    problem = _mismatch(module, state, spec.strict)
    if problem:
        raise CheckpointError(f"{spec.label}: {spec.checkpoint} does not fit {spec.cls}: {problem}")
    module.load_state_dict(state, strict=spec.strict)
    fold_parametrizations(module)
    return module.eval()


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


def exportable(spec: ComponentSpec) -> nn.Module:
    module = load_component(spec)
    return module if spec.method == "forward" else MethodWrapper(module, spec.method).eval()


def write_seeded_checkpoint(cls: str, kwargs: dict[str, Any], seed: int, out: str | Path) -> dict[str, Any]:
    """Deterministic initial weights for a component (the demo model ships no download)."""
    from safetensors.torch import save_file

    from .io import atomic_path

    torch.manual_seed(seed)
    module = import_class(cls)(**kwargs)
    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(state, str(tmp))
    return {"parameters": int(sum(v.numel() for v in state.values())), "tensors": len(state)}
