"""The backend registry on a tiny real model: every backend runs or says why, OpenVINO parity,
torch.compile's compile time kept out of samples, and the deployment choice."""

import json

import numpy as np
import pytest

from conftest import export_tiny_conv
from workflow_lib import bench, deploy, openvino_ir, precision, validate
from workflow_lib.backends import registry
from workflow_lib.errors import ConfigError
from workflow_lib.io import write_json
from workflow_lib.paths import Layout, artifact
from workflow_lib.results import write_results
from workflow_lib.runconfig import specs_from_config
from workflow_lib.timing import stats

SETTINGS = {"warmup": 1, "min_iterations": 5, "max_seconds": 0.0, "max_iterations": 5, "threads": 1,
            "points": ["min", "opt", "max"]}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny conv model exported, simplified (none), converted to fp16 and to OpenVINO IR."""
    d = tmp_path_factory.mktemp("backends")
    spec = export_tiny_conv(d)
    precision.to_fp16(spec, d / "net.onnx", d / "net16.onnx")
    openvino_ir.convert(spec, d / "net.onnx", d / "net.fp32.xml")
    files = {("checkpoint", "fp32"): str(d / "w.safetensors"), ("checkpoint", "fp16"): str(d / "w.safetensors"),
             ("onnx", "fp32"): str(d / "net.onnx"), ("onnx", "fp16"): str(d / "net16.onnx"),
             ("openvino", "fp32"): str(d / "net.fp32.xml"), ("engine", "fp32"): str(d / "net.fp32.engine"),
             ("engine", "fp16"): str(d / "net.fp16.engine")}
    return spec, d, files


@pytest.mark.parametrize("backend, prec", registry.combos())
def test_every_backend_runs_and_matches_pytorch_or_says_why(artifacts, backend, prec):
    spec, d, files = artifacts
    b = registry.get(backend)
    path = files.get((b.artifact, prec))
    ok, why = b.available(prec, path)
    if not ok:
        assert why and isinstance(why, str)
        meta_marker = {"status": "passed"}  # even a passed marker cannot make it run here
        with pytest.raises(registry.Unavailable):
            bench.benchmark(spec, backend, prec, SETTINGS, path, meta_marker)
        return
    runner = b.open(spec, prec, path, 1)
    feeds = spec.make_inputs(spec.point("max"))
    ref = registry.get("pytorch").open(spec, "fp32", None, 1, "cpu")(feeds)
    got = runner(feeds)
    tol = spec.tolerance[prec]
    assert got[0].shape == ref[0].shape
    assert np.allclose(got[0], ref[0], atol=tol["atol"], rtol=tol["rtol"])


def test_bench_writes_no_rows_for_an_unvalidated_artifact(artifacts):
    """A marker that failed or was skipped keeps the backend out of the CSV, with its reason."""
    spec, d, files = artifacts
    for marker in ({"status": "failed", "reason": "max_abs 0.3"}, {"status": "skipped", "reason": "no GPU"}, None):
        with pytest.raises(registry.Unavailable, match="not validated here"):
            bench.benchmark(spec, "onnxruntime", "fp32", SETTINGS, files[("onnx", "fp32")], marker)


def test_openvino_ir_matches_pytorch_at_three_shapes(artifacts):
    spec, d, files = artifacts
    marker = validate.validate(spec, "openvino", "fp32", files[("openvino", "fp32")])
    assert marker["status"] == "passed", marker.get("reason")
    shapes = {p: v["shapes"]["x"] for p, v in marker["parity"]["points"].items()}
    assert shapes == {"min": [1, 8, 4], "opt": [1, 8, 16], "max": [2, 8, 32]}
    assert marker["runner"]["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert (d / "net.fp32.bin").stat().st_size > 0 and (d / "net.fp32.xml.json").is_file()


def test_torch_compile_samples_exclude_compile_time(artifacts):
    spec, d, files = artifacts
    rows, samples, runners = bench.benchmark(spec, "torch_compile", "fp32", SETTINGS, files[("checkpoint", "fp32")])
    record = runners["cpu"]
    assert record["parity"]["ok"] and set(record["parity"]["points"]) == {"min", "opt", "max"}
    compiles = record["runner"]["compiles"]
    assert compiles and record["runner"]["graphs"] >= 1  # recompiles, if any, are counted
    slowest_sample = max(max(v) for v in samples.values())
    assert slowest_sample < min(c["seconds"] for c in compiles) * 1e3 / 10  # compile is 10x+ any timed call
    assert [r["point"] for r in rows] == ["min", "opt", "max"] and all(r["iterations"] == 5 for r in rows)


def _fixture_csv(path, backend, prec, p50, component="net", device="cpu"):
    rng = np.random.default_rng(abs(hash((backend, prec))) % 2**32)
    ms = list(p50 * rng.uniform(0.97, 1.03, 60))
    row = {"model": "m", "component": component, "backend": backend, "precision": prec, "device": device,
           "label": f"{backend}.{prec}@cpu", "point": "opt", **stats(ms)}
    write_results([row], {(device, "opt"): ms}, path, {"status": "measured", "component": component,
                                                       "backend": backend, "precision": prec, "artifact": str(path)})
    return str(path)


def _fixture_marker(path, backend, prec, status, component="net"):
    write_json(path, {"model": "m", "component": component, "backend": backend, "precision": prec,
                      "status": status, **({"reason": f"{status} on purpose"} if status != "passed" else {})})
    return str(path)


def test_selection_never_picks_a_failed_or_skipped_marker(tmp_path):
    csvs = [_fixture_csv(tmp_path / "a.csv", "pytorch", "fp32", 10.0),
            _fixture_csv(tmp_path / "b.csv", "tensorrt", "fp16", 1.0),  # fastest, but skipped
            _fixture_csv(tmp_path / "c.csv", "onnxruntime", "fp16", 2.0),  # next, but failed
            _fixture_csv(tmp_path / "d.csv", "openvino", "fp32", 5.0)]  # validated, 2x
    markers = [_fixture_marker(tmp_path / "m1.json", "tensorrt", "fp16", "skipped"),
               _fixture_marker(tmp_path / "m2.json", "onnxruntime", "fp16", "failed"),
               _fixture_marker(tmp_path / "m3.json", "openvino", "fp32", "passed")]
    pick = deploy.select(csvs, markers, "opt", 500)["components"]["net"]["cpu"]
    assert pick["choice"] == "openvino.fp32" and pick["speedup"] == pytest.approx(2.0, rel=0.05)
    why = {a["choice"]: a["why_not"] for a in pick["alternatives"]}
    assert why["tensorrt.fp16"] == "validation skipped: skipped on purpose"
    assert why["onnxruntime.fp16"] == "validation failed: failed on purpose"
    assert why["pytorch.fp32"] == "baseline (PyTorch eager)"
    assert pick["reason"] == "fastest validated backend with a speedup CI above 1"


def test_selection_falls_back_to_pytorch_when_nothing_beats_it(tmp_path):
    csvs = [_fixture_csv(tmp_path / "a.csv", "pytorch", "fp32", 10.0),
            _fixture_csv(tmp_path / "b.csv", "onnxruntime", "fp32", 10.05),  # a tie: CI includes 1
            _fixture_csv(tmp_path / "c.csv", "openvino", "fp32", 14.0)]
    markers = [_fixture_marker(tmp_path / "m1.json", "onnxruntime", "fp32", "passed"),
               _fixture_marker(tmp_path / "m2.json", "openvino", "fp32", "passed")]
    pick = deploy.select(csvs, markers, "opt", 500)["components"]["net"]["cpu"]
    assert pick["choice"] == "pytorch.fp32"
    assert pick["reason"] == "no validated backend is faster than PyTorch eager with a CI above 1"
    why = {a["choice"]: a["why_not"] for a in pick["alternatives"]}
    assert "does not lie above 1" in why["onnxruntime.fp32"] and "does not lie above 1" in why["openvino.fp32"]


def test_bundle_holds_the_chosen_files_and_their_evidence(artifacts, tmp_path):
    spec, d, files = artifacts
    csv_dir = tmp_path / "bench"
    csvs = [_fixture_csv(csv_dir / "a.csv", "pytorch", "fp32", 10.0), _fixture_csv(csv_dir / "b.csv", "openvino", "fp32", 4.0)]
    meta = json.loads((csv_dir / "b.csv.json").read_text()) | {"artifact": files[("openvino", "fp32")]}
    write_json(csv_dir / "b.csv.json", meta)
    marker = tmp_path / "ov.json"
    write_json(marker, validate.validate(spec, "openvino", "fp32", files[("openvino", "fp32")]) | {"component": "net"})
    manifest = deploy.bundle(deploy.select(csvs, [str(marker)], "opt", 300), {"net": json.loads(spec.to_json())},
                             tmp_path / "deploy" / "m")
    pick = manifest["components"]["net"]["cpu"]
    bundle = tmp_path / "deploy" / "m"
    assert sorted(p.name for p in (bundle / "cpu").iterdir()) == [
        "net.openvino.fp32.bin", "net.openvino.fp32.validation.json", "net.openvino.fp32.xml"]
    assert json.loads((bundle / "manifest.json").read_text())["components"]["net"]["cpu"]["file"] == pick["file"]
    assert (bundle / pick["file"]).read_bytes() == (d / "net.fp32.xml").read_bytes()
    assert pick["io"]["inputs"][0]["name"] == "x" and not list((tmp_path / "deploy").glob(".m.*"))


def test_registry_vocabulary_and_paths():
    assert registry.REFERENCE == "pytorch" and set(registry.PRECISIONS) == {"fp32", "fp16"}
    assert registry.parse_choice("tensorrt.fp16@cuda") == ("tensorrt", "fp16", "cuda")
    with pytest.raises(ValueError, match="openvino has no fp16 precision"):
        registry.parse_choice("openvino.fp16")
    layout = Layout("results/gpu_a100", "results/engines/gpu_a100")
    assert artifact(layout, "engine", "m", "c", "fp16", "ck.pt") == "results/engines/gpu_a100/m/c.fp16.engine"
    assert artifact(layout, "onnx", "m", "c", "fp16", "ck.pt") == "results/onnx_fp16/m/c.onnx"
    assert layout.marker("m", "c", "openvino", "fp32") == "results/gpu_a100/validation/m/c.openvino.fp32.json"


def test_config_names_backends_from_the_registry():
    import yaml
    from conftest import REPO
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["models"]["svc_demo"]["e2e"]["assignments"]["ov"] = {"default": "openvno.fp32"}
    with pytest.raises(ConfigError, match=r"assignments.ov.default: unknown backend 'openvno'"):
        specs_from_config(cfg)
    del cfg["models"]["svc_demo"]["e2e"]["assignments"]["ov"]
    cfg["backends"] = ["onnxruntime"]
    with pytest.raises(ConfigError, match="must include pytorch"):
        specs_from_config(cfg)
