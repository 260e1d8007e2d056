"""ONNX Runtime static quantization (QDQ) of an fp32 graph, as a recipe: which nodes stay float, which take
Percentile ranges, which float-exact transforms run first. The plumbing the INT8 search builds its
candidates with (graphs/int8_search.py), and nothing else: no judging, no choosing.

Calibration reads the samples one at a time (ONNX Runtime collects per call and merges), so samples of
any length and any layout work: nothing is ever cut or batched along an axis, fixed or dynamic.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import int8_recovery as recovery

SCOPES = "pkg.torch.onnx.name_scopes"  # the exporter's record of each node's module path
TRANSFORMS = ("equalization", "bias_correction")  # tried in this order, kept only if they lower the error
Feeds = dict[str, np.ndarray]


def blocks(model: onnx.ModelProto, nodes: list[str]) -> dict[str, list[str]]:
    """Quantizable nodes grouped by the module they came from, at the shallowest depth that gives
    more than one group; a node without a recorded module is a block of its own."""
    scopes = {}
    for n in model.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        scopes[n.name] = [s for s in ast.literal_eval(meta.get(SCOPES, "[]")) if s][:-1]  # drop the op's own name
    depth = 1
    while True:
        groups: dict[str, list[str]] = {}
        for name in nodes:
            path = scopes.get(name) or []
            groups.setdefault(path[depth - 1] if len(path) >= depth else name, []).append(name)
        deeper = any(len(scopes.get(n) or []) > depth for n in nodes)
        if len(groups) > 1 or not deeper:
            return groups
        depth += 1


class Reader:
    """ONNX Runtime's calibration data reader, one sample per collection (`set_range`, as its strided
    calibration asks for): samples of different shapes are never stacked."""

    def __init__(self, samples: list[Feeds]):
        self.samples, self.it = samples, iter(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.it = iter(self.samples[start_index:end_index])

    def get_next(self) -> Feeds | None:
        return next(self.it, None)


@dataclass(frozen=True)
class Recipe:
    """One candidate: the nodes left float, the nodes whose activations take Percentile ranges instead of the
    configured method's, and the float-exact transforms applied to the graph first."""

    float_nodes: frozenset[str] = frozenset()
    percentile: frozenset[str] = frozenset()
    transforms: tuple[str, ...] = ()

    def key(self) -> tuple:
        return (tuple(sorted(self.float_nodes)), tuple(sorted(self.percentile)), self.transforms)


class Quantizer:
    """Builds the recipes of one fp32 graph; ranges and transformed graphs are computed once and reused."""

    def __init__(self, src: str | Path, settings: dict[str, Any], calibration: list[Feeds], work: Path, block_of):
        self.src, self.settings, self.calibration, self.work = str(src), settings, calibration, work
        self.model = onnx.load(self.src)
        self.block_of = block_of  # quantizable node -> its block
        self._sources: dict[tuple, str] = {}
        self._means: dict[bool, dict[str, np.ndarray]] = {}  # per (equalized or not), the channel means
        self._equalized: onnx.ModelProto | None = None
        self._percentile: dict[str, Any] | None = None
        self.applied: dict[str, list[dict[str, Any]]] = {}  # what each transform did, the first time it ran

    def source(self, recipe: Recipe) -> str:
        """The fp32 graph with the recipe's transforms applied, written once per distinct graph: equalization
        is float-exact; bias correction moves the biases of the convs that are quantized, from channel means
        over the calibration samples."""
        if not recipe.transforms:
            return self.src
        equalized = "equalization" in recipe.transforms
        corrected = ()
        if "bias_correction" in recipe.transforms:
            corrected = tuple(sorted(n for n in self.block_of if n not in recipe.float_nodes))
        key = (equalized, corrected)
        if key not in self._sources:
            model = self.model
            if equalized:
                if "equalization" not in self.applied:
                    self._equalized, self.applied["equalization"] = recovery.equalize(self.model)
                model = self._equalized
            if corrected:
                if equalized not in self._means:
                    tensors = sorted({n.input[0] for n in recovery.correctable(model, self.block_of)})
                    self._means[equalized] = recovery.channel_means(model, tensors, self.calibration)
                model, done = recovery.bias_correct(
                    model, self._means[equalized], corrected, bool(self.settings["reduce_range"])
                )
                self.applied.setdefault("bias_correction", done)
            path = self.work / f"source{len(self._sources)}.onnx"
            onnx.save(model, str(path))
            self._sources[key] = str(path)
        return self._sources[key]

    def percentile_ranges(self) -> dict[str, Any]:
        """Every activation's Percentile range, from one calibration pass over the samples, one at a time."""
        if self._percentile is None:
            from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

            calibrator = create_calibrator(
                self.src,
                augmented_model_path=str(self.work / "percentile.onnx"),
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"percentile": 99.999},
            )
            for sample in self.calibration:  # histograms merge across calls
                calibrator.collect_data(Reader([sample]))
            ranges = calibrator.compute_data()
            self._percentile = {
                name: {"lowest": float(np.asarray(r.range_value[0])), "highest": float(np.asarray(r.range_value[1]))}
                for name, r in ranges.data.items()
            }
        return self._percentile

    def build(self, recipe: Recipe, path: Path) -> None:
        """The recipe's QDQ graph at `path`."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        s = self.settings
        symmetric = s["activation"] == "int8"
        overrides = {}
        if recipe.percentile:
            tensors = recovery.node_tensors(self.model, recipe.percentile)
            overrides = recovery.percentile_overrides(self.percentile_ranges(), tensors)
        source = self.source(recipe)
        quantize_static(
            source,
            str(path),
            Reader(self.calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(s["op_types"]),
            per_channel=bool(s["per_channel"]),
            reduce_range=bool(s["reduce_range"]),
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=sorted(recipe.float_nodes),
            calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]),
            # ranges computed once per calibration set and source graph
            calibration_cache_path=str(self.work / f"ranges-{Path(source).stem}.json"),
            extra_options={
                "ActivationSymmetric": symmetric,
                "QuantizeBias": not symmetric,
                "CalibStridedMinMax": 1,  # one sample per collection: any shapes, never stacked
                **({"TensorQuantOverrides": overrides} if overrides else {}),
            },
        )
