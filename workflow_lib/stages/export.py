"""Stage: checkpoint -> ONNX with dynamic dims (the `export` variant), checked against PyTorch at min/opt/max.

The dynamo exporter records, per node, the module it came from (`pkg.torch.onnx.name_scopes`);
that is kept, because the INT8 search groups nodes into blocks by it. Its stack traces are
dropped: they hold absolute paths of this checkout, and the graph's bytes must not depend on
where the checkout lives.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnx
import torch

from ..analysis import parity
from ..core.errors import ParityError, StageError, plain
from ..core.files import atomic_path, now, sha256_file, versions, write_json
from ..core.paths import sidecar_path
from ..core.samples import feeds_key, write_outputs
from ..core.spec import ComponentSpec
from ..jobs import cli
from ..runtimes import flops, onnxio
from ..runtimes.loader import load, with_method
from ..runtimes.torch_eager import TorchRunner

# Node metadata the exporter writes that names this machine's files.
_UNPORTABLE = ("pkg.torch.onnx.stack_trace",)

log = logging.getLogger(__name__)
SPEC_KEYS = ("load", "io", "gate", "exporter", "opset")  # what this stage reads of a component


def example_dims(spec: ComponentSpec) -> dict[str, int]:
    """Export-time dim values: opt, but never 1 where the range allows more (size-1 dims get specialized)."""
    return {d: r["opt"] if r["opt"] >= 2 else min(r["max"], 2) for d, r in spec.dims.items()}


def _dynamic_axes(spec: ComponentSpec) -> dict[str, dict[int, str]]:
    """Symbolic dims become dynamic axes, except those whose range is one value (exported static)."""
    dynamic = {d for d, r in spec.dims.items() if r["min"] != r["max"]}
    return {i.name: {ax: d for ax, d in enumerate(i.shape) if d in dynamic} for i in spec.inputs}


def _dynamic_shapes(module: torch.nn.Module, per_input: list[dict[int, str]]) -> tuple:
    """torch.export matches dynamic_shapes to forward's signature; a `*args` forward takes one nested tuple."""
    params = inspect.signature(module.forward).parameters.values()
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    return (tuple(per_input),) if varargs else tuple(per_input)


def _export(module, args, path, spec: ComponentSpec, input_names, output_names, axes) -> None:
    if spec.exporter == "dynamo":
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            external_data=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=_dynamic_shapes(module, [axes[n] for n in input_names]),
            opset_version=spec.opset,
            verbose=False,
        )
    else:
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=spec.opset,
        )


def _first_line(e: Exception) -> str:
    """The informative line of an exporter error (torch wraps the cause in boilerplate)."""
    cause = e
    while cause.__cause__ is not None:
        cause = cause.__cause__
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def export(spec: ComponentSpec, out: str | Path, reference_out: str | Path | None = None) -> dict[str, Any]:
    """Export, verify parity, then move into place; a graph failing parity never lands. PyTorch's outputs
    at the min, opt and max point go to `reference_out`, so later checks need not run PyTorch again."""
    loaded, report = load(spec)
    module = with_method(loaded, spec)
    feeds = spec.make_inputs(example_dims(spec))
    args = tuple(torch.from_numpy(feeds[i.name]) for i in spec.inputs)
    reference = TorchRunner(module, spec, "fp32", "cpu")
    try:
        n_out = len(reference(feeds))
    except Exception as e:  # the config's inputs do not fit the module: say which inputs, shaped how
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        raise StageError(
            f"{spec.name}: {spec.cls}.{spec.method} does not accept the inputs built from the config "
            f"{shapes} (dtypes {[i.dtype for i in spec.inputs]}): {type(e).__name__}: "
            f"{plain(str(e)).splitlines()[0] if str(e) else ''}"
        ) from e
    output_names = list(spec.outputs) if len(spec.outputs) == n_out else [f"output_{i}" for i in range(n_out)]
    input_names = [i.name for i in spec.inputs]
    axes = _dynamic_axes(spec)
    t0 = time.perf_counter()
    with atomic_path(out, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", category=(DeprecationWarning, FutureWarning))
        try:
            _export(module, args, tmp, spec, input_names, output_names, axes)
        except Exception as e:  # the exporter's own errors are long; keep the line that names the op
            raise StageError(f"{spec.name}: {spec.exporter} export failed: {_first_line(e)}") from e
        seconds = time.perf_counter() - t0
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        for node in model.graph.node:
            keep = [p for p in node.metadata_props if p.key not in _UNPORTABLE]
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
        recorded: dict[str, list] = {}

        def recording(feeds):
            outputs = recorded[feeds_key(feeds)] = reference(feeds)
            return outputs

        result = parity.check(spec, recording, parity.onnxruntime(tmp), "fp32")
        if not result["ok"]:
            raise ParityError(parity.describe_failure(spec, result, f"{spec.exporter} export"))
        onnxio.save(model, tmp)  # re-save normalised, then the context renames it into place
    meta = {
        "stage": "export",
        "component": spec.component,
        "model": spec.model,
        "created": now(),
        "checkpoint": spec.checkpoint,
        "checkpoint_sha256": sha256_file(spec.checkpoint),
        "load": asdict(report),
        "class": spec.cls,
        "method": spec.method,
        "exporter": spec.exporter,
        "opset": spec.opset,
        "export_dims": example_dims(spec),
        "export_seconds": round(seconds, 3),
        "flops": {p: {"dims": spec.point(p), "flops": n} for p, n in flops.per_point(module, spec).items()},
        "onnx_sha256": sha256_file(out),
        "graph": onnxio.summary(model),
        "parity": result,
        "versions": versions("torch", "onnx", "onnxscript", "onnxruntime"),
    }
    if reference_out:
        write_outputs(reference_out, recorded)
    write_json(sidecar_path(out), meta)
    log.info(
        "exported %s (%s, opset %d) in %.1f s: %d nodes",
        spec.name,
        spec.exporter,
        spec.opset,
        seconds,
        meta["graph"]["nodes"],
    )
    return meta


def main(argv: list[str] | None = None) -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--reference-out", help="where PyTorch's outputs at min/opt/max go (.npz)")
    cli.run("export", lambda a: export(a.spec, a.out, a.reference_out), p, argv)


if __name__ == "__main__":
    main()
