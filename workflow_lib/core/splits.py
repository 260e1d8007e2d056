"""The three roles input files play: calibration (INT8 ranges), search (every choice: candidates, transforms,
fallbacks, ties, and which series are candidates at all) and evaluation (read once, after every choice: the
verdict on what ships, and every held-out number the report and manifest quote).

A decision judged on the data it was tuned on says little about data it never saw, so the roles are disjoint
sets of files, checked by content hash. Given one list of files (the older form), the roles are dealt out in
turn (calibration, search, evaluation, calibration, ...); with fewer than three files nothing can be held out,
every file plays every role, and the record says the verdicts are not held out. Generated inputs (no files at
all) are disjoint by seed and say they are not real data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .files import sha256_file

SPLITS = ("calibration", "search", "evaluation")
# scheme: how the roles were formed, recorded with every number judged on them
DISJOINT, SHARED, GENERATED = "disjoint", "shared", "generated"
DESCRIBE = {
    DISJOINT: "disjoint sets of files: calibrated on one, every choice made on another, the verdict on the third",
    SHARED: "too few files for three roles: every file plays every role, so no verdict is held out",
    GENERATED: "no files: generated inputs (disjoint seeds per role), not what the component sees in use",
}


@dataclass(frozen=True)
class Splits:
    """Files in order, and per role the indices of its files."""

    scheme: str
    files: tuple[str, ...] = ()
    members: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def of(self, split: str) -> tuple[int, ...]:
        return self.members[split]

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
    """The roles of a chain's `inputs` (or a component's calibration files): a mapping of the three roles, or a
    list of files whose roles are dealt out in turn (shared by every role below three files)."""
    if not inputs:
        return Splits(GENERATED, (), {s: () for s in SPLITS})
    if isinstance(inputs, dict):
        if all(inputs.get(s) for s in SPLITS):
            files = [f for s in SPLITS for f in inputs[s]]
            index, members = 0, {}
            for s in SPLITS:
                members[s] = tuple(range(index, index + len(inputs[s])))
                index += len(inputs[s])
            return Splits(DISJOINT, tuple(files), members)
        inputs = [f for s in SPLITS for f in inputs.get(s) or []]
    files = tuple(dict.fromkeys(inputs))
    if len(files) < len(SPLITS):
        return Splits(SHARED, files, {s: tuple(range(len(files))) for s in SPLITS})
    return Splits(DISJOINT, files, {s: tuple(range(k, len(files), len(SPLITS))) for k, s in enumerate(SPLITS)})


def spread(items: list | tuple, n: int | None) -> list:
    """An even spread of `n` of `items`, the same on every machine (all of them when n is None or not smaller):
    how a search judges on a subset of its role's files to stay fast."""
    items = list(items)
    if n is None or n >= len(items):
        return items
    return [items[(2 * k + 1) * len(items) // (2 * n)] for k in range(n)]


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
