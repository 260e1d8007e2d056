"""The end-to-end chain on tiny real components and real speech: your own tensor names, calibration
samples from the chain, and fidelity against PyTorch fp32's reference run."""

import copy

import numpy as np
import pytest
from conftest import tiny_svc_config

from workflow_lib.core.errors import ConfigError
from workflow_lib.core.files import write_npz
from workflow_lib.core.spec import component_spec
from workflow_lib.models.svc import calibrate, chain, e2e, reference
from workflow_lib.plan.config import specs_from_config
from workflow_lib.stages.checkpoints import write_seeded


def _renamed_config(tmp_path):
    """The tiny demo, its content encoder's input called `spec` and the flow's noise `eps`, mapped in roles."""
    cfg = tiny_svc_config()
    model = cfg["models"]["svc_demo"]
    comps = model["components"]
    for name, c in comps.items():
        c["checkpoint"] = str(tmp_path / f"{name}.safetensors")
        write_seeded(c["class"], c["kwargs"], 1234, c["checkpoint"])
    comps["content_encoder"]["inputs"][0]["name"] = "spec"
    comps["flow_decoder"]["inputs"][0]["name"] = "eps"
    model["e2e"]["roles"]["content"] = {"component": "content_encoder", "inputs": {"mel": "spec"}}
    model["e2e"]["roles"]["flow"] = {"component": "flow_decoder", "inputs": {"z": "eps"}}
    model["e2e"].update(seconds=[1.0], inputs=model["e2e"]["inputs"][:1])
    del model["seed_checkpoints"]
    return cfg


def _specs(cfg):
    model = cfg["models"]["svc_demo"]
    return {c: component_spec("svc_demo", c, v) for c, v in model["components"].items()}


def test_chain_runs_with_your_own_tensor_names_and_pytorch_is_its_own_reference(tmp_path):
    cfg = _renamed_config(tmp_path)
    specs_from_config(cfg)
    chain.check_roles("svc_demo", cfg["models"]["svc_demo"])  # the mapping names inputs the components have
    specs, e2e_cfg = _specs(cfg), cfg["models"]["svc_demo"]["e2e"]
    arrays, record = reference.reference_run(specs, e2e_cfg, threads=1)
    assert record["inputs"][0]["sample_rate"] == 16000 and not record["synthetic"] and record["points"] == ["1s"]
    write_npz(tmp_path / "ref.npz", arrays)
    choices = {c: ["pytorch.fp32"] for c in specs}
    artifacts = {c: {"pytorch.fp32": {"artifact": s.checkpoint, "marker": None}} for c, s in specs.items()}
    timing = {"threads": 1, "warmup": 0, "min_iterations": 2, "max_iterations": 2}
    rows, samples, fidelity, audio = e2e.run_e2e(
        specs, e2e_cfg, str(tmp_path / "ref.npz"), "mine", choices, artifacts, timing
    )
    assert [r["point"] for r in rows] == ["1s"] and rows[0]["snr_db"] == float("inf")  # PyTorch fp32 is the reference
    assert rows[0]["copy_pesq"] == pytest.approx(4.64, abs=0.01) and rows[0]["stop"] == "max_iterations"
    assert audio.size == arrays["speech/0/audio"].size // 256 * 256 > 0
    assert list(fidelity["points"]["1s"]["stages"]) == list(chain.STAGES)


def test_calibration_samples_are_what_the_chain_feeds_each_component(tmp_path):
    cfg = _renamed_config(tmp_path)
    specs, e2e_cfg = _specs(cfg), cfg["models"]["svc_demo"]["e2e"]
    flow, _, ran = calibrate.capture(specs, e2e_cfg, "flow_decoder", threads=1)
    assert ran == ["content_encoder", "pitch_encoder"]  # only what is upstream of the flow runs
    assert set(flow[0]) == {"eps", "mask", "cond"} and flow[0]["cond"].shape[1] == 704  # its own input names
    vocoder, _, ran = calibrate.capture(specs, e2e_cfg, "vocoder", threads=1)
    assert ran == [] and vocoder[0]["mel"].shape[:2] == (1, 80)  # real speech's log-mel, nothing upstream
    assert vocoder[0]["mel"].min() >= np.log(1e-5) - 1e-6


def test_an_unmapped_tensor_name_is_a_config_error(tmp_path):
    cfg = _renamed_config(tmp_path)
    broken = copy.deepcopy(cfg)
    broken["models"]["svc_demo"]["e2e"]["roles"]["content"] = "content_encoder"
    with pytest.raises(
        ConfigError,
        match=r"roles.content: the chain feeds 'mel' as 'mel', but content_encoder has "
        r"inputs \['spec'\]; map it with inputs: \{mel: <name>\}",
    ):
        chain.check_roles("svc_demo", broken["models"]["svc_demo"])
