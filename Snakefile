# Checkpoints of PyTorch model components -> ONNX -> graph variants (simplified fp32, fp16, INT8
# calibrated on real inputs) -> TensorRT engines and OpenVINO IR -> load-validation markers ->
# benchmark CSVs -> what to ship (per component, or on the whole chain) -> one HTML report.
# All logic lives in the workflow_lib package; rules only declare files and call it.

from snakemake.utils import min_version

min_version("9.20")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/checkpoints.smk"
include: "rules/probe.smk"
include: "rules/export.smk"
include: "rules/variants.smk"
include: "rules/calibration.smk"
include: "rules/engines.smk"
include: "rules/openvino.smk"
include: "rules/validate.smk"
include: "rules/bench.smk"
include: "rules/deploy.smk"
include: "rules/report.smk"


onerror:
    # A failed run (with --keep-going: after all other jobs) still gets a report that shows
    # what failed and why, next to everything that did complete.
    shell(
        "mkdir -p {PATHS.device}/logs && python -m workflow_lib.stages.report --partial {PATHS.device} "
        "--engine-dir {PATHS.engines} --config-hash {CONFIG_HASH} > {PATHS.device}/logs/report_partial.log 2>&1 || true"
    )


rule all:
    default_target: True
    input:
        all_targets,
