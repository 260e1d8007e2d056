"""The end-to-end chain on tiny real components: your own tensor names, fidelity against PyTorch fp32."""

import copy

import pytest

from conftest import tiny_svc_config
from workflow_lib import e2e
from workflow_lib.components import write_seeded_checkpoint
from workflow_lib.config import component_spec
from workflow_lib.errors import ConfigError
from workflow_lib.runconfig import specs_from_config


def _renamed_config(tmp_path):
    """The tiny demo, its content encoder's input called `spec` and the flow's noise `eps`, mapped in roles."""
    cfg = tiny_svc_config()
    model = cfg["models"]["svc_demo"]
    comps = model["components"]
    for name, c in comps.items():
        c["checkpoint"] = str(tmp_path / f"{name}.safetensors")
        write_seeded_checkpoint(c["class"], c["kwargs"], 1234, c["checkpoint"])
    comps["content_encoder"]["inputs"][0]["name"] = "spec"
    comps["flow_decoder"]["inputs"][0]["name"] = "eps"
    model["e2e"]["roles"]["content"] = {"component": "content_encoder", "inputs": {"mel": "spec"}}
    model["e2e"]["roles"]["flow"] = {"component": "flow_decoder", "inputs": {"z": "eps"}}
    model["e2e"].update(seconds=[0.5], warmup=0, iterations=1)
    del model["seed_checkpoints"]
    return cfg


def test_chain_runs_with_your_own_tensor_names(tmp_path):
    cfg = _renamed_config(tmp_path)
    specs_from_config(cfg)  # the mapping names inputs the components have
    model = cfg["models"]["svc_demo"]
    specs = {c: component_spec("svc_demo", c, v) for c, v in model["components"].items()}
    choices = {c: ["pytorch.fp32"] for c in specs}
    artifacts = {c: {"pytorch.fp32": {"artifact": s.checkpoint, "marker": None}} for c, s in specs.items()}
    rows, samples, record = e2e.run_e2e(specs, model["e2e"], "mine", choices, artifacts, {"threads": 1})
    assert [r["point"] for r in rows] == ["0.5s"] and rows[0]["fidelity"] == "passed"
    assert rows[0]["snr_db"] == float("inf")  # PyTorch fp32 is its own reference
    assert record["audio"].shape[-1] == record["reference_audio"].shape[-1] > 0


def test_an_unmapped_tensor_name_is_a_config_error(tmp_path):
    cfg = _renamed_config(tmp_path)
    broken = copy.deepcopy(cfg)
    broken["models"]["svc_demo"]["e2e"]["roles"]["content"] = "content_encoder"
    with pytest.raises(ConfigError, match=r"roles.content: the chain feeds 'mel' as 'mel', but content_encoder has "
                                          r"inputs \['spec'\]; map it with inputs: \{mel: <name>\}"):
        specs_from_config(broken)
