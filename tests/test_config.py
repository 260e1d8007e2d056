"""Config checks: the schema, and what a schema cannot say, named by key before any job runs."""

import pytest
from conftest import REPO, snakemake, tiny_byo_component, write_config

from workflow_lib.chains.spec import ChainSpec
from workflow_lib.core.errors import ConfigError
from workflow_lib.core.spec import component_spec
from workflow_lib.plan import config as plan
from workflow_lib.plan.config import specs_from_config


def test_demo_config_is_valid_and_complete():
    import yaml

    specs = specs_from_config(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    assert sorted(c for _, c in specs) == [
        "content_encoder",
        "flow_decoder",
        "mel_projection",
        "pitch_encoder",
        "vocoder",
    ]
    flow = specs[("svc_demo", "flow_decoder")]
    assert flow.method == "inverse" and flow.shapes("max")["cond"] == (2, 704, 512)
    vocoder = specs[("svc_demo", "vocoder")]
    assert vocoder.checkpoint == "results/packages/svc_demo/vocoder.pth.tar"  # the real HiFi-GAN, placed in the run
    assert vocoder.variants == ("fp32", "fp16", "bf16", "int8")
    assert vocoder.gate("int8") == {"min_pesq": 4.0, "min_stoi": 0.98}


def test_inconsistent_dim_range_names_the_key():
    cfg = tiny_byo_component("x.safetensors")
    cfg["dims"]["time"] = {"min": 64, "opt": 16, "max": 32}
    with pytest.raises(
        ConfigError,
        match=r"models\.m\.components\.c\.dims\.time: need 1 <= min <= opt <= max, got min=64 opt=16 max=32",
    ):
        component_spec("m", "c", cfg)


def test_shape_naming_unknown_dim_is_rejected():
    cfg = tiny_byo_component("x.safetensors")
    cfg["inputs"][0]["shape"] = ["batch", 8, "frames"]
    with pytest.raises(ConfigError, match="symbolic dim 'frames' has no entry under dims"):
        component_spec("m", "c", cfg)


@pytest.mark.parametrize("name", ["..", "../evil", "/abs", "a/b", "x y"])
def test_names_that_escape_results_are_rejected(name):
    with pytest.raises(ConfigError, match="must match"):
        component_spec(name, "c", tiny_byo_component("x.safetensors"))
    with pytest.raises(ConfigError, match="must match"):
        component_spec("m", name, tiny_byo_component("x.safetensors"))


def test_absurd_profile_is_rejected_with_estimated_memory():
    cfg = tiny_byo_component("x.safetensors")
    cfg["dims"]["time"] = {"min": 4, "opt": 16, "max": 10**7}
    with pytest.raises(ConfigError, match=r"max profile needs 610 MiB of input tensors alone \(limit 100 MiB"):
        component_spec("m", "c", cfg, {"max_input_bytes": 100 << 20})


def _byo_config(tmp_path, **component_overrides):
    comp = {**tiny_byo_component(str(tmp_path / "w.safetensors")), **component_overrides}
    return {"models": {"mine": {"components": {"net": comp}}}}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["models"]["mine"]["components"]["net"].update(exporter="torchscript"), "exporter"),
        (lambda c: c["models"]["mine"]["components"]["net"].update(colour="blue"), "colour"),
        (lambda c: c["models"]["mine"]["components"]["net"]["dims"]["time"].update(min="four"), "four"),
        (lambda c: c.update(variants=["FP8!"]), "FP8!"),
        (lambda c: c["models"].update({"../up": c["models"]["mine"]}), "../up"),
    ],
)
def test_schema_violations_give_readable_errors(workdir, mutate, expected):
    cfg = _byo_config(workdir)
    mutate(cfg)
    write_config(workdir, cfg)
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "validating config file" in err.lower() or "invalid config" in err.lower(), err[-2000:]
    assert expected in err
    assert not (workdir / "results").exists()


def test_semantic_error_surfaces_before_any_job(workdir):
    cfg = _byo_config(workdir)
    cfg["models"]["mine"]["components"]["net"]["dims"]["time"] = {"min": 64, "opt": 16, "max": 32}
    write_config(workdir, cfg)
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert (
        "invalid config: models.mine.components.net.dims.time: need 1 <= min <= opt <= max" in proc.stdout + proc.stderr
    )


def _demo():
    import yaml

    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_chain_roles_must_name_components_and_the_plugins_roles():
    cfg = _demo()
    model = cfg["models"]["svc_demo"]
    model["chain"]["roles"]["vocoder"] = "hifigan"
    with pytest.raises(ConfigError, match=r"models.svc_demo.chain.roles.vocoder: no component 'hifigan'"):
        ChainSpec.from_config("svc_demo", model["chain"], model["components"])
    del model["chain"]["roles"]["vocoder"]
    with pytest.raises(ConfigError, match=r"chain.roles: the chain needs a component for role 'vocoder'"):
        ChainSpec.from_config("svc_demo", model["chain"], model["components"])


def test_a_null_or_wrong_sided_gate_is_an_error_not_a_gate_switched_off():
    """The review's holes: `min_pesq: null` planned the run with the gate off; so did a bound on the wrong side."""
    for gates, expected in (
        ({"min_pesq": None}, r"gates.copy_synthesis.min_pesq: None is not of type 'number'"),
        ({"max_pesq": 4.0}, r"gates.copy_synthesis.max_pesq: higher pesq is better, so its gate is a min_"),
    ):
        cfg = _demo()
        cfg["models"]["svc_demo"]["chain"]["gates"]["copy_synthesis"] = gates
        with pytest.raises(ConfigError, match=expected):
            plan.check(cfg, REPO / "config/schema.yaml")


def test_an_older_e2e_section_beside_chain_is_an_error_not_silently_ignored():
    cfg = _demo()
    cfg["models"]["svc_demo"]["e2e"] = {"fidelity": {"copy_synthesis": {"minimum_pesq": 4.0}}}
    with pytest.raises(ConfigError, match=r"models.svc_demo: both `e2e` \(the older name\) and `chain`"):
        plan.normalise(cfg)


def test_a_typo_in_a_gate_key_is_an_error_naming_the_key_and_the_allowed_ones(workdir):
    """`minimum_pesq` used to pass validation and switch the gate off; it must fail before any job runs."""
    cfg = _demo()
    cfg["models"]["svc_demo"]["chain"]["gates"]["copy_synthesis"] = {"minimum_pesq": 4}
    write_config(workdir, cfg)
    proc = snakemake(workdir, "-n", check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not (workdir / "results").exists()
    assert "invalid config: models.svc_demo.chain.gates.copy_synthesis.minimum_pesq: not a gate" in err, err[-3000:]
    assert "min_pesq" in err and "max_lsd_db" in err  # the allowed keys are listed
    cfg["models"]["svc_demo"]["chain"]["gates"] = {"copy_synthesis": {"min_pesq": 4}, "vibes": {"min_pesq": 1}}
    with pytest.raises(ConfigError, match=r"chain.gates.vibes: the chain scores no such group"):
        plan.check(cfg, REPO / "config/schema.yaml")


def test_a_file_playing_two_roles_is_rejected_by_content(tmp_path):
    import shutil

    cfg = _demo()
    twin = tmp_path / "same_as_aew_a0001.wav"
    shutil.copyfile(REPO / "config/audio/arctic_aew_a0001.wav", twin)
    cfg["models"]["svc_demo"]["chain"]["inputs"]["evaluation"].append(str(twin))
    with pytest.raises(
        ConfigError, match=r"same_as_aew_a0001.wav' \(evaluation\) has the same content as .*arctic_aew_a0001"
    ):
        plan.check(cfg, REPO / "config/schema.yaml")


def test_older_keys_still_work_with_a_deprecation_message():
    cfg = _demo()
    model = cfg["models"]["svc_demo"]
    chain = model.pop("chain")
    chain["fidelity"] = chain.pop("gates")
    chain.update(chain.pop("settings"))
    chain["inputs"] = [*chain["inputs"]["calibration"], *chain["inputs"]["search"]]
    model["e2e"] = chain
    model["components"]["vocoder"]["tolerance"] = model["components"]["vocoder"].pop("gates")
    messages = plan.normalise(cfg)
    assert any("e2e is now `chain`" in m for m in messages) and any("tolerance is now `gates`" in m for m in messages)
    assert any("dealt out to the calibration, search and evaluation roles" in m for m in messages)
    specs, chains = plan.check(cfg, REPO / "config/schema.yaml")
    assert specs[("svc_demo", "vocoder")].gate("int8") == {"min_pesq": 4.0, "min_stoi": 0.98}
    assert chains["svc_demo"].chain.mel.hop == 256 and chains["svc_demo"].gates["chain"] == {"max_lsd_db": 6.0}


def test_a_variants_settings_are_checked_against_its_stages_schema():
    cfg = _demo()
    cfg["quantize"]["calibrate_method"] = "Vibes"
    with pytest.raises(ConfigError, match=r"quantize.calibrate_method: 'Vibes' is not one of"):
        plan.check(cfg, REPO / "config/schema.yaml")
    cfg = _demo()
    del cfg["quantize"]["search_seconds"]
    plan.check(cfg, REPO / "config/schema.yaml")
    assert cfg["quantize"]["search_seconds"] == 900  # the stage's default, filled in


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            {"variants": ["int4"]},
            r"variants: 'int4' is not a graph variant one can run \(one of fp32, fp16, bf16, int8\)",
        ),
        ({"variants": ["export"]}, r"variants: 'export' is not a graph variant one can run"),
        (
            {"gates": {"int8": {"atol": 0.1, "rtol": 0.1}}},
            r"gates.int8.atol: not a gate \(allowed: min_snr_db, max_max_abs, max_max_rel\)",
        ),
        ({"gates": {"int8": {"min_pesqq": 4}}}, r"gates.int8.min_pesqq: not a gate"),
        ({"gates": {"int8": {"min_pesq": 4}}}, r"gates.int8.min_pesq: not a gate"),  # a tensor output has no PESQ
        (
            {"gates": {"fp16": {"min_snr_db": 30}}},
            r"gates.fp16: an elementwise gate needs exactly atol and rtol",
        ),
        ({"gates": {"int4": {"atol": 1, "rtol": 1}}}, r"gates.int4: no such graph variant"),
        ({"gates": {"bf16": {"atol": 1, "rtol": 1}}}, r"gates.bf16.atol: not a gate"),  # bf16 is judged by fidelity
        (
            {"checkpoint": "pkg:no_such_package_xyz/w.pth"},
            r"checkpoint: 'pkg:no_such_package_xyz/w.pth': package "
            r"'no_such_package_xyz' is not installed",
        ),
    ],
)
def test_variant_gate_and_package_checkpoint_errors_name_the_key(extra, expected):
    with pytest.raises(ConfigError, match=rf"models\.m\.components\.c\.{expected}"):
        specs_from_config({"models": {"m": {"components": {"c": {**tiny_byo_component("x.safetensors"), **extra}}}}})


def test_each_stage_gets_only_the_keys_it_reads():
    """A gate change reruns the stages of that variant, never the export (which reads the fp32 gate only)."""
    import json

    spec = component_spec("m", "c", tiny_byo_component("x.safetensors"))
    changed = component_spec(
        "m", "c", {**tiny_byo_component("x.safetensors"), "gates": {"fp16": {"atol": 0.5, "rtol": 0.5}}}
    )
    assert spec.slice("export", "fp32") == changed.slice("export", "fp32")
    assert spec.slice("fp16", "fp16") != changed.slice("fp16", "fp16")
    assert json.loads(spec.slice("engine")) == {
        "model": "m",
        "component": "c",
        "inputs": spec.raw["inputs"],
        "dims": spec.raw["dims"],
    }


def test_the_configured_tensorrt_flavour_and_targets_reach_the_probe(workdir):
    """The probe once read its section under a key it was not passed under, so it always saw the defaults."""
    import json

    cfg = _byo_config(workdir)
    cfg["backends"] = ["pytorch", "tensorrt"]
    cfg["tensorrt"] = {"flavour": "tensorrt", "compute_capabilities": ["SM75"]}
    write_config(workdir, cfg)
    snakemake(workdir, "results/host.json")
    host = json.loads((workdir / "results/host.json").read_text())
    assert host["probed_with"]["tensorrt"] == {"flavour": "tensorrt", "compute_capabilities": ["SM75"]}
    # datacenter TensorRT cannot be installed here: the probe says so, rather than falling back to TensorRT-RTX
    assert "tensorrt: No module named 'tensorrt'" in host["runs"]["tensorrt.fp32"]["reason"]


def test_a_decision_point_that_is_not_timed_is_rejected_naming_both_keys():
    cfg = _demo()
    cfg["bench"]["points"] = ["min", "max"]
    with pytest.raises(ConfigError, match=r"deploy.point: 'opt' is not timed \(bench.points: min, max\)"):
        plan.check(cfg, REPO / "config/schema.yaml")
