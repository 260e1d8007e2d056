rule validate_artifact:
    """Load-validation marker: passed, failed (fails the job) or skipped with the exact reason."""
    input:
        artifact=validation_artifact,
        ckpt=checkpoint_file,
        code=code("validate"),
    output:
        marker="results/validation/{model}/{component}.{backend}.{precision}.json",
    params:
        spec=spec_json,
    log:
        "results/logs/validate/{model}/{component}.{backend}.{precision}.log",
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
        gpu=lambda wc: 1 if wc.backend == "tensorrt" else 0,
    shell:
        "python -m workflow_lib.validate --spec {params.spec:q} --backend {wildcards.backend} "
        "--precision {wildcards.precision} --artifact {input.artifact} --out {output.marker} > {log} 2>&1"
