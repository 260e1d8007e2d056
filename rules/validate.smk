rule validate_cpu:
    """Load-validation marker: passed, failed (which fails the job) or skipped with the exact reason.

    validate_cpu serves backends that run on the CPU; validate_gpu (below) the same for GPU backends,
    in a job that asks for a GPU.
    """
    input:
        artifact=get_validation_artifact,
        ckpt=get_checkpoint,
    output:
        marker=LAYOUT.marker("{model}", "{component}", "{backend}", "{precision}"),
    wildcard_constraints:
        backend=backend_pattern(gpu_job=False, validation="marker"),
    params:
        spec=get_spec_json,
        code=get_code("validate"),
    log:
        LAYOUT.device_log("validate", "{model}", "{component}.{backend}.{precision}"),
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.validate --spec {params.spec:q} --backend {wildcards.backend} "
        "--precision {wildcards.precision} --artifact {input.artifact} --out {output.marker} > {log} 2>&1"


use rule validate_cpu as validate_gpu with:
    wildcard_constraints:
        backend=backend_pattern(gpu_job=True, validation="marker"),
    resources:
        mem_mb=6000,
        runtime=30,
        **GPU_RESOURCES,
