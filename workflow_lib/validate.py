"""Stage: load-validation markers. An artifact is used downstream only after it loaded here
and matched PyTorch at the min, opt and max points.

Status is `passed`, `failed` (the job fails, so nothing downstream uses the artifact) or
`skipped` (this host cannot run the backend; the reason says exactly why). A skip is
never reported as a pass. Works for every backend the registry validates by marker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from . import cli, parity
from .backends import registry as backends
from .config import ComponentSpec
from .errors import ParityError
from .host import device_info
from .io import now, sha256_file, versions, write_json

log = logging.getLogger(__name__)
MARKER_BACKENDS = [b.name for b in backends.marker_backends()]


def validate(spec: ComponentSpec, backend: str, precision: str, artifact: str | Path) -> dict[str, Any]:
    b = backends.get(backend)
    marker: dict[str, Any] = {
        "stage": "validate", "model": spec.model, "component": spec.component, "backend": backend,
        "precision": precision, "artifact": str(artifact), "artifact_sha256": sha256_file(artifact),
        "tolerance": spec.tolerance[precision], "created": now(), "device": device_info(),
        "versions": versions("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "tensorrt-rtx-cu13"),
    }
    ok, why = b.available(precision, str(artifact))
    if not ok:
        marker.update(status="skipped", reason=why)
        log.warning("%s %s %s: skipped: %s", spec.label, backend, precision, why)
        return marker
    candidate = b.open(spec, precision, str(artifact))
    marker["runner"] = candidate.info
    result = parity.check(spec, parity.reference(spec), candidate, precision)
    marker.update(status="passed" if result["ok"] else "failed", parity=result)
    if not result["ok"]:
        marker["reason"] = parity.describe_failure(spec, result, f"{backend} {precision} artifact")
    return marker


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--backend", choices=MARKER_BACKENDS, required=True)
    p.add_argument("--precision", choices=backends.PRECISIONS, required=True)
    p.add_argument("--artifact", required=True)
    p.add_argument("--out", required=True)

    def run(a):
        marker = validate(a.spec, a.backend, a.precision, a.artifact)
        write_json(a.out, marker)
        if marker["status"] == "failed":
            raise ParityError(marker["reason"])
        log.info("%s %s %s: %s", a.spec.label, a.backend, a.precision, marker["status"])

    cli.run("validate", run, p, argv)


if __name__ == "__main__":
    main()
