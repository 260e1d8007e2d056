rule fp16_onnx:
    """fp16 graph with fp32 I/O (TensorRT 11 / RTX take precision from the graph, not a flag)."""
    input:
        onnx="results/onnx_sim/{model}/{component}.onnx",
        ckpt=checkpoint_file,
        code=code("precision"),
    output:
        onnx="results/onnx_fp16/{model}/{component}.onnx",
        meta="results/onnx_fp16/{model}/{component}.onnx.json",
    params:
        spec=spec_json,
    log:
        "results/logs/precision/{model}/{component}.log",
    benchmark:
        "results/jobs/precision/{model}/{component}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.precision --spec {params.spec:q} "
        "--onnx {input.onnx} --out {output.onnx} > {log} 2>&1"
