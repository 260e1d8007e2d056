"""Stage: the run's last check: every variant that could not be made, validated or timed because of an error
(recorded by the isolated stages, jobs/cli.py), named with its reason and log.

Everything that did not need those variants was built (the deployment, the bundle, the report that lists
them); this check makes the run's exit code say that something failed. With `failures.fail_run: false`
it writes the list and passes.
"""

from __future__ import annotations

import argparse
import logging
from glob import glob

from ..core.errors import StageError
from ..core.files import now, read_json, write_json
from ..jobs import cli

log = logging.getLogger(__name__)


def check(failures_dir: str, fail_run: bool) -> dict:
    records = [read_json(p) for p in sorted(glob(f"{failures_dir}/*/*.json"))]
    lines = [
        f"{r['model']}/{r['component']} {r['stage']}"
        + "".join(f" {r[k]}" for k in ("backend", "variant") if r.get(k))
        + f": {r['error']}"
        + (f" (log: {r['log']})" if r.get("log") else "")
        for r in records
    ]
    for line in lines:
        log.error("failed: %s", line)
    if lines and fail_run:
        raise StageError(
            f"{len(lines)} variant(s) failed (everything else was built; the report lists them; "
            f"failures.fail_run: false lets the run pass): " + "; ".join(lines)
        )
    return {"created": now(), "failures": records, "fail_run": fail_run}


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--failures", required=True, help="the run's failure records (a directory)")
    p.add_argument("--fail-run", action="store_true", help="exit non-zero when there is any")
    p.add_argument("--out", required=True, help="written when the check passes")

    def run(a: argparse.Namespace) -> None:
        record = check(a.failures, a.fail_run)
        write_json(a.out, record)
        log.info("%d failure(s) recorded", len(record["failures"]))

    cli.run("failures", run, p, argv)


if __name__ == "__main__":
    main()
