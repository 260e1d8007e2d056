"""OpenVINO INT8 two ways, on a finished demo run: OpenVINO running the int8 variant's QDQ graph (what
the workflow ships: ONNX Runtime's calibration, the search's float blocks), or NNCF's own
post-training quantization of the fp32 IR (`nncf.quantize`, same calibration set). Which is faster
at the opt point, and which keeps more fidelity against PyTorch fp32 on the calibration set?

    pip install --target DIR nncf==3.4.0   # not a project dependency: this measurement decides that
    PYTHONPATH=DIR .venv/bin/python benchmarks/openvino_int8.py --results RUN/results [--component vocoder]

Series: the fp32 IR; the QDQ graph's IR; NNCF (presets performance and mixed: symmetric or
asymmetric activations) with every layer it would quantize, and with the blocks the int8 search
kept float left out (ignored scope, by the ONNX node names OpenVINO keeps).
Latency: the workflow's own timing policy and OpenVINO runner, on the cores this process may use.
Fidelity: the workflow's own metrics (SNR, and for audio LSD, PESQ, STOI) on every calibration sample.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

import onnx
import yaml

from workflow_lib.analysis import parity
from workflow_lib.core.paths import sidecar_path
from workflow_lib.core.samples import read_samples
from workflow_lib.core.spec import component_spec
from workflow_lib.core.timing import Policy, measure, stats
from workflow_lib.runtimes.ov import OpenVinoRunner
from workflow_lib.stages import quantize

REPO = Path(__file__).resolve().parents[1]
POLICY = Policy(warmup=2, warmup_seconds=1.0, min_iterations=10, max_iterations=200, max_seconds=5.0)


def nncf_ir(fp32_xml: Path, samples: list[dict], float_nodes: list[str], preset: str, out: Path) -> Path:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    ignored = nncf.IgnoredScope(patterns=[rf"^{re.escape(n)}(/.*)?$" for n in float_nodes], validate=False)
    q = nncf.quantize(
        model,
        nncf.Dataset(samples),
        preset=getattr(nncf.QuantizationPreset, preset),
        subset_size=len(samples),
        ignored_scope=ignored,
    )
    ov.save_model(q, str(out), compress_to_fp16=False)
    return out


def series_row(name: str, xml: Path, spec, samples, refs, threads: int) -> dict:
    runner = OpenVinoRunner(str(xml), threads)
    metrics = parity.sample_metrics(spec, refs, [runner(s) for s in samples])
    ms, how = measure(runner.prepare(spec.make_inputs(spec.point("opt"))), lambda: None, POLICY)
    s = stats(ms)
    row = {"series": name, "p50_ms": round(s["p50_ms"], 2), "rel_ci": round(how["rel_ci"], 3), "n": len(ms)}
    row |= {k: round(metrics[k], 3) for k in ("snr_db", "lsd_db", "pesq", "stoi") if metrics.get(k) is not None}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, required=True, help="a finished demo run's results/")
    p.add_argument("--model", default="svc_demo")
    p.add_argument("--component", default="vocoder")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args()
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())["models"][a.model]["components"][a.component]
    spec = component_spec(a.model, a.component, cfg)
    r, m, c = a.results, a.model, a.component
    calibration = r / f"calibration/{m}/{c}.npz"
    samples = read_samples(calibration)
    refs = [parity.reference(spec, [calibration])(s) for s in samples]
    int8 = r / f"onnx/int8/{m}/{c}.onnx"
    kept = json.loads(sidecar_path(int8).read_text())["float_blocks"]
    fp32_onnx = onnx.load(str(r / f"onnx/fp32/{m}/{c}.onnx"), load_external_data=False)
    groups = quantize.blocks(fp32_onnx, [n.name for n in fp32_onnx.graph.node if n.op_type in quantize.OP_TYPES])
    float_nodes = [n for b in kept for n in groups[b]]
    print(f"{m}/{c}: {len(samples)} calibration samples, {a.threads} threads; search kept float: {kept}")
    fp32_xml = r / f"openvino/fp32/{m}/{c}.xml"
    rows = [
        series_row("OpenVINO fp32", fp32_xml, spec, samples, refs, a.threads),
        series_row("OpenVINO on the QDQ graph", r / f"openvino/int8/{m}/{c}.xml", spec, samples, refs, a.threads),
    ]
    with tempfile.TemporaryDirectory() as d:
        for preset in ("PERFORMANCE", "MIXED"):  # symmetric / asymmetric activations
            for what, nodes in (("every layer", []), ("the search's float blocks ignored", float_nodes)):
                xml = nncf_ir(fp32_xml, samples, nodes, preset, Path(d) / f"nncf{len(rows)}.xml")
                rows.append(series_row(f"NNCF {preset.lower()}, {what}", xml, spec, samples, refs, a.threads))
    print("| series | p50 ms at opt | rel CI | SNR dB | LSD dB | PESQ | STOI |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [row.get(k, "") for k in ("p50_ms", "rel_ci", "snr_db", "lsd_db", "pesq", "stoi")]
        print(f"| {row['series']} | " + " | ".join(str(v) for v in cells) + " |")


if __name__ == "__main__":
    main()
