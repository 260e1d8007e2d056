"""The one way every stage CLI starts, logs and fails.

Snakemake captures stderr into the rule's log; a failure ends in one line naming what
broke (and a non-zero exit). A failed component/stage also leaves a record under the
run's failures directory (paths.failures_dir), which Snakemake does not delete, so a
--keep-going run can still render a report that shows what failed and why.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable

from .config import ComponentSpec, spec_from_json
from .errors import WorkflowError, plain
from .io import now, write_json
from .paths import failures_dir


def parser(description: str, spec: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if spec:
        p.add_argument("--spec", required=True, help="component spec as JSON (from the rule's params)")
    return p


def failure_path(stage: str, args: argparse.Namespace) -> Path | None:
    spec = getattr(args, "spec", None)
    if not isinstance(spec, ComponentSpec):
        return None
    parts = [spec.component, stage, *(str(getattr(args, k)) for k in ("backend", "precision") if getattr(args, k, None))]
    return Path(failures_dir()) / spec.model / (".".join(parts) + ".json")


def located(message: str, args: argparse.Namespace) -> str:
    """Every stage error names its model/component, whichever layer raised it."""
    spec = getattr(args, "spec", None)
    if isinstance(spec, ComponentSpec) and spec.label not in message:
        return f"{spec.label}: {message}"
    return message


def run(stage: str, main: Callable[[argparse.Namespace], None], p: argparse.ArgumentParser,
        argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger(f"workflow_lib.{stage}")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
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
            write_json(record, {"model": args.spec.model, "component": args.spec.component, "stage": stage,
                                "backend": getattr(args, "backend", None), "precision": getattr(args, "precision", None),
                                "error": f"{type(e).__name__}: {message}", "created": now()})
        sys.exit(1)
    record = failure_path(stage, args)
    if record is not None:
        record.unlink(missing_ok=True)  # this stage works now: forget its old failure
    log.info("%s done in %.1f s", stage, time.perf_counter() - t0)
