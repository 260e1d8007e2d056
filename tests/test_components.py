import pickle

import pytest
import torch
from safetensors.torch import save_file

from conftest import tiny_byo_component
from workflow_lib.components import load_component, read_state_dict
from workflow_lib.errors import CheckpointError
from workflow_lib.config import component_spec
from tinymodels import TinyConv


def _spec(path, **extra):
    return component_spec("mine", "net", tiny_byo_component(str(path), **extra))


def _reference_state():
    torch.manual_seed(0)
    return TinyConv().state_dict()


def _same_weights(module, state):
    return all(torch.equal(module.state_dict()[k], v) for k, v in state.items())


def test_byo_safetensors(tmp_path):
    state = _reference_state()
    save_file(dict(state), str(tmp_path / "w.safetensors"))
    assert _same_weights(load_component(_spec(tmp_path / "w.safetensors")), state)


def test_byo_pt_with_key_and_prefix(tmp_path):
    state = _reference_state()
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")
    spec = _spec(tmp_path / "w.pt", state_dict_key="model", strip_prefix="module.")
    assert _same_weights(load_component(spec), state)


def test_missing_state_dict_key_lists_what_is_there(tmp_path):
    torch.save({"epoch": 3, "model": dict(_reference_state())}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"no key 'weights' \(state_dict_key\); top-level keys: \['epoch', 'model'\]"):
        load_component(_spec(tmp_path / "w.pth", state_dict_key="weights"))


def test_non_strict_loading_tolerates_missing_keys(tmp_path):
    state = dict(_reference_state())
    del state["net.2.bias"]
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): net.2.bias"):
        load_component(_spec(tmp_path / "w.safetensors"))
    assert _same_weights(load_component(_spec(tmp_path / "w.safetensors", strict=False)), state)


def test_shape_mismatch_is_listed(tmp_path):
    torch.manual_seed(0)
    save_file(TinyConv(hidden=32).state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match=r"does not fit tinymodels.TinyConv: shape mismatch \(3\): net.0.weight: checkpoint \(32, 8, 3\) vs module \(16, 8, 3\)"):
        load_component(_spec(tmp_path / "w.safetensors"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope.safetensors"):
        load_component(_spec(tmp_path / "nope.safetensors"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_checkpoint(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = _reference_state()
    save_file(dict(state), str(path)) if suffix == ".safetensors" else torch.save(state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"w\.(safetensors|pt): not a readable"):
        read_state_dict(path)


class _Payload:
    """Unpickling this calls Path.touch on a marker file: code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"net.0.weight": _Payload(str(marker))}, f)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused to load: the pickle holds objects beyond tensors"):
        load_component(_spec(tmp_path / "evil.pt"))
    assert not marker.exists()


def test_method_wrapper_exposes_inverse():
    from workflow_lib.models.svc_demo import FlowDecoder
    from workflow_lib.components import MethodWrapper
    torch.manual_seed(0)
    flow = FlowDecoder(channels=8, hidden=8, kernel=3, layers=2, flows=2, cond_channels=4).eval()
    z, mask, cond = torch.randn(1, 8, 10), torch.ones(1, 1, 10), torch.randn(1, 4, 10)
    with torch.no_grad():
        x = MethodWrapper(flow, "inverse")(z, mask, cond)
        assert torch.allclose(flow(x, mask, cond), z, atol=1e-5)
    with pytest.raises(CheckpointError, match="no method 'backwards'"):
        MethodWrapper(flow, "backwards")
