"""Stage: load-validation markers. An artifact is used downstream only after it loaded here
and matched PyTorch at the min, opt and max points.

Status is `passed`, `failed` (the job fails, so nothing downstream uses the artifact) or
`skipped` (this host cannot run the backend; the reason says exactly why). A skip is
never reported as a pass.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from . import cli, parity, trt
from .components import exportable
from .config import ComponentSpec
from .host import device_info
from .io import now, read_json, sha256_file, sidecar_path, versions, write_json

log = logging.getLogger(__name__)
BACKENDS = ("onnxruntime", "tensorrt")


def validate(spec: ComponentSpec, backend: str, precision: str, artifact: str | Path) -> dict[str, Any]:
    marker: dict[str, Any] = {
        "stage": "validate", "model": spec.model, "component": spec.component, "backend": backend,
        "precision": precision, "artifact": str(artifact), "artifact_sha256": sha256_file(artifact),
        "tolerance": spec.tolerance[precision], "created": now(), "device": device_info(),
        "versions": versions("torch", "onnxruntime"),
    }
    if backend == "onnxruntime":
        candidate = parity.ort_runner(str(artifact))
    elif backend == "tensorrt":
        engine_meta = read_json(sidecar_path(artifact))
        fl = trt.load(engine_meta["flavour"])
        marker["versions"][fl.name] = fl.version
        ok, why = trt.runnable(fl, engine_meta["settings"]["compute_capabilities"])
        if not ok:
            marker.update(status="skipped", reason=why)
            log.warning("%s tensorrt %s: skipped: %s", spec.label, precision, why)
            return marker
        candidate = trt.EngineRunner(fl, Path(artifact).read_bytes())
    else:
        raise ValueError(f"unknown backend '{backend}' ({', '.join(BACKENDS)})")
    result = parity.check(spec, parity.torch_runner(exportable(spec), spec), candidate, precision)
    marker.update(status="passed" if result["ok"] else "failed", parity=result)
    if not result["ok"]:
        marker["reason"] = parity.describe_failure(spec, result, f"{backend} {precision} artifact")
    return marker


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--backend", choices=BACKENDS, required=True)
    p.add_argument("--precision", choices=["fp32", "fp16"], required=True)
    p.add_argument("--artifact", required=True)
    p.add_argument("--out", required=True)

    def run(a):
        marker = validate(a.spec, a.backend, a.precision, a.artifact)
        write_json(a.out, marker)
        if marker["status"] == "failed":
            raise parity.ParityError(marker["reason"])
        log.info("%s %s %s: %s", a.spec.label, a.backend, a.precision, marker["status"])

    cli.run("validate", run, p, argv)


if __name__ == "__main__":
    main()
