rule export_onnx:
    """PyTorch module -> ONNX with dynamic dims; fails unless ORT matches PyTorch at min/opt/max."""
    input:
        ckpt=checkpoint_file,
        code=code("export"),
    output:
        onnx="results/onnx/{model}/{component}.onnx",
        meta="results/onnx/{model}/{component}.onnx.json",
    params:
        spec=spec_json,
    log:
        "results/logs/export/{model}/{component}.log",
    benchmark:
        "results/jobs/export/{model}/{component}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.export --spec {params.spec:q} --out {output.onnx} > {log} 2>&1"
