"""The one way every stage CLI starts, logs and fails.

Snakemake captures stderr into the rule's log; a failure ends in one line naming what
broke. A failed component/stage also leaves a record under the run's failures directory
(Paths.failure), which Snakemake does not delete, so the report shows what failed and why.

A stage whose failure costs only its own variant (making a graph variant, converting or
building from it, validating or timing a series) is run `isolated`: an error there writes
that variant's outputs as failed (an empty artifact whose sidecar, or a marker, says why
and names the log), records the failure, and exits 0, so validation, timing, the ship
decision among the series that exist, the bundle and the report all go on; the run's last
target (check_failures) still fails the run naming every such failure, unless
`failures.fail_run` is false. A configuration error always fails its job. A stage run with
`--threads N` first takes a slot of N cores of its own (slots.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import variants
from ..core.errors import ConfigError, StageError, WorkflowError, plain
from ..core.files import now, read_json, sha256_file, write_bytes, write_json
from ..core.paths import Paths, sidecar_path
from ..core.spec import ComponentSpec, spec_from_json
from . import host, slots

# Loggers that narrate every rewrite at INFO (hundreds of lines per export): warnings only.
CHATTY = ("onnxscript", "onnx_ir")


def parser(description: str, spec: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if spec:
        p.add_argument("--spec", required=True, help="component spec as JSON (from the rule's params)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="run on a slot of this many cores of its own (0: no pinning, library defaults)",
    )
    p.add_argument("--log", help="the job's log (named in failure records)")
    return p


def failure_path(stage: str, args: argparse.Namespace) -> Path | None:
    spec = getattr(args, "spec", None)
    if not isinstance(spec, ComponentSpec):
        return None
    parts = [spec.component, stage, *(str(getattr(args, k)) for k in ("backend", "variant") if getattr(args, k, None))]
    return Path(Paths.current().failure(spec.model, ".".join(parts)))


def located(message: str, args: argparse.Namespace) -> str:
    """Every stage error names its model/component, whichever layer raised it."""
    spec = getattr(args, "spec", None)
    if isinstance(spec, ComponentSpec) and spec.name not in message:
        return f"{spec.name}: {message}"
    return message


def run(
    stage: str,
    main: Callable[[argparse.Namespace], None],
    p: argparse.ArgumentParser,
    argv: list[str] | None = None,
    isolate: Callable[[argparse.Namespace, str], None] | None = None,
) -> None:
    """Parse, take a slot, run `main`; on an error, log one line, record it, and exit 1, or with `isolate`
    (a writer of the variant's failed outputs) exit 0 after writing them."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    log = logging.getLogger(f"workflow_lib.{stage}")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    slot = slots.acquire(args.threads)
    if slot is not None:
        log.info("running on cores %s (waited %.1f s for them)", slot.cores, slot.waited_s)
    host.cap_memory()
    record = None
    try:
        if isinstance(getattr(args, "spec", None), str):
            args.spec = spec_from_json(args.spec)
        main(args)
    except Exception as e:  # every failure ends as one named line and a failure record
        message = located(plain(str(e)), args)
        if isinstance(e, (WorkflowError, FileNotFoundError)):
            log.error("%s failed: %s", stage, message)
        else:
            log.exception("%s failed unexpectedly: %s: %s", stage, type(e).__name__, message)
        contained = isolate is not None and not isinstance(e, ConfigError)
        if contained:
            isolate(args, f"{type(e).__name__}: {message}")
            log.warning("%s: the failure is this variant's only: its outputs say so, and the run goes on", stage)
        record = failure_path(stage, args)
        if record is not None:
            write_json(
                record,
                {
                    "model": args.spec.model,
                    "component": args.spec.component,
                    "stage": stage,
                    "backend": getattr(args, "backend", None),
                    "variant": getattr(args, "variant", None),
                    "error": f"{type(e).__name__}: {message}",
                    "log": args.log,
                    "isolated": contained,
                    "created": now(),
                },
            )
        if not contained:
            sys.exit(1)
    finally:
        if slot is not None:
            slot.release()
    if record is None:
        done = failure_path(stage, args)
        if done is not None:
            done.unlink(missing_ok=True)  # this stage works now: forget its old failure
    log.info("%s done in %.1f s", stage, time.perf_counter() - t0)


def failed_with(artifact: str | Path) -> dict[str, Any] | None:
    """The error an artifact this stage reads records (its sidecar: `made: false`): the stage that failed, why,
    and its log; None when it was made."""
    meta = sidecar_path(artifact)
    if meta.is_file():
        m = read_json(meta)
        if m.get("made") is False:
            return {"stage": m.get("stage"), "reason": m.get("reason", "?"), "log": m.get("log")}
    return None


def unmade(artifact: str | Path) -> str | None:
    """Why an artifact this stage reads could not be made, or None when it was."""
    error = failed_with(artifact)
    if error is None:
        return None
    return f"{read_json(sidecar_path(artifact)).get('variant', 'its parent')} could not be made: {error['reason']}"


def require_made(args: argparse.Namespace, source: str | Path, what: str) -> None:
    """Refuse to make `what` from a source that could not be made (the error names both)."""
    why = unmade(source)
    if why is not None:
        raise StageError(f"{args.spec.name} {args.variant}: {what} {why}")


def failed_artifact(
    stage: str,
    args: argparse.Namespace,
    source: str | Path,
    reason: str,
    companions: tuple[str, ...] = (),
    **extra: Any,
) -> None:
    """A variant's artifact that could not be made: an empty file at `args.out` (and its companions), and a
    sidecar saying what failed, from which source, why, and where the log is (`made: false`)."""
    out = args.out
    for path in (out, *(str(out)[: -len(Path(out).suffix)] + c for c in companions)):
        write_bytes(path, b"")
    meta = {
        "stage": stage,
        "variant": args.variant,
        "model": args.spec.model,
        "component": args.spec.component,
        "input": str(source),
        "reason": reason,
        "log": args.log,
        **extra,
    }
    write_json(sidecar_path(out), {**meta, "made": False, "status": "failed", "created": now()})


def made_from(stage: str, variant: str, spec: ComponentSpec, src: str | Path) -> dict[str, Any]:
    """What every graph artifact's sidecar opens with: which stage made which variant of which component,
    when, and from which parent bytes."""
    return {
        "stage": stage,
        "variant": variant,
        "model": spec.model,
        "component": spec.component,
        "created": now(),
        "input": str(src),
        "input_sha256": sha256_file(src),
    }


def graph_stage(description: str, stage: str, make: Callable[..., dict], argv: list[str] | None = None) -> None:
    """The command line every graph-variant stage shares (the generic `graph_variant` rule calls it):
    `make(spec, variant, parent, out, settings, calibration, reference, threads)` writes `out` and its sidecar;
    `variant` is the table's entry for the variant it makes (its name, precision, gate). Isolated: a variant
    that cannot be made (its parent could not be, or its stage raised) is an empty graph whose sidecar says
    why, and the run goes on."""
    p = parser(description)
    p.add_argument("--variant", required=True, help="the graph variant to make (core/variants.py)")
    p.add_argument("--parent", required=True, help="the parent variant's graph")
    p.add_argument("--out", required=True)
    p.add_argument("--settings", type=json.loads, default={}, help="the config section the variant's stage reads")
    p.add_argument("--calibration", help="the component's calibration set (.npz), for variants that read one")
    p.add_argument("--reference", help="PyTorch's outputs the export stored (.npz), instead of running PyTorch again")

    def made(a: argparse.Namespace) -> None:
        require_made(a, a.parent, "not made, since its parent")
        make(a.spec, variants.get(a.variant), a.parent, a.out, a.settings, a.calibration, a.reference, a.threads)

    def failed(a: argparse.Namespace, reason: str) -> None:
        failed_artifact(stage, a, a.parent, reason)

    run(stage, made, p, argv, isolate=failed)
