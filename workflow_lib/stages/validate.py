"""Stage: load-validation markers. An artifact is used downstream only after it loaded here
and passed its variant's gate against PyTorch.

Status is `passed`, `failed` or `skipped` (this host cannot run the backend; the reason says
exactly why; the workflow plans no such job where the host probe already knows it, so a
skip here comes from the artifact itself, e.g. an engine the builder refused). A skip is
never reported as a pass. A failed series is never timed nor shipped; everything else goes
on. A fidelity gate (INT8) that fails is a measured outcome; an elementwise (allclose)
failure, where fp32 and fp16 graphs are expected to match, or an error while validating is
also recorded as this series' failure (jobs/cli.py), which the run's last check names. An
artifact whose graph could not be made, or whose graph's own record says it failed, fails
here without being loaded. Works for every backend the registry validates by marker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..analysis import parity
from ..analysis.results import RUNTIMES
from ..core import variants
from ..core.errors import ParityError
from ..core.files import now, read_json, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.samples import read_sample_set
from ..core.spec import ComponentSpec
from ..jobs import cli
from ..jobs.host import device_info
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
    search_files: int | None = None,
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
    why = cli.unmade(artifact) or _graph_failed(artifact)
    if why is not None:  # a graph or artifact that failed to be made, or failed its own record: never used
        marker.update(status="failed", reason=why)
        error = cli.failed_with(artifact)
        if error is not None:  # an error, not a gate: what the manifest and the report name as a failure
            marker["error"] = error
        log.warning("%s %s %s: failed: %s", spec.name, backend, variant, why)
        return marker
    ok, why = b.available(variant, str(artifact))
    if not ok:
        marker.update(status="skipped", reason=why)
        log.warning("%s %s %s: skipped: %s", spec.name, backend, variant, why)
        return marker
    candidate = b.open_runner(spec, variant, str(artifact), threads)
    marker["runner"] = candidate.info
    samples, files = None, None
    if calibration:  # a fidelity gate is judged on the search files: a marker decides candidacy, a choice
        sset = read_sample_set(calibration)
        samples, files = sset.judged("search", [i.name for i in spec.inputs], search_files)
        marker.update(
            calibration=str(calibration),
            calibration_sha256=sha256_file(calibration),
            splits=sset.splits.to_json(),
            judged_on="search",
        )
    result = parity.check(spec, parity.reference(spec, [reference, calibration]), candidate, variant, samples, 0, files)
    marker.update(status="passed" if result["ok"] else "failed", parity=result)
    if not result["ok"]:
        marker["reason"] = parity.describe_failure(spec, result, f"{backend} {variant} artifact")
    return marker


def _graph_failed(artifact: str | Path) -> str | None:
    """Why the graph an artifact was made from says it failed (an INT8 graph that passed nothing on the search
    files), following IR and engine sidecars back to their graph; None when none says so."""
    source, seen = str(artifact), 0
    while source and sidecar_path(source).is_file() and seen < 3:
        meta = read_json(sidecar_path(source))
        if meta.get("status") == "failed":
            return f"its {meta.get('variant', '')} graph failed: {meta.get('reason', '')}".rstrip(": ")
        source, seen = meta.get("input"), seen + 1
    return None


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--backend", choices=MARKER_BACKENDS, required=True)
    p.add_argument("--variant", choices=list(variants.DERIVED), required=True)
    p.add_argument("--artifact", required=True)
    p.add_argument("--calibration", help="the sample set whose search files a fidelity gate is judged on")
    p.add_argument("--reference", help="PyTorch's outputs the export stored (.npz)")
    p.add_argument("--search-files", type=int, help="judge on an even spread of this many search files")
    p.add_argument("--out", required=True)

    def run(a):
        marker = validate(
            a.spec, a.backend, a.variant, a.artifact, a.calibration, a.threads, a.reference, a.search_files
        )
        write_json(a.out, marker)
        log.info("%s %s %s: %s %s", a.spec.name, a.backend, a.variant, marker["status"], marker.get("reason", ""))
        if marker["status"] == "failed" and variants.get(a.variant).gate == "allclose" and "parity" in marker:
            raise ParityError(marker["reason"])  # a graph that should match and does not: this series' failure

    def failed(a, reason: str) -> None:
        if not Path(a.out).is_file():
            write_json(
                a.out,
                {
                    "stage": "validate",
                    "model": a.spec.model,
                    "component": a.spec.component,
                    "backend": a.backend,
                    "variant": a.variant,
                    "status": "failed",
                    "reason": reason,
                    "log": a.log,
                    "error": {"stage": "validate", "reason": reason, "log": a.log},
                    "created": now(),
                },
            )

    cli.run("validate", run, p, argv, isolate=failed)


if __name__ == "__main__":
    main()
