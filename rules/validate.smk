rule validate_cpu:
    """Load-validation marker: passed, failed or skipped with the exact reason (the variant's gate, vs PyTorch).

    validate_cpu serves backends that run on the CPU; validate_gpu (below) the same for GPU backends,
    in a job that asks for a GPU. Only series the host probe says can run here are planned.
    """
    input:
        unpack(get_validation_inputs),
    output:
        marker=PATHS.marker("{model}", "{component}", "{backend}", "{variant}"),
    wildcard_constraints:
        backend=pattern(b.name for b in backends.marker_backends() if not b.requests_gpu),
    params:
        spec=get_spec("validate"),
        calibration=judged_on,
        code=get_code("validate"),
    log:
        PATHS.device_log("validate", "{model}", "{component}.{backend}.{variant}"),
    benchmark:
        PATHS.device_job_benchmark("validate", "{model}", "{component}.{backend}.{variant}")
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.stages.validate --spec {params.spec:q} --backend {wildcards.backend} "
        "--variant {wildcards.variant} --artifact {input.artifact} {params.calibration} --reference {input.reference} "
        "--out {output.marker} "
        "--threads {threads} --log {log} > {log} 2>&1"


use rule validate_cpu as validate_gpu with:
    wildcard_constraints:
        backend=pattern(b.name for b in backends.marker_backends() if b.requests_gpu),
    resources:
        mem_mb=6000,
        runtime=30,
        **GPU_RESOURCES,
