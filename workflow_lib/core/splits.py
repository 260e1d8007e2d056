"""The three roles input files play: calibration (INT8 ranges), search (ranking blocks and
assignments) and evaluation (the gates that decide what ships, and every number the report and
manifest quote).

A decision judged on the data it was tuned on says little about data it never saw, so the roles
are disjoint sets of files, checked by content hash. Given too few files for three roles (a plain
list of files, the older form), every file is held out in turn instead: leave-one-out, where the
shipped artifact must pass on each file with everything else tuned on the other files. With one
file nothing can be held out, and the record says so; generated inputs (no files at all) are
disjoint by seed and say they are not real data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .files import sha256_file

SPLITS = ("calibration", "search", "evaluation")
# scheme: how the roles were formed, recorded with every number judged on them
DISJOINT, LEAVE_ONE_OUT, SINGLE, GENERATED = "disjoint", "leave_one_out", "single", "generated"
DESCRIBE = {
    DISJOINT: "three disjoint sets of files: calibrated on one, searched on another, judged on the third",
    LEAVE_ONE_OUT: "too few files for three roles: each file is judged with everything else tuned on the "
    "other files (leave-one-out), and every fold must pass",
    SINGLE: "one file: nothing could be held out; calibrated, searched and judged on the same file",
    GENERATED: "no files: generated inputs (disjoint seeds per role), not what the component sees in use",
}


@dataclass(frozen=True)
class Splits:
    """Files in order, and per role the indices of its files; `folds` for leave-one-out."""

    scheme: str
    files: tuple[str, ...] = ()
    members: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def of(self, split: str) -> tuple[int, ...]:
        return self.members[split]

    def folds(self) -> list[tuple[tuple[int, ...], int]]:
        """(the files tuned on, the file judged) per fold; one fold per evaluation file."""
        if self.scheme == LEAVE_ONE_OUT:
            n = len(self.files)
            return [(tuple(j for j in range(n) if j != i), i) for i in range(n)]
        return [(self.members["calibration"], i) for i in self.members["evaluation"]]

    def to_json(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "about": DESCRIBE[self.scheme],
            "files": list(self.files),
            "members": {k: list(v) for k, v in self.members.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Splits:
        return cls(d["scheme"], tuple(d["files"]), {k: tuple(v) for k, v in d["members"].items()})


def from_config(inputs: list[str] | dict[str, list[str]] | None) -> Splits:
    """The roles of a chain's `inputs` (or a component's calibration files): a mapping of the three roles,
    or a list of files (leave-one-out when there are two or more)."""
    if not inputs:
        return Splits(GENERATED, (), {s: () for s in SPLITS})
    if isinstance(inputs, dict):
        missing = [s for s in SPLITS if not inputs.get(s)]
        if not missing:
            files = [f for s in SPLITS for f in inputs[s]]
            index, members = 0, {}
            for s in SPLITS:
                members[s] = tuple(range(index, index + len(inputs[s])))
                index += len(inputs[s])
            return Splits(DISJOINT, tuple(files), members)
        inputs = [f for s in SPLITS for f in inputs.get(s) or []]
    files = tuple(dict.fromkeys(inputs))
    everything = tuple(range(len(files)))
    scheme = LEAVE_ONE_OUT if len(files) > 1 else SINGLE
    return Splits(scheme, files, {s: everything for s in SPLITS})


def check_disjoint(splits: Splits, where: str) -> dict[str, str]:
    """Each file's sha256; a ConfigError naming both files when the same content plays two roles."""
    hashes: dict[str, str] = {}
    seen: dict[str, tuple[str, str]] = {}
    for split in SPLITS if splits.scheme == DISJOINT else ():
        for i in splits.of(split):
            f = splits.files[i]
            try:
                h = hashes.setdefault(f, sha256_file(f))
            except OSError as e:
                raise ConfigError(f"{where}.{split}: cannot read '{f}' ({e.strerror})") from None
            if h in seen and seen[h][1] != split:
                other, role = seen[h]
                raise ConfigError(
                    f"{where}: '{f}' ({split}) has the same content as '{other}' ({role}): the roles must be "
                    f"disjoint, or the evaluation judges what was tuned on (sha256 {h[:12]}...)"
                )
            seen.setdefault(h, (f, split))
    for f in splits.files:
        if f not in hashes:
            try:
                hashes[f] = sha256_file(f)
            except OSError as e:
                raise ConfigError(f"{where}: cannot read '{f}' ({e.strerror})") from None
    return hashes
