# Checkpoints of PyTorch model components -> ONNX -> graph variants (simplified fp32, fp16, INT8
# calibrated on real inputs) -> TensorRT engines and OpenVINO IR -> load-validation markers ->
# benchmark CSVs -> what to ship (per component, or on the whole chain) -> one HTML report.
# All logic lives in the workflow_lib package; rules only declare files and call it.

import glob
import os

from snakemake.utils import min_version

min_version("9.20")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


# One rule file per stage (checkpoints, probe, export, variants, calibration, engines, openvino, validate,
# bench, deploy, report, ...), each holding rules only: a backend whose artifact kind is new brings its own.
for _rules in sorted(glob.glob(os.path.join(workflow.basedir, "rules", "*.smk"))):
    if os.path.basename(_rules) != "common.smk":

        include: _rules


onerror:
    # A failed run (with --keep-going: after all other jobs) still gets a report that shows
    # what failed and why, next to everything that did complete.
    shell(
        "mkdir -p {PATHS.device}/logs && python -m workflow_lib.stages.report --partial {PATHS.device} "
        "--engine-dir {PATHS.engines} --config-hash {CONFIG_HASH} > {PARTIAL_LOG} 2>&1 || true"
    )


rule all:
    default_target: True
    input:
        all_targets,
