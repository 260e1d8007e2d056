"""Inputs and PyTorch's outputs on disk: sample sets, and the reference outputs later stages
compare with instead of running PyTorch again.

A sample set holds `inputs/<sample>/<input name>`, where it was computed PyTorch fp32's
`outputs/<sample>/<output index>` for each sample, and which role each sample plays
(`splits.py`: calibration, search, evaluation) with the file it came from. Reference outputs
are keyed by the hash of the inputs they answer. Written with fixed zip timestamps, so the same
arrays are the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import now, read_npz, sha256_file, write_json, write_npz
from .paths import sidecar_path
from .splits import GENERATED, SPLITS, Splits, spread

Feeds = dict[str, np.ndarray]
Outputs = list[np.ndarray]
META = "meta.json"  # the roles and sources, as a byte array inside the .npz


@dataclass
class SampleSet:
    """Samples in order; `splits` says which role each file plays and `files[i]` which file sample i came
    from (its index into splits.files; for generated samples, the sample itself)."""

    samples: list[Feeds]
    splits: Splits
    files: list[int]

    def indices(self, split: str) -> list[int]:
        """The samples of one role."""
        members = set(self.splits.of(split))
        return [i for i, f in enumerate(self.files) if f in members]

    def of(self, split: str, names: list[str] | None = None) -> list[Feeds]:
        """The samples of one role, narrowed to `names` (a chain may feed inputs a component lacks)."""
        return [_narrowed(self.samples[i], names) for i in self.indices(split)]

    def judged(
        self, split: str, names: list[str] | None = None, count: int | None = None
    ) -> tuple[list[Feeds], list[Any]]:
        """The samples a role judges with (an even spread of `count` of them, the same on every machine; None:
        all), narrowed to `names`, and what each came from: its file, or for generated samples its index."""
        chosen = spread(self.indices(split), count)
        return (
            [_narrowed(self.samples[i], names) for i in chosen],
            [self.splits.files[self.files[i]] if self.splits.files else i for i in chosen],
        )


def _narrowed(feeds: Feeds, names: list[str] | None) -> Feeds:
    return feeds if names is None else {k: feeds[k] for k in names}


def grouped(arrays: dict[str, np.ndarray]) -> list[Feeds]:
    """`<sample>/<input>` keys -> one dict of inputs per sample, in sample order."""
    samples: dict[int, Feeds] = {}
    for key, array in arrays.items():
        index, _, name = key.partition("/")
        samples.setdefault(int(index), {})[name] = array
    return [samples[i] for i in sorted(samples)]


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def read_sample_set(path: str | Path) -> SampleSet:
    """The samples with their roles; a set written without roles (arrays only) is one generated role."""
    arrays = read_npz(path)
    samples = grouped(_section(arrays, "inputs/"))
    if META not in arrays:
        n = len(samples)
        return SampleSet(samples, Splits(GENERATED, (), {s: tuple(range(n)) for s in SPLITS}), list(range(n)))
    meta = json.loads(arrays[META].tobytes())
    return SampleSet(samples, Splits.from_json(meta["splits"]), meta["files"])


def write_samples(
    path: str | Path,
    samples: list[Feeds],
    outputs: list[Outputs] | None = None,
    splits: Splits | None = None,
    files: list[int] | None = None,
) -> None:
    arrays = {f"inputs/{i}/{name}": array for i, feeds in enumerate(samples) for name, array in feeds.items()}
    for i, outs in enumerate(outputs or []):
        arrays.update({f"outputs/{i}/{j}": out for j, out in enumerate(outs)})
    if splits is not None:
        meta = {"splits": splits.to_json(), "files": list(files if files is not None else range(len(samples)))}
        arrays[META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    write_npz(path, arrays)


def write_calibration(
    path: str | Path,
    model: str,
    component: str,
    samples: list[Feeds],
    outputs: list[Outputs],
    source: str,
    representative: bool,
    splits: Splits,
    files: list[int],
    **about: Any,
) -> dict[str, Any]:
    """A sample set with PyTorch fp32's outputs on it, and its sidecar: where the samples came from, which
    role each plays, whether they are what the component sees in use, their shapes, size and sha256."""
    write_samples(path, samples, outputs, splits, files)
    meta = {
        "stage": "calibration",
        "model": model,
        "component": component,
        "created": now(),
        "source": source,
        "representative": representative,
        **about,
        "splits": splits.to_json(),
        "sample_files": files,
        "samples": len(samples),
        "per_split": {s: sum(f in set(splits.of(s)) for f in files) for s in SPLITS},
        "shapes": [{k: list(v.shape) for k, v in s.items()} for s in samples],
        "bytes": Path(path).stat().st_size,
        "sha256": sha256_file(path),
    }
    write_json(sidecar_path(path), meta)
    return meta


def feeds_key(feeds: Feeds) -> str:
    """Identity of a set of inputs: names, dtypes, shapes and bytes."""
    h = hashlib.sha1()
    for name in sorted(feeds):
        a = np.ascontiguousarray(feeds[name])
        h.update(f"{name}|{a.dtype}|{a.shape}|".encode() + a.tobytes())
    return h.hexdigest()


def _ordered(arrays: dict[str, np.ndarray]) -> Outputs:
    return [arrays[k] for k in sorted(arrays, key=int)]


def read_outputs(path: str | Path) -> dict[str, Outputs]:
    """Reference outputs by the key of the inputs they answer: from a reference-outputs file, or from the
    samples of a calibration set that stored PyTorch's outputs."""
    arrays = read_npz(path)
    arrays.pop(META, None)
    if any(k.startswith("inputs/") for k in arrays):
        inputs, outputs = grouped(_section(arrays, "inputs/")), _section(arrays, "outputs/")
        return {
            feeds_key(feeds): _ordered(_section(outputs, f"{i}/"))
            for i, feeds in enumerate(inputs)
            if any(k.startswith(f"{i}/") for k in outputs)
        }
    by_key: dict[str, dict[str, np.ndarray]] = {}
    for k, v in arrays.items():
        key, _, j = k.partition("/")
        by_key.setdefault(key, {})[j] = v
    return {key: _ordered(outs) for key, outs in by_key.items()}


def write_outputs(path: str | Path, outputs: dict[str, Outputs]) -> None:
    write_npz(path, {f"{key}/{j}": out for key, outs in outputs.items() for j, out in enumerate(outs)})
