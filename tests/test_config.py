
import pytest

from conftest import REPO, snakemake, tiny_byo_component, write_config
from workflow_lib.config import component_spec
from workflow_lib.runconfig import specs_from_config
from workflow_lib.errors import ConfigError


def test_demo_config_is_valid_and_complete():
    import yaml
    specs = specs_from_config(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    assert sorted(c for _, c in specs) == ["content_encoder", "flow_decoder", "mel_projection", "pitch_encoder", "vocoder"]
    flow = specs[("svc_demo", "flow_decoder")]
    assert flow.method == "inverse" and flow.shapes("max")["cond"] == (4, 704, 1024)


def test_inconsistent_dim_range_names_the_key():
    cfg = tiny_byo_component("x.safetensors")
    cfg["dims"]["time"] = {"min": 64, "opt": 16, "max": 32}
    with pytest.raises(ConfigError, match=r"models\.m\.components\.c\.dims\.time: need 1 <= min <= opt <= max, got min=64 opt=16 max=32"):
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


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["models"]["mine"]["components"]["net"].update(exporter="torchscript"), "exporter"),
    (lambda c: c["models"]["mine"]["components"]["net"].update(colour="blue"), "colour"),
    (lambda c: c["models"]["mine"]["components"]["net"]["dims"]["time"].update(min="four"), "four"),
    (lambda c: c.update(precisions=["int8"]), "int8"),
    (lambda c: c["models"].update({"../up": c["models"]["mine"]}), "../up"),
])
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
    assert "invalid config: models.mine.components.net.dims.time: need 1 <= min <= opt <= max" in proc.stdout + proc.stderr


def test_e2e_roles_must_name_components():
    import yaml
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["models"]["svc_demo"]["e2e"]["roles"]["vocoder"] = "hifigan"
    with pytest.raises(ConfigError, match=r"models.svc_demo.e2e.roles.vocoder: no component 'hifigan'"):
        specs_from_config(cfg)
