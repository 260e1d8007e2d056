"""The one way every stage CLI starts, logs and fails.

Snakemake captures stderr into the rule's log; a failure ends in one line naming what
broke (and a non-zero exit). A failed component/stage also leaves a record under the
run's failures directory (Paths.failure), which Snakemake does not delete, so a
--keep-going run can still render a report that shows what failed and why. A stage run
with `--threads N` first takes a slot of N cores of its own (slots.py).
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

from . import host, slots, variants
from .errors import WorkflowError, plain
from .files import now, sha256_file, write_json
from .paths import Paths
from .spec import ComponentSpec, spec_from_json

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
    stage: str, main: Callable[[argparse.Namespace], None], p: argparse.ArgumentParser, argv: list[str] | None = None
) -> None:
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
                    "created": now(),
                },
            )
        sys.exit(1)
    finally:
        if slot is not None:
            slot.release()
    record = failure_path(stage, args)
    if record is not None:
        record.unlink(missing_ok=True)  # this stage works now: forget its old failure
    log.info("%s done in %.1f s", stage, time.perf_counter() - t0)


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
    `variant` is the table's entry for the variant it makes (its name, precision, gate)."""
    p = parser(description)
    p.add_argument("--variant", required=True, help="the graph variant to make (core/variants.py)")
    p.add_argument("--parent", required=True, help="the parent variant's graph")
    p.add_argument("--out", required=True)
    p.add_argument("--settings", type=json.loads, default={}, help="the config section the variant's stage reads")
    p.add_argument("--calibration", help="the component's calibration set (.npz), for variants that read one")
    p.add_argument("--reference", help="PyTorch's outputs the export stored (.npz), instead of running PyTorch again")
    run(
        stage,
        lambda a: make(
            a.spec, variants.get(a.variant), a.parent, a.out, a.settings, a.calibration, a.reference, a.threads
        ),
        p,
        argv,
    )
