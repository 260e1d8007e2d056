rule export_onnx:
    """PyTorch module -> ONNX with dynamic dims (the `export` variant); fails unless ORT matches PyTorch at min/opt/max."""
    input:
        ckpt=get_checkpoint,
    output:
        onnx=PATHS.graph("export", "{model}", "{component}"),
        meta=sidecar(PATHS.graph("export", "{model}", "{component}")),
        reference=PATHS.reference_outputs("{model}", "{component}"),
    params:
        spec=get_spec("export", "fp32"),
        code=get_code("export"),
    log:
        PATHS.log("export", "{model}", "{component}"),
    benchmark:
        PATHS.job_benchmark("export", "{model}", "{component}")
    # first: every graph, variant, validation and benchmark waits on it
    priority: 2
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.stages.export --spec {params.spec:q} --out {output.onnx} --reference-out {output.reference} "
        "--threads {threads} > {log} 2>&1"
