"""Chains as plug-ins: the demo's voice conversion and a second chain of another shape, through the generic
chain stages (reference, sample sets, scoring, timing) on tiny real components and real speech; and the
rules never naming a model."""

import copy
import json
import re

import numpy as np
import pytest
from conftest import REPO, ROLES, sensor_model, tiny_svc_config

from workflow_lib.chains.assignment import Choice
from workflow_lib.chains.spec import KEYS, ChainSpec
from workflow_lib.core.errors import ConfigError
from workflow_lib.core.files import write_npz
from workflow_lib.core.spec import component_spec
from workflow_lib.stages import chain_bench, chain_calibration, chain_reference
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
    model["chain"]["roles"]["content"] = {"component": "content_encoder", "inputs": {"mel": "spec"}}
    model["chain"]["roles"]["flow"] = {"component": "flow_decoder", "inputs": {"z": "eps"}}
    model["chain"].update(seconds=[1.0], settings={})
    del model["seed_checkpoints"]
    return cfg


def _specs(model_cfg, model="svc_demo"):
    return {c: component_spec(model, c, v) for c, v in model_cfg["components"].items()}


def _chain(model, name="svc_demo"):
    return ChainSpec.from_config(name, model["chain"], model["components"])


def _run(tmp_path, specs, chain, series="pytorch.fp32"):
    arrays, record, listen = chain_reference.reference_run(specs, chain, threads=1)
    write_npz(tmp_path / "ref.npz", arrays)
    prefs = {c: [Choice(series, s.checkpoint)] for c, s in specs.items()}
    timing = {"warmup": 0, "min_iterations": 2, "max_iterations": 2}
    ref = str(tmp_path / "ref.npz")
    rows, _, fidelity, outputs = chain_bench.run_chain(specs, chain, ref, "mine", prefs, timing, 1)
    return record, listen, rows, fidelity, outputs


def test_the_demo_chain_runs_with_your_own_tensor_names_and_pytorch_is_its_own_reference(tmp_path):
    cfg = _renamed_config(tmp_path)
    model = cfg["models"]["svc_demo"]
    record, listen, rows, fidelity, outputs = _run(tmp_path, _specs(model), _chain(model))
    assert record["splits"]["scheme"] == "disjoint" and not record["synthetic"] and record["points"] == ["1s"]
    assert record["judged"] == ["arctic_axb_a0004.wav", "libri_5703_a.wav"]  # search and evaluation files only
    row = rows[0]
    assert row["point"] == "1s" and row["files"] == 1 and row["stop"] == "max_iterations"
    assert row["chain_snr_db"] == float("inf") and row["chain_pesq"] == pytest.approx(4.64, abs=0.01)
    assert row["copy_synthesis_stoi"] == pytest.approx(1.0)
    assert fidelity["files"][0]["file"] == "libri_5703_a.wav"  # judged on the evaluation file
    assert list(fidelity["stages"]) == ["content", "pitch", "latent", "mel", "audio"]
    gate = fidelity["verdict"]["gates"]["chain.max_lsd_db"]
    assert gate["worst"] == 0.0 and gate["file"] == "libri_5703_a.wav" and gate["margin"] == 40.0
    assert outputs["copy"].size > 0  # what the plug-in says a listener hears: the copy synthesis
    assert listen["input/audio"].size // 256 * 256 == listen["reference/copy"].size  # whole hops resynthesised


def test_sample_sets_are_what_the_chain_feeds_each_component_in_every_role(tmp_path):
    cfg = _renamed_config(tmp_path)
    model = cfg["models"]["svc_demo"]
    specs, chain = _specs(model), _chain(model)
    flow, ran = chain_calibration.capture(specs, chain, "flow_decoder", threads=1)
    assert ran == ["content_encoder", "pitch_encoder"]  # only what is upstream of the flow runs
    assert len(flow) == 3  # one sample per file: calibration, search, evaluation
    assert set(flow[0]) == {"eps", "mask", "cond"} and flow[0]["cond"].shape[1] == 704  # its own input names
    vocoder, ran = chain_calibration.capture(specs, chain, "vocoder", threads=1)
    assert ran == [] and vocoder[0]["mel"].shape[:2] == (1, 80)  # real speech's log-mel, nothing upstream
    assert vocoder[0]["mel"].min() >= np.log(1e-5) - 1e-6


def test_the_reference_run_reads_what_the_sample_sets_computed_and_writes_the_same_arrays(tmp_path):
    """The chain's PyTorch run answers a call from a component's sample set where it holds those input bytes (the
    demo's copy synthesis is its vocoder's sample set): the same reference, with fewer PyTorch calls."""
    cfg = _renamed_config(tmp_path)
    model = cfg["models"]["svc_demo"]
    specs, chain = _specs(model), _chain(model)
    stored = {}
    for c in specs:
        stored[c] = str(tmp_path / f"{c}.samples.npz")
        argv = ["--specs", json.dumps({k: s.to_json() for k, s in specs.items()}), "--chain", chain.slice(*KEYS)]
        chain_calibration.main([*argv, "--component", c, "--out", stored[c], "--threads", "1"])
    run, record, _ = chain_reference.reference_run(specs, chain, threads=1)
    read, record_read, _ = chain_reference.reference_run(specs, chain, threads=1, stored=stored)
    assert run.keys() == read.keys() and all(np.array_equal(run[k], read[k]) for k in run)
    calls = record_read["pytorch_calls"]
    assert calls["vocoder"] == {"stored": 2, "run": 2}  # copy synthesis read, the converted mel's run, per file
    assert all(calls[c] == {"stored": 2, "run": 0} for c in specs if c != "vocoder")  # what upstream captured
    assert all(v["stored"] == 0 for v in record["pytorch_calls"].values())


def test_an_unmapped_tensor_name_is_a_config_error(tmp_path):
    broken = copy.deepcopy(_renamed_config(tmp_path))["models"]["svc_demo"]
    broken["chain"]["roles"]["content"] = "content_encoder"
    with pytest.raises(
        ConfigError,
        match=r"roles.content: the chain feeds 'mel' as 'mel', but content_encoder has "
        r"inputs \['spec'\]; map it with inputs: \{mel: <name>\}",
    ):
        _chain(broken)


def denoise_model(tmp_path, inputs=None):
    """The second chain: a tiny denoiser and a tiny HiFi-GAN, seeded, their chain a plug-in from the tests."""
    vocoder = tiny_svc_config()["models"]["svc_demo"]["components"]["vocoder"]
    vocoder.pop("gates")
    components = {
        "denoiser": {
            "class": "tinymodels.TinyDenoiser",
            "kwargs": {"n_mels": 80, "hidden": 16},
            "checkpoint": str(tmp_path / "denoiser.safetensors"),
            "inputs": [{"name": "mel", "shape": ["batch", 80, "time"], "generator": {"kind": "normal", "mean": -5.0}}],
            "outputs": ["clean"],
            "dims": {"batch": {"min": 1, "opt": 1, "max": 1}, "time": {"min": 8, "opt": 24, "max": 48}},
        },
        "vocoder": {**vocoder, "checkpoint": str(tmp_path / "vocoder.safetensors")},
    }
    for c in components.values():
        write_seeded(c["class"], c["kwargs"], 7, c["checkpoint"])
    chain = {
        "plugin": "tiny_denoise_chain",
        "inputs": inputs or copy.deepcopy(ROLES),
        "seconds": [0.5],
        "settings": {},
        "gates": {"output": {"max_lsd_db": 40.0}},
        "search": {"seconds": 0.5, "max_tries": 12},
        "roles": {"denoiser": "denoiser", "vocoder": "vocoder"},
        "assignments": {"pytorch": {"default": "pytorch.fp32"}, "int8": {"default": "onnxruntime.int8"}},
    }
    return {"components": components, "chain": chain}


def test_a_second_chain_of_another_shape_runs_through_the_same_stages(tmp_path):
    model = denoise_model(tmp_path)
    specs = {c: component_spec("denoise", c, v) for c, v in model["components"].items()}
    chain = _chain(model, "denoise")
    vocoder, ran = chain_calibration.capture(specs, chain, "vocoder", threads=1)
    assert ran == ["denoiser"] and vocoder[0]["mel"].shape[:2] == (1, 80)  # the protocol's default upstream
    record, heard, rows, fidelity, _ = _run(tmp_path, specs, chain)
    assert rows[0]["output_snr_db"] == float("inf") and rows[0]["fidelity"] == "passed"
    assert fidelity["metrics"] == {"output": ["snr_db", "lsd_db"]} and list(fidelity["stages"]) == ["mel", "audio"]


def test_generic_rules_and_modules_never_name_a_model_or_its_metrics():
    """The coupling to a model used to sit in .smk files, where the import contract cannot see it; and the SVC
    chain's judgement (PESQ, STOI, copy synthesis) sat in generic modules. Only the metric registry names the
    audio metrics (as it names every metric), and only the audio package computes them."""
    model = r"models[./]svc|workflow_lib\.models"
    audio = r"pesq|stoi|copy_synthesis|vocoder|hifigan|log.?mel"
    offenders = []
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(model, line) or re.search(audio, line, re.I):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    for path in sorted((REPO / "workflow_lib").rglob("*.py")):
        rel = path.relative_to(REPO / "workflow_lib")
        if rel.parts[0] in ("models", "audio"):
            continue  # the models themselves, and the library for audio plug-ins
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(model, line) or (rel.as_posix() != "analysis/metrics.py" and re.search(audio, line, re.I)):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_a_chain_that_is_not_audio_runs_through_the_same_stages(tmp_path):
    """The sensor chain (tests/tiny_sensor_chain.py): its reference, its components' sample sets and its chain
    scoring, with nothing audio anywhere on the way."""
    model = sensor_model(tmp_path)
    specs = {c: component_spec("sensor", c, v) for c, v in model["components"].items()}
    chain = ChainSpec.from_config("sensor", model["chain"], model["components"])
    head, ran = chain_calibration.capture(specs, chain, "head", threads=1)
    assert ran == ["encoder"] and head[0]["x"].shape[:2] == (1, 8)
    record, listen, rows, fidelity, _ = _run(tmp_path, specs, chain)
    assert (
        not record["synthetic"]
        and record["points"] == ["2s"]
        and listen == {k: v for k, v in listen.items() if k.startswith(("input/", "reference/"))}
    )
    assert rows[0]["prediction_snr_db"] == float("inf") and rows[0]["fidelity"] == "passed"
    assert fidelity["metrics"] == {"prediction": ["snr_db", "max_rel"]}
    assert list(fidelity["stages"]) == ["latent", "pred"]


def test_media_of_nothing_streamed_is_an_empty_file_and_a_stream_is_the_plugins_own(tmp_path):
    """When no chunk size keeps up nothing is streamed to listen to: the media job writes an empty file (the report
    shows no player) instead of failing the run."""
    from workflow_lib.stages import media

    cfg = tiny_svc_config()["models"]["svc_demo"]
    spec = ChainSpec.from_config("svc_demo", cfg["chain"], cfg["components"])
    write_npz(tmp_path / "none.npz", {})
    assert media.encode(spec, str(tmp_path / "none.npz"), "stream", str(tmp_path / "none.wav")) == 0
    assert (tmp_path / "none.wav").read_bytes() == b""
    write_npz(tmp_path / "some.npz", {"stream/audio": np.zeros(22050, np.float32)})
    assert media.encode(spec, str(tmp_path / "some.npz"), "stream", str(tmp_path / "some.wav")) > 22050 * 2
