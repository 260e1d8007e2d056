rule simplify_onnx:
    """Simplified graph, or the export itself when the simplifier fails or breaks parity."""
    input:
        onnx=Layout.graph("{model}", "{component}", "onnx"),
        ckpt=get_checkpoint,
    output:
        onnx=Layout.graph("{model}", "{component}", "onnx_sim"),
        meta=Layout.graph("{model}", "{component}", "onnx_sim") + ".json",
    params:
        spec=get_spec_json,
        tool=config["simplify"]["tool"],
        code=get_code("simplify"),
    log:
        Layout.log("simplify", "{model}", "{component}"),
    benchmark:
        Layout.job_benchmark("simplify", "{model}", "{component}")
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.simplify --spec {params.spec:q} --tool {params.tool} "
        "--onnx {input.onnx} --out {output.onnx} > {log} 2>&1"
