"""What may ship per component and device, the choice for a model without a chain, and the bundle."""

import json

import pytest
from conftest import export_tiny_conv, synthetic_csv

from workflow_lib.analysis import pairing, selection
from workflow_lib.core.files import write_json
from workflow_lib.stages import bundle as bundle_stage
from workflow_lib.stages import deploy, openvino_ir, validate


def _marker(path, backend, variant, status, component="net"):
    write_json(
        path,
        {
            "model": "m",
            "component": component,
            "backend": backend,
            "variant": variant,
            "status": status,
            **({"reason": f"{status} on purpose"} if status != "passed" else {}),
        },
    )
    return str(path)


def _pick(csvs, markers, spec="{}"):
    entry = selection.rank(csvs, markers, "opt", 500)["components"]["net"]["cpu"]
    return deploy.decide(entry, spec, 1, "opt", pairing.PairPolicy())


def test_selection_never_picks_a_failed_or_skipped_marker(tmp_path):
    csvs = [
        synthetic_csv(tmp_path / "a.csv", "pytorch", "fp32", {"cpu": 10.0}, "net"),
        synthetic_csv(tmp_path / "b.csv", "tensorrt", "fp16", {"cpu": 1.0}, "net"),  # fastest, but skipped
        synthetic_csv(tmp_path / "c.csv", "onnxruntime", "int8", {"cpu": 2.0}, "net"),  # next, but failed its gate
        synthetic_csv(tmp_path / "d.csv", "openvino", "fp32", {"cpu": 5.0}, "net"),
    ]  # validated, 2x
    markers = [
        _marker(tmp_path / "m1.json", "tensorrt", "fp16", "skipped"),
        _marker(tmp_path / "m2.json", "onnxruntime", "int8", "failed"),
        _marker(tmp_path / "m3.json", "openvino", "fp32", "passed"),
    ]
    chosen = _pick(csvs, markers)
    assert chosen["series"] == "openvino.fp32" and chosen["speedup"] == pytest.approx(2.0, rel=0.05)
    why = {a["series"]: a["why_not"] for a in chosen["alternatives"]}
    assert why["tensorrt.fp16"] == "validation skipped: skipped on purpose"
    assert why["onnxruntime.int8"] == "validation failed: failed on purpose"
    assert why["pytorch.fp32"] == "baseline (PyTorch eager)"
    assert chosen["reason"] == "the only validated backend with a speedup CI above 1" and chosen["precision"] == "fp32"


def test_selection_falls_back_to_pytorch_when_nothing_beats_it(tmp_path):
    csvs = [
        synthetic_csv(tmp_path / "a.csv", "pytorch", "fp32", {"cpu": 10.0}, "net"),
        synthetic_csv(tmp_path / "b.csv", "onnxruntime", "fp32", {"cpu": 10.05}, "net"),  # a tie: CI includes 1
        synthetic_csv(tmp_path / "c.csv", "openvino", "fp32", {"cpu": 14.0}, "net"),
    ]
    markers = [
        _marker(tmp_path / "m1.json", "onnxruntime", "fp32", "passed"),
        _marker(tmp_path / "m2.json", "openvino", "fp32", "passed"),
    ]
    chosen = _pick(csvs, markers)
    assert chosen["series"] == "pytorch.fp32"
    assert chosen["reason"] == "no validated backend is faster than PyTorch eager with a CI above 1"
    why = {a["series"]: a["why_not"] for a in chosen["alternatives"]}
    assert "does not lie above 1" in why["onnxruntime.fp32"] and "does not lie above 1" in why["openvino.fp32"]


def test_candidates_are_ranked_fastest_first_with_pytorch_last(tmp_path):
    csvs = [
        synthetic_csv(tmp_path / "a.csv", "pytorch", "fp32", {"cpu": 10.0}, "net"),
        synthetic_csv(tmp_path / "b.csv", "onnxruntime", "int8", {"cpu": 2.0}, "net"),
        synthetic_csv(tmp_path / "c.csv", "onnxruntime", "fp32", {"cpu": 6.0}, "net"),
    ]
    markers = [
        _marker(tmp_path / "m1.json", "onnxruntime", "int8", "passed"),
        _marker(tmp_path / "m2.json", "onnxruntime", "fp32", "passed"),
    ]
    entry = selection.rank(csvs, markers, "opt", 300)["components"]["net"]["cpu"]
    assert [c["series"] for c in entry["candidates"]] == ["onnxruntime.int8", "onnxruntime.fp32"]
    assert entry["reference"]["series"] == "pytorch.fp32" and entry["others"] == []


def _tiny_net(tmp_path):
    """The tiny conv exported under tmp_path/model, with its OpenVINO fp32 IR beside it."""
    d = tmp_path / "model"
    d.mkdir()
    spec = export_tiny_conv(d)
    openvino_ir.convert(spec, d / "net.onnx", d / "net.fp32.xml", "fp32")
    return d, spec


def test_bundle_holds_the_chosen_files_and_their_evidence(tmp_path):
    d, spec = _tiny_net(tmp_path)
    csv_dir = tmp_path / "bench"
    csvs = [
        synthetic_csv(csv_dir / "a.csv", "pytorch", "fp32", {"cpu": 10.0}, "net"),
        synthetic_csv(csv_dir / "b.csv", "openvino", "fp32", {"cpu": 4.0}, "net"),
    ]
    meta = json.loads((csv_dir / "b.csv.json").read_text()) | {"artifact": str(d / "net.fp32.xml")}
    write_json(csv_dir / "b.csv.json", meta)
    marker = tmp_path / "ov.json"
    write_json(marker, validate.validate(spec, "openvino", "fp32", d / "net.fp32.xml") | {"model": "m"})
    chosen = _pick(csvs, [str(marker)])
    bundle = tmp_path / "deploy" / "m"
    manifest = bundle_stage.bundle(
        {"model": "m", "created": "now", "components": {"net": {"cpu": chosen}}},
        {"net": json.loads(spec.to_json())},
        bundle,
        chain=None,
        live=None,
        threads=1,
    )
    assert sorted(p.name for p in (bundle / "cpu").iterdir()) == [
        "net.openvino.fp32.bin",
        "net.openvino.fp32.validation.json",
        "net.openvino.fp32.xml",
    ]
    shipped = manifest["components"]["net"]["cpu"]
    assert json.loads((bundle / "manifest.json").read_text())["components"]["net"]["cpu"]["file"] == shipped["file"]
    assert (bundle / shipped["file"]).read_bytes() == (d / "net.fp32.xml").read_bytes()
    # what runs it travels with it: the runner's code, pinned requirements, a README from the manifest
    assert (bundle / "run.py").is_file() and (bundle / "lib/workflow_lib/deployment/runner.py").is_file()
    requirements = (bundle / "requirements.txt").read_text().split()
    assert "openvino==2026.4.1" in requirements and not any(r.startswith("torch") for r in requirements)
    readme = (bundle / "README.md").read_text()
    assert "net.openvino.fp32.xml" in readme and "openvino==2026.4.1" in readme and "python run.py" in readme


def test_the_two_fastest_are_timed_against_each_other_before_one_ships(tmp_path):
    """Real ONNX Runtime and OpenVINO runs of one graph, each warm in its own process, in alternating rounds."""
    d, spec = _tiny_net(tmp_path)
    csv_dir = tmp_path / "bench"
    csvs = [
        synthetic_csv(csv_dir / "a.csv", "pytorch", "fp32", {"cpu": 10.0}, "net"),
        synthetic_csv(csv_dir / "b.csv", "onnxruntime", "fp32", {"cpu": 4.0}, "net"),
        synthetic_csv(csv_dir / "c.csv", "openvino", "fp32", {"cpu": 4.1}, "net"),
    ]
    markers = []
    for csv, backend, artifact in (("b", "onnxruntime", d / "net.onnx"), ("c", "openvino", d / "net.fp32.xml")):
        write_json(
            csv_dir / f"{csv}.csv.json",
            json.loads((csv_dir / f"{csv}.csv.json").read_text()) | {"artifact": str(artifact)},
        )
        write_json(tmp_path / f"{backend}.json", validate.validate(spec, backend, "fp32", artifact) | {"model": "m"})
        markers.append(str(tmp_path / f"{backend}.json"))
    chosen = _pick(csvs, markers, spec.to_json())
    paired = chosen["paired"]
    assert {paired["a"], paired["b"]} == {"onnxruntime.fp32", "openvino.fp32"} and paired["rounds"] >= 10
    assert paired["outcome"] in ("a", "b", "tie") and chosen["series"] == paired["winner"]
    assert paired["a_p50_ms"] > 0 and paired["b_p50_ms"] > 0
    assert "in paired timing" in chosen["reason"]


def test_the_ship_table_shows_a_chains_components_as_its_search_judged_them(tmp_path):
    """A chain's components are judged on the evaluation files by the chain search, not one by one: the table's
    evaluation column reads the verdict of what ships (the winner's, or the safe assignment's after a fallback)."""
    from workflow_lib.stages import report

    def manifest(name, search):
        chosen = {"device": "cpu", "series": "onnxruntime.int8", "p50_ms": 1.0, "speedup": 2.0, "ci": [1.9, 2.1]}
        chosen |= {"reason": "chosen by the chain search", "alternatives": []}
        path = tmp_path / name / "manifest.json"
        write_json(path, {"model": "m", "components": {"enc": {"cpu": chosen}}, "search": [search]})
        return str(path)

    judged = {"status": "passed", "files": 19, "components": {"enc": {"status": "passed", "files": 19}}}
    rows, _, _ = report.ship_rows([manifest("won", {"device": "cpu", "evaluation": judged, "fallback": None})])
    assert rows[0]["held_out"] == {"status": "passed", "files": 19}
    failed = {"status": "failed", "components": {"enc": {"status": "failed", "files": 19}}}
    fell_back = {"device": "cpu", "evaluation": failed, "fallback": {"evaluation": judged}}
    rows, _, _ = report.ship_rows([manifest("fell_back", fell_back)])
    assert rows[0]["held_out"]["status"] == "passed"  # what ships is the safe assignment, judged on its own
