import pickle

import pytest
import torch
from conftest import tiny_byo_component
from safetensors.torch import save_file
from tinymodels import TinyConv

from workflow_lib.core.errors import CheckpointError
from workflow_lib.core.spec import component_spec
from workflow_lib.runtimes.loader import load_component, read_state_dict


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
    with pytest.raises(
        CheckpointError,
        match=r"no key 'weights' \(state_dict_key\): 'weights' is not at top level; keys there: \['epoch', 'model'\]",
    ):
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
    with pytest.raises(
        CheckpointError,
        match=r"does not fit tinymodels.TinyConv: shape mismatch \(3\): "
        r"net.0.weight: checkpoint \(32, 8, 3\) vs module \(16, 8, 3\)",
    ):
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
    from workflow_lib.models.svc.modules import FlowDecoder
    from workflow_lib.runtimes.loader import MethodWrapper

    torch.manual_seed(0)
    flow = FlowDecoder(channels=8, hidden=8, kernel=3, layers=2, flows=2, cond_channels=4).eval()
    z, mask, cond = torch.randn(1, 8, 10), torch.ones(1, 1, 10), torch.randn(1, 4, 10)
    with torch.no_grad():
        x = MethodWrapper(flow, "inverse")(z, mask, cond)
        assert torch.allclose(flow(x, mask, cond), z, atol=1e-5)
    with pytest.raises(CheckpointError, match="no method 'backwards'"):
        MethodWrapper(flow, "backwards")


class _Hparams:
    """Stands for the config objects Lightning pickles beside the weights."""

    def __init__(self):
        self.hidden = 16


def _lightning_checkpoint(path):
    """A Lightning-style file: nested state dict, two submodules, a pickled hparams object."""
    state = _reference_state()
    nested = {f"model.net_a.{k}": v for k, v in state.items()} | {"model.net_b.w": torch.zeros(3)}
    torch.save({"epoch": 3, "hyper_parameters": _Hparams(), "checkpoint": {"state_dict": nested}}, path)
    return state


@pytest.mark.parametrize("suffix", [".ckpt", ".bin"])
def test_lightning_and_hf_suffixes_with_dotted_key_and_prefix(tmp_path, suffix):
    state = _reference_state()
    torch.save(
        {
            "checkpoint": {
                "state_dict": {f"model.net_a.{k}": v for k, v in state.items()} | {"model.net_b.w": torch.zeros(3)}
            }
        },
        tmp_path / f"w{suffix}",
    )
    spec = _spec(tmp_path / f"w{suffix}", state_dict_key="checkpoint.state_dict", select_prefix="model.net_a.")
    assert _same_weights(load_component(spec), state)  # net_b's keys are outside the prefix, not "unexpected"


def test_pickled_objects_are_refused_with_the_conversion_command_and_plain_text(tmp_path):
    _lightning_checkpoint(tmp_path / "w.ckpt")
    with pytest.raises(CheckpointError) as info:
        load_component(_spec(tmp_path / "w.ckpt", state_dict_key="checkpoint.state_dict", select_prefix="model.net_a."))
    assert "python -m workflow_lib.tools.convert --trust-pickle" in str(info.value) and "\x1b" not in str(info.value)


def test_convert_command_makes_a_loadable_safetensors_with_provenance(tmp_path):
    from workflow_lib.core.files import read_json, sha256_file
    from workflow_lib.tools import convert

    state = _lightning_checkpoint(tmp_path / "w.ckpt")
    with pytest.raises(SystemExit):  # without --trust-pickle nothing is unpickled
        convert.main([str(tmp_path / "w.ckpt"), str(tmp_path / "a.safetensors"), "--key", "checkpoint.state_dict"])
    assert not (tmp_path / "a.safetensors").exists()
    convert.main(
        [
            "--trust-pickle",
            str(tmp_path / "w.ckpt"),
            str(tmp_path / "a.safetensors"),
            "--key",
            "checkpoint.state_dict",
            "--select-prefix",
            "model.net_a.",
        ]
    )
    assert _same_weights(load_component(_spec(tmp_path / "a.safetensors")), state)
    side = read_json(tmp_path / "a.safetensors.json")
    assert side["source_sha256"] == sha256_file(tmp_path / "w.ckpt") and side["tensors"] == len(state)


def test_non_strict_load_is_recorded_and_most_missing_fails(tmp_path):
    from workflow_lib.runtimes.loader import load

    state = dict(_reference_state())
    del state["net.2.bias"]
    save_file(state | {"extra.w": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    _, report = load(_spec(tmp_path / "w.safetensors", strict=False))
    assert report.missing == ["net.2.bias"] and report.unexpected == ["extra.w"] and report.loaded == 3
    save_file({"net.0.bias": state["net.0.bias"], "other.w": torch.zeros(2)}, str(tmp_path / "few.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"only 1 of the module's 4 tensors are in the checkpoint \(strict: false"
    ):
        load(_spec(tmp_path / "few.safetensors", strict=False))


def test_stage_errors_name_the_component_and_the_inputs(tmp_path, monkeypatch):
    """A class typo and inputs that do not fit the module: both say which component, the latter which shapes."""
    import json

    from workflow_lib.stages import export

    monkeypatch.chdir(tmp_path)
    save_file(dict(_reference_state()), str(tmp_path / "w.safetensors"))
    cases = [
        ({"class": "tinymodels.TinyConvv"}, r"mine/net: cannot import class 'tinymodels.TinyConvv'"),
        (
            {"inputs": [{"name": "x", "shape": ["batch", 9, "time"]}]},
            r"mine/net: tinymodels.TinyConv.forward does not accept the inputs built from the config "
            r"\{'x': \[2, 9, 16\]\} \(dtypes \['float32'\]\): RuntimeError",
        ),
    ]
    for override, expected in cases:
        spec = component_spec("mine", "net", tiny_byo_component(str(tmp_path / "w.safetensors"), **override))
        with pytest.raises(SystemExit):
            export.main(["--spec", spec.to_json(), "--out", str(tmp_path / "net.onnx")])
        record = json.loads((tmp_path / "results/failures/mine/net.export.json").read_text())
        assert __import__("re").search(expected, record["error"]), record["error"]
