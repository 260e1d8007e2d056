"""Config checks: the schema, and what a schema cannot say, named by key before any job runs."""

import pytest
from conftest import REPO, snakemake, tiny_byo_component, write_config

from workflow_lib.core.errors import ConfigError
from workflow_lib.core.spec import component_spec
from workflow_lib.models.svc.chain import check_roles
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
    assert vocoder.variants == ("fp32", "fp16", "int8") and vocoder.gate("int8") == {"min_pesq": 4.0, "min_stoi": 0.98}


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


def test_e2e_roles_must_name_components():
    import yaml

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["models"]["svc_demo"]["e2e"]["roles"]["vocoder"] = "hifigan"
    with pytest.raises(ConfigError, match=r"models.svc_demo.e2e.roles.vocoder: no component 'hifigan'"):
        check_roles("svc_demo", cfg["models"]["svc_demo"])


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"variants": ["int4"]}, r"variants: 'int4' is not a graph variant one can run \(one of fp32, fp16, int8\)"),
        ({"variants": ["export"]}, r"variants: 'export' is not a graph variant one can run"),
        (
            {"tolerance": {"int8": {"atol": 0.1, "rtol": 0.1}}},
            r"tolerance.int8: a fidelity gate takes min_<metric>/max_<metric>",
        ),
        (
            {"tolerance": {"fp16": {"min_snr_db": 30}}},
            r"tolerance.fp16: an elementwise gate needs exactly atol and rtol",
        ),
        ({"tolerance": {"bf16": {"atol": 1, "rtol": 1}}}, r"tolerance.bf16: no such graph variant"),
        (
            {"checkpoint": "pkg:no_such_package_xyz/w.pth"},
            r"checkpoint: 'pkg:no_such_package_xyz/w.pth': package "
            r"'no_such_package_xyz' is not installed",
        ),
    ],
)
def test_variant_gate_and_package_checkpoint_errors_name_the_key(extra, expected):
    with pytest.raises(ConfigError, match=rf"models\.m\.components\.c\.{expected}"):
        component_spec("m", "c", {**tiny_byo_component("x.safetensors"), **extra})


def test_each_stage_gets_only_the_keys_it_reads():
    """A gate change reruns the stages of that variant, never the export (which reads the fp32 gate only)."""
    import json

    spec = component_spec("m", "c", tiny_byo_component("x.safetensors"))
    changed = component_spec(
        "m", "c", {**tiny_byo_component("x.safetensors"), "tolerance": {"fp16": {"atol": 0.5, "rtol": 0.5}}}
    )
    assert spec.slice("export", "fp32") == changed.slice("export", "fp32")
    assert spec.slice("fp16", "fp16") != changed.slice("fp16", "fp16")
    assert json.loads(spec.slice("engine")) == {
        "model": "m",
        "component": "c",
        "inputs": spec.raw["inputs"],
        "dims": spec.raw["dims"],
    }
