# Checkpoints of PyTorch model components -> ONNX -> simplified ONNX -> fp16 ONNX ->
# TensorRT engines and OpenVINO IR -> load-validation markers -> benchmark CSVs ->
# the best validated artifact per component (deployment bundle) -> one HTML report.
# All logic lives in the workflow_lib package; rules only declare files and call it.

from snakemake.utils import min_version

min_version("9.20")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/checkpoints.smk"
include: "rules/export.smk"
include: "rules/simplify.smk"
include: "rules/precision.smk"
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
        "mkdir -p {DEVICE_RESULTS}/logs && python -m workflow_lib.report --partial {DEVICE_RESULTS} "
        "--engine-dir {ENGINE_DIR} --config-hash {CONFIG_HASH} > {DEVICE_RESULTS}/logs/report_partial.log 2>&1 || true"
    )


rule all:
    default_target: True
    input:
        all_targets(),
