"""Stage: this run against a baseline run (analysis/comparison.py): per series and per chain, its time
relative to the same run's PyTorch fp32 and scaled by the run's drift (what survives a rerun on a drifting
machine), a significance test, and a mark (regressed, improved, newly failing, fixed, not comparable,
unchanged), as a CSV the report shows. With `--check` it then exits non-zero when anything regressed or
newly fails: the check a CI job runs (`snakemake compare_gate`, or `compare.fail_on_regression: true`).
"""

from __future__ import annotations

import argparse
import logging

from ..analysis.comparison import FACTOR, MIN_MS, compare, noise_floor, read_snapshot
from ..core.errors import WorkflowError
from ..core.files import atomic_path, read_json, write_json
from ..jobs import cli

log = logging.getLogger(__name__)
SPEC_KEYS = ()
BAD = ("regressed", "newly failing")


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__, spec=False)
    p.add_argument("--snapshot", help="this run's snapshot (bench/snapshot.parquet)")
    p.add_argument("--baseline", help="the baseline run: its results directory or its snapshot file")
    p.add_argument(
        "--factor", type=float, default=FACTOR, help="changes below this factor (the noise floor) are not reported"
    )
    p.add_argument("--min-ms", type=float, default=MIN_MS, help="nor are changes of fewer ms (the floor's other half)")
    p.add_argument(
        "--out",
        help="the comparison CSV (a sidecar beside it records what was compared); with --check: "
        "the record that the check passed",
    )
    p.add_argument("--check", help="a comparison CSV's sidecar: exit non-zero if it records a regression")

    def run(a: argparse.Namespace) -> None:
        if a.check:
            counts = read_json(a.check)["counts"]
            bad = {m: counts.get(m, 0) for m in BAD if counts.get(m)}
            if bad:
                raise WorkflowError(
                    "against the baseline run: " + ", ".join(f"{n} {m}" for m, n in bad.items()) + f" (see {a.check})"
                )
            log.info("against the baseline run: nothing regressed or newly failing")
            write_json(a.out, {"checked": a.check, "counts": counts})
            return
        table, drift = compare(read_snapshot(a.snapshot), read_snapshot(a.baseline), a.factor, a.min_ms)
        with atomic_path(a.out, suffix=".csv") as tmp:
            table.write_csv(tmp)
        counts = {m: n for m, n in table.group_by("mark").len().iter_rows()}
        write_json(
            f"{a.out}.json",
            {
                "baseline": a.baseline,
                "factor": a.factor,
                "min_ms": a.min_ms,
                "drift": drift,
                "noise": noise_floor(table, a.min_ms),
                "counts": counts,
            },
        )
        for row in table.filter(table["mark"].is_in(["regressed", "improved", "newly failing", "fixed"])).iter_rows(
            named=True
        ):
            log.info(
                "%s %s %s %s: %s (%s)", *(row[k] for k in ("model", "component", "series", "point", "mark", "why"))
            )
        log.info("against %s (the machine ran %.2fx the baseline's times): %s", a.baseline, drift, counts)

    cli.run("compare", run, p, argv)


if __name__ == "__main__":
    main()
