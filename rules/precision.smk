rule fp16_onnx:
    """fp16 graph with fp32 I/O (TensorRT 11 / RTX take precision from the graph, not a flag)."""
    input:
        onnx=Layout.graph("{model}", "{component}", "onnx_sim"),
        ckpt=get_checkpoint,
    output:
        onnx=Layout.graph("{model}", "{component}", "onnx_fp16"),
        meta=Layout.graph("{model}", "{component}", "onnx_fp16") + ".json",
    params:
        spec=get_spec_json,
        code=get_code("precision"),
    log:
        Layout.log("precision", "{model}", "{component}"),
    benchmark:
        Layout.job_benchmark("precision", "{model}", "{component}")
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.precision --spec {params.spec:q} "
        "--onnx {input.onnx} --out {output.onnx} > {log} 2>&1"
