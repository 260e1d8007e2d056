"""Stage: a graph variant -> OpenVINO IR (.xml + .bin), for the OpenVINO backend.

The IR is converted once here so validation and benchmarks load the same files a user
would ship, and conversion time is not paid in every job. Weights stay in the graph's
own precision (no fp16 compression); the INT8 QDQ graph becomes FakeQuantize layers that
OpenVINO's CPU plugin runs in INT8; the nodes a bf16 graph marks to keep f32 carry
OpenVINO's own mark (runtimes/ov.py). Parity is checked by the validation marker.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

from ..core.files import sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.spec import ComponentSpec
from ..graphs import bf16
from ..jobs import cli
from ..runtimes import ov

log = logging.getLogger(__name__)
SPEC_KEYS = ()  # nothing of the component: the graph says it all


def convert(
    spec: ComponentSpec, src: str | Path, out_xml: str | Path, variant: str, out_bin: str | Path | None = None
) -> dict[str, Any]:
    """The IR at `out_xml` with its weights at `out_bin` (default: beside it, OpenVINO's own naming)."""
    out_xml = Path(out_xml)
    out_bin = Path(out_bin) if out_bin else out_xml.with_suffix(".bin")
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    keep_f32 = [n.name for n in bf16.marked(onnx.load(str(src), load_external_data=False))]
    with tempfile.TemporaryDirectory(prefix=f".{out_xml.stem}.", dir=out_xml.parent) as tmp:
        tmp_xml = Path(tmp) / out_xml.name
        model = ov.write_ir(src, tmp_xml, keep_f32)
        seconds = time.perf_counter() - t0
        # .bin first: an .xml at the final path always has its weights beside it.
        os.replace(tmp_xml.with_suffix(".bin"), out_bin)
        os.replace(tmp_xml, out_xml)
    ops = model.get_ops()
    meta = {
        **cli.made_from("openvino_ir", variant, spec, src),
        "xml_sha256": sha256_file(out_xml),
        "bin_sha256": sha256_file(out_bin),
        "bin_bytes": out_bin.stat().st_size,
        "convert_seconds": round(seconds, 3),
        "ops": len(ops),
        "fake_quantize": sum(op.get_type_name() == "FakeQuantize" for op in ops),
        "keep_f32": keep_f32,  # nodes the graph marks to keep f32 under a lower inference precision
        "inputs": [{"name": i.get_any_name(), "shape": str(i.get_partial_shape())} for i in model.inputs],
        "versions": versions("openvino", "onnx"),
    }
    write_json(sidecar_path(out_xml), meta)
    log.info(
        "%s: OpenVINO IR in %.2f s, %d ops, %.1f MB -> %s",
        spec.name,
        seconds,
        meta["ops"],
        meta["bin_bytes"] / 1e6,
        out_xml,
    )
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True, help="the .xml path")
    p.add_argument("--weights", help="the .bin path (default: beside the .xml)")
    p.add_argument("--variant", required=True)

    def run(a) -> None:
        cli.require_made(a, a.onnx, "no IR, since its graph")
        convert(a.spec, a.onnx, a.out, a.variant, a.weights)

    def failed(a, reason: str) -> None:
        cli.failed_artifact("openvino_ir", a, a.onnx, reason, companions=(".bin",))

    cli.run("openvino_ir", run, p, argv, isolate=failed)


if __name__ == "__main__":
    main()
