"""The one way every stage CLI starts, logs and fails.

Snakemake captures stderr into the rule's log; a failure ends in one line naming what
broke (and a non-zero exit), never a bare traceback the user has to read from the top.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable

from .components import CheckpointError
from .config import ConfigError, spec_from_json
from .parity import ParityError
from .trt import TrtError

EXPECTED = (CheckpointError, ConfigError, ParityError, TrtError, FileNotFoundError)


class StageError(RuntimeError):
    """A stage that cannot produce its artifact; the message says which and why."""


def parser(description: str, spec: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if spec:
        p.add_argument("--spec", required=True, help="component spec as JSON (from the rule's params)")
    return p


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
    except (*EXPECTED, StageError) as e:
        log.error("%s failed: %s", stage, e)
        sys.exit(1)
    log.info("%s done in %.1f s", stage, time.perf_counter() - t0)
