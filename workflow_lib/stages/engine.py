"""Stage: a graph variant -> TensorRT engine, through a content-keyed cache.

The cache key covers everything that changes the plan (ONNX bytes, build settings,
flavour and exact version, targets), so a checkpoint that was touched but not changed
re-exports to the same bytes and costs a cache hit, not a rebuild. Entries are written
by rename, so concurrent builders of one key never expose a partial plan.

Precision comes from the graph (strongly typed): fp16 from the fp16 graph, INT8 from the
QDQ graph (explicit quantization), bf16 from the bf16 variant's graph retyped to bf16 (its
marked nodes f32: graphs/bf16.py). A graph the builder refuses (TensorRT takes only
symmetric INT8, so a QDQ graph with u8 zero points is refused) is a result, not a crash:
the engine file is left empty and its sidecar says `built: false` with the builder's
reason, which the TensorRT backend reports as the reason it cannot run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx

from ..core import variants
from ..core.errors import TrtError
from ..core.files import atomic_path, link_or_copy, now, read_json, sha256_file, sha256_json, write_bytes, write_json
from ..core.paths import cache_entry, sidecar_path
from ..core.spec import POINTS, ComponentSpec
from ..graphs import bf16
from ..jobs import cli
from ..jobs.host import device_info
from ..runtimes import tensorrt_engines as trt

log = logging.getLogger(__name__)
SPEC_KEYS = ("inputs", "dims")  # what this stage reads of a component (the profile)


def build_settings(spec: ComponentSpec, variant: str, trt_cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "variant": variant,
        "precision": variants.get(variant).precision,
        "strongly_typed": True,
        "profile": {name: [list(spec.shapes(p)[name]) for p in POINTS] for name in (i.name for i in spec.inputs)},
        "workspace_mb": int(trt_cfg.get("workspace_mb", 2048)),
        "optimization_level": int(trt_cfg.get("optimization_level", 3)),
        "compute_capabilities": list(trt_cfg.get("compute_capabilities", [])),
    }


def cache_key(onnx_sha256: str, settings: dict[str, Any], fl: trt.Flavour) -> str:
    targets = settings["compute_capabilities"] if fl.name == "tensorrt_rtx" else "build-gpu"
    return sha256_json(
        {"onnx": onnx_sha256, "settings": settings, "flavour": fl.name, "version": fl.version, "targets": targets}
    )


@contextlib.contextmanager
def _key_lock(path: Path) -> Iterator[None]:
    """Serialise builders of one key where the filesystem supports flock; correctness never depends on it."""
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            log.warning("no file locks on %s (%s); concurrent builders may duplicate work", path.parent, e)
        yield


def _place(cached: Path, out: Path) -> str:
    """Hard-link the cached plan to the output (copy across filesystems), atomically."""
    with atomic_path(out, suffix=".engine") as tmp:
        tmp.unlink()
        how = link_or_copy(cached, tmp)
        os.utime(tmp)  # a fresh mtime, so the output is newer than its inputs
    return how


def _typed(onnx_path: str | Path, precision: str, work: Path) -> Path:
    """The graph as the strongly typed builder must see it: a bf16 variant's graph retyped to bf16 (its marked
    nodes, and the layer types the builder cannot make in bf16, f32); any other graph as it is."""
    if precision != "bf16":
        return Path(onnx_path)
    typed = work / f"{Path(onnx_path).stem}.bf16.onnx"
    onnx.save(bf16.typed(onnx.load(str(onnx_path)), trt.BF16_UNBUILDABLE), str(typed))
    return typed


def build_engine(
    spec: ComponentSpec, onnx_path: str | Path, out: str | Path, variant: str, trt_cfg: dict[str, Any]
) -> dict[str, Any]:
    fl = trt.load(trt_cfg.get("flavour", "auto"))
    settings = build_settings(spec, variant, trt_cfg)
    onnx_sha = sha256_file(onnx_path)
    key = cache_key(onnx_sha, settings, fl)
    cache = Path(trt_cfg.get("cache_dir", "results/engine_cache"))
    cache.mkdir(parents=True, exist_ok=True)
    entry = cache_entry(cache, key)
    cached, cached_meta = entry["engine"], entry["json"]
    with _key_lock(entry["lock"]):
        hit = cached.is_file() and cached_meta.is_file()
        if hit:
            build = read_json(cached_meta)
            log.info("%s %s: engine cache hit %s", spec.name, variant, key[:16])
        else:
            log.info("%s %s: building with %s %s (cache miss %s)", spec.name, variant, fl.name, fl.version, key[:16])
            t0 = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory(prefix=".typed.", dir=cache) as work:
                    plan, io = trt.build(
                        fl,
                        str(_typed(onnx_path, settings["precision"], Path(work))),
                        {k: [tuple(s) for s in v] for k, v in settings["profile"].items()},
                        settings["workspace_mb"],
                        settings["optimization_level"],
                        settings["compute_capabilities"],
                    )
                build = {
                    "built": True,
                    "build_seconds": round(time.perf_counter() - t0, 3),
                    "built_at": now(),
                    "io": io,
                    "engine_sha256": None,
                    "engine_bytes": len(plan),
                }
            except TrtError as e:  # the builder refused this graph: record why (the same graph is refused again)
                plan = b""
                build = {
                    "built": False,
                    "reason": str(e),
                    "build_seconds": round(time.perf_counter() - t0, 3),
                    "engine_bytes": 0,
                }
                log.warning("%s %s: not built: %s", spec.name, variant, e)
            write_bytes(cached, plan)
            build["engine_sha256"] = sha256_file(cached)
            write_json(cached_meta, build)  # written last: its presence marks a complete entry
    placed = _place(cached, Path(out))
    meta = {
        "stage": "engine",
        "model": spec.model,
        "component": spec.component,
        "variant": variant,
        "created": now(),
        "host": device_info(),
        "onnx": str(onnx_path),
        "onnx_sha256": onnx_sha,
        "flavour": fl.name,
        "flavour_version": fl.version,
        "settings": settings,
        "targets": settings["compute_capabilities"] if fl.name == "tensorrt_rtx" else "the build GPU",
        "cache": {"key": key, "hit": hit, "dir": str(cache), "placed_by": placed},
        **build,
    }
    write_json(sidecar_path(out), meta)
    log.info(
        "%s %s: %s, %.1f MB, %s",
        spec.name,
        variant,
        "cache hit" if hit else f"built in {build['build_seconds']:.1f} s" if build["built"] else "not built",
        build["engine_bytes"] / 1e6,
        out,
    )
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--variant", choices=list(variants.VARIANTS), required=True)
    p.add_argument("--tensorrt", required=True, type=json.loads, help="tensorrt config section as JSON")

    def run(a) -> None:
        cli.require_made(a, a.onnx, "no engine, since its graph")
        build_engine(a.spec, a.onnx, a.out, a.variant, a.tensorrt)

    def failed(a, reason: str) -> None:
        cli.failed_artifact("engine", a, a.onnx, reason, onnx=a.onnx, built=False, engine_bytes=0)

    cli.run("engine", run, p, argv, isolate=failed)


if __name__ == "__main__":
    main()
