rule export_onnx:
    """PyTorch module -> ONNX with dynamic dims; fails unless ORT matches PyTorch at min/opt/max."""
    input:
        ckpt=get_checkpoint,
    output:
        onnx=Layout.graph("{model}", "{component}", "onnx"),
        meta=Layout.graph("{model}", "{component}", "onnx") + ".json",
    params:
        spec=get_spec_json,
        code=get_code("export"),
    log:
        Layout.log("export", "{model}", "{component}"),
    benchmark:
        Layout.job_benchmark("export", "{model}", "{component}")
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.export --spec {params.spec:q} --out {output.onnx} > {log} 2>&1"
