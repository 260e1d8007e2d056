"""The int8 search against NNCF on a finished demo run: same component, same gate, same audio roles.

NNCF is OpenVINO's own answer to "quantize as much as the metric allows":
`nncf.quantize_with_accuracy_control` quantizes the fp32 IR on the calibration files, then gives layers
back to float, most harmful first, until its validation function has dropped by no more than
`max_drop`. Here that function is the gate's relative margin on the worst search file (the number the
int8 search decides by) and `max_drop` is the fp32 graph's own margin, so what NNCF returns passes the
gate on the search files. Every series is then judged by the workflow's own judge on the evaluation
files (files neither side tuned on) and timed against ONNX Runtime fp32 at the opt point in paired
rounds, each runner in its own worker process (analysis/pairing.py).

    pip install --target DIR nncf==3.4.0   # not a project dependency: this measurement decides that
    PYTHONPATH=DIR .venv/bin/python benchmarks/openvino_int8.py --run RUN [--component vocoder]

RUN is a finished run's directory (its results/, and its config/config.yaml or else the repository's, as
for a run of benchmarks/rebuilds.py). Series: ONNX Runtime on the shipped int8
graph (the search's), OpenVINO on the same QDQ graph's IR, NNCF quantize (every layer INT8), NNCF
accuracy control. Prints one JSON line per series and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from workflow_lib.analysis import pairing, parity
from workflow_lib.analysis.gates import relative_margin
from workflow_lib.core.paths import sidecar_path
from workflow_lib.core.samples import read_sample_set
from workflow_lib.plan import config as plan
from workflow_lib.runtimes.ov import OpenVinoRunner

REPO = Path(__file__).resolve().parents[1]
POLICY = pairing.PairPolicy(min_rounds=10, max_rounds=60, max_seconds=40.0)
CONVS = ("Convolution", "ConvolutionBackpropData", "GroupConvolution", "MatMul")


class Judge:
    """The workflow's judge on one role's files: per file against PyTorch fp32, the worst file deciding."""

    def __init__(self, spec, sset, role: str, reference):
        names = [i.name for i in spec.inputs]
        self.spec, self.samples = spec, sset.of(role, names)
        self.files = [sset.splits.files[sset.files[i]] for i in sset.indices(role)]
        self.refs = [reference(s) for s in self.samples]
        self.gate = spec.gate("int8")

    def __call__(self, infer) -> dict:
        judged = parity.judge_samples(self.spec, self.refs, [infer(s) for s in self.samples], self.gate, self.files)
        judged["worst"] = parity.worst(judged.pop("per_file"))
        return judged


def ov_infer(compiled):
    outputs = list(compiled.outputs)
    return lambda feeds: [compiled(feeds)[o] for o in outputs]


def quantized_share(xml: Path) -> tuple[int, int]:
    """(convolutions and matmuls reading a FakeQuantize output, all of them) in an OpenVINO IR."""
    import openvino as ov

    ops = [op for op in ov.Core().read_model(str(xml)).get_ordered_ops() if op.get_type_name() in CONVS]
    quantized = sum(op.input_value(0).get_node().get_type_name() == "FakeQuantize" for op in ops)
    return quantized, len(ops)


def nncf_irs(fp32_xml: Path, spec, sset, search: Judge, out: Path) -> dict[str, tuple[Path, float]]:
    """NNCF's two IRs and how long each took: every layer quantized, and accuracy control on the gate."""
    import nncf
    import openvino as ov

    names = [i.name for i in spec.inputs]
    calibration = nncf.Dataset(sset.of("calibration", names))
    model = ov.Core().read_model(str(fp32_xml))
    fp32_margin = relative_margin(search(OpenVinoRunner(str(fp32_xml), 0)))

    def validate(compiled, _data) -> float:
        return relative_margin(search(ov_infer(compiled)))

    irs = {}
    t = time.perf_counter()
    plain = nncf.quantize(model, calibration, subset_size=len(sset.indices("calibration")))
    irs["NNCF quantize (every layer)"] = (out / "nncf.xml", time.perf_counter() - t)
    ov.save_model(plain, str(out / "nncf.xml"), compress_to_fp16=False)
    t = time.perf_counter()
    controlled = nncf.quantize_with_accuracy_control(
        ov.Core().read_model(str(fp32_xml)),
        calibration,
        nncf.Dataset(search.samples),
        validation_fn=validate,
        max_drop=fp32_margin,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(sset.indices("calibration")),
    )
    irs["NNCF accuracy control"] = (out / "nncf_ac.xml", time.perf_counter() - t)
    ov.save_model(controlled, str(out / "nncf_ac.xml"), compress_to_fp16=False)
    return irs


def row(name, builder, path, spec, baseline, evaluation: Judge, infer, threads, extra) -> dict:
    judged = evaluation(infer)
    recipe = {
        "builder": builder,
        "args": {"path": str(path), "spec": spec.to_json(), "threads": threads, "point": "opt"},
    }
    paired = pairing.compare(recipe, baseline, POLICY, (name, "ONNX Runtime fp32"))
    r = {
        "series": name,
        "p50_ms": round(paired["a_p50_ms"], 1),
        "ort_fp32_p50_ms": round(paired["b_p50_ms"], 1),
        "speedup": round(1 / paired["ratio"], 3),
        "speedup_ci": [round(1 / paired["ci"][1], 3), round(1 / paired["ci"][0], 3)],
        "rounds": paired["rounds"],
        "status": judged["status"],
        "reason": judged["reason"],
        "worst": {k: round(v, 3) for k, v in judged["worst"].items() if k in ("pesq", "stoi", "lsd_db")},
        **extra,
    }
    print(json.dumps(r), flush=True)
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a finished run's directory (config/, results/)")
    p.add_argument("--model", default="svc_demo")
    p.add_argument("--component", default="vocoder")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args()
    os.chdir(a.run)  # the config's paths are relative to the run
    config = Path("config/config.yaml")
    cfg = yaml.safe_load((config if config.exists() else REPO / config).read_text())  # rebuilds.py's runs: the repo's
    plan.normalise(cfg)
    spec = plan.check(cfg, REPO / "config/schema.yaml")[(a.model, a.component)]
    r, m, c = Path("results"), a.model, a.component
    calibration = r / f"calibration/{m}/{c}.npz"
    sset = read_sample_set(calibration)
    if sset.splits.scheme == "leave_one_out":
        raise SystemExit(f"{calibration}: leave-one-out roles; this comparison needs search and evaluation files")
    reference = parity.reference(spec, [r / f"onnx/export/{m}/{c}.reference.npz", calibration])
    search = Judge(spec, sset, "search", reference)
    evaluation = Judge(spec, sset, "evaluation", reference)
    fp32_onnx, int8 = r / f"onnx/fp32/{m}/{c}.onnx", r / f"onnx/int8/{m}/{c}.onnx"
    shipped = json.loads(sidecar_path(int8).read_text())
    total = shipped["quantized_nodes"] + len(shipped["float_nodes"])
    ort_builder, ov_builder = "workflow_lib.runtimes.ort:graph_step", "workflow_lib.runtimes.ov:graph_step"
    baseline = {
        "builder": ort_builder,
        "args": {"path": str(fp32_onnx), "spec": spec.to_json(), "threads": a.threads, "point": "opt"},
    }
    print(f"{m}/{c}: {a.threads} threads; gate {spec.gate('int8')}; evaluation files {evaluation.files}", flush=True)
    rows = [
        row(
            "int8 search, ONNX Runtime",
            ort_builder,
            int8,
            spec,
            baseline,
            evaluation,
            parity.onnxruntime(int8, a.threads),
            a.threads,
            {"quantized": f"{shipped['quantized_nodes']}/{total}", "search_s": shipped["search"].get("search_s")},
        )
    ]
    qdq_xml = r / f"openvino/int8/{m}/{c}.xml"
    marker = r / f"validation/{m}/{c}.openvino.int8.json"
    qdq_failed = marker.exists() and json.loads(marker.read_text())["status"] == "failed"
    if qdq_failed:  # a wrong shape is not a series to time (and its first call per length can take GBs)
        print(f"int8 search, OpenVINO: not timed, its validation failed: {json.loads(marker.read_text())['reason']}")
    if qdq_xml.exists() and not qdq_failed:
        rows.append(
            row(
                "int8 search, OpenVINO",
                ov_builder,
                qdq_xml,
                spec,
                baseline,
                evaluation,
                OpenVinoRunner(str(qdq_xml), a.threads),
                a.threads,
                {"quantized": f"{shipped['quantized_nodes']}/{total}"},
            )
        )
    with tempfile.TemporaryDirectory() as d:
        for name, (xml, seconds) in nncf_irs(r / f"openvino/fp32/{m}/{c}.xml", spec, sset, search, Path(d)).items():
            q, n = quantized_share(xml)
            extra = {"quantized": f"{q}/{n}", "search_s": round(seconds, 1)}
            runner = OpenVinoRunner(str(xml), a.threads)
            rows.append(row(name, ov_builder, xml, spec, baseline, evaluation, runner, a.threads, extra))
    print(
        "| series | layers INT8 | search s | p50 ms at opt | vs ORT fp32 (95 % CI) | evaluation files "
        "| worst PESQ | worst STOI |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for x in rows:
        ci = f"{x['speedup']:.2f}x ({x['speedup_ci'][0]:.2f}-{x['speedup_ci'][1]:.2f})"
        print(
            f"| {x['series']} | {x['quantized']} | {x.get('search_s', '')} | {x['p50_ms']} | {ci} | {x['status']} "
            f"| {x['worst'].get('pesq', '')} | {x['worst'].get('stoi', '')} |"
        )


if __name__ == "__main__":
    main()
