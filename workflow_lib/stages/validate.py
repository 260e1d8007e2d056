"""Stage: load-validation markers. An artifact is used downstream only after it loaded here
and passed its variant's gate against PyTorch.

Status is `passed`, `failed` or `skipped` (this host cannot run the backend; the reason says
exactly why; the workflow plans no such job where the host probe already knows it, so a
skip here comes from the artifact itself, e.g. an engine the builder refused). A skip is
never reported as a pass. An elementwise (allclose) failure fails the job, since fp32 and
fp16 graphs are expected to match; a fidelity gate (INT8) that fails is a measured outcome,
recorded in the marker without failing the run, and the series is then never timed nor
shipped. Works for every backend the registry validates by marker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..analysis import parity
from ..analysis.results import RUNTIMES
from ..core import cli, variants
from ..core.errors import ParityError
from ..core.files import now, sha256_file, versions, write_json
from ..core.host import device_info
from ..core.samples import read_sample_set
from ..core.spec import ComponentSpec
from ..runtimes import registry as backends

log = logging.getLogger(__name__)
MARKER_BACKENDS = [b.name for b in backends.marker_backends()]


def validate(
    spec: ComponentSpec,
    backend: str,
    variant: str,
    artifact: str | Path,
    calibration: str | Path | None = None,
    threads: int = 0,
    reference: str | Path | None = None,
) -> dict[str, Any]:
    b = backends.get(backend)
    marker: dict[str, Any] = {
        "stage": "validate",
        "model": spec.model,
        "component": spec.component,
        "backend": backend,
        "variant": variant,
        "precision": variants.get(variant).precision,
        "artifact": str(artifact),
        "artifact_sha256": sha256_file(artifact),
        "gate": variants.get(variant).gate,
        "thresholds": spec.gate(variant),
        "created": now(),
        "device": device_info(),
        "versions": versions(*RUNTIMES),
    }
    ok, why = b.available(variant, str(artifact))
    if not ok:
        marker.update(status="skipped", reason=why)
        log.warning("%s %s %s: skipped: %s", spec.name, backend, variant, why)
        return marker
    candidate = b.open_runner(spec, variant, str(artifact), threads)
    marker["runner"] = candidate.info
    samples, files = None, None
    if calibration:  # a fidelity gate is judged on the evaluation files, the worst deciding
        sset = read_sample_set(calibration)
        samples = sset.of("evaluation", [i.name for i in spec.inputs])
        files = [sset.splits.files[sset.files[i]] if sset.splits.files else i for i in sset.indices("evaluation")]
        marker.update(
            calibration=str(calibration), calibration_sha256=sha256_file(calibration), splits=sset.splits.to_json()
        )
    result = parity.check(spec, parity.reference(spec, [reference, calibration]), candidate, variant, samples, 0, files)
    marker.update(status="passed" if result["ok"] else "failed", parity=result)
    if not result["ok"]:
        marker["reason"] = parity.describe_failure(spec, result, f"{backend} {variant} artifact")
    return marker


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--backend", choices=MARKER_BACKENDS, required=True)
    p.add_argument("--variant", choices=list(variants.DERIVED), required=True)
    p.add_argument("--artifact", required=True)
    p.add_argument("--calibration", help="the sample set whose evaluation files a fidelity gate is judged on")
    p.add_argument("--reference", help="PyTorch's outputs the export stored (.npz)")
    p.add_argument("--out", required=True)

    def run(a):
        marker = validate(a.spec, a.backend, a.variant, a.artifact, a.calibration, a.threads, a.reference)
        write_json(a.out, marker)
        if marker["status"] == "failed" and variants.get(a.variant).gate == "allclose":
            raise ParityError(marker["reason"])
        log.info("%s %s %s: %s %s", a.spec.name, a.backend, a.variant, marker["status"], marker.get("reason", ""))

    cli.run("validate", run, p, argv)


if __name__ == "__main__":
    main()
