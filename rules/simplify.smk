rule simplify_onnx:
    """Simplified graph, or the export itself when the simplifier fails or breaks parity."""
    input:
        onnx="results/onnx/{model}/{component}.onnx",
        ckpt=checkpoint_file,
        code=code("simplify"),
    output:
        onnx="results/onnx_sim/{model}/{component}.onnx",
        meta="results/onnx_sim/{model}/{component}.onnx.json",
    params:
        spec=spec_json,
        tool=config["simplify"]["tool"],
    log:
        "results/logs/simplify/{model}/{component}.log",
    benchmark:
        "results/jobs/simplify/{model}/{component}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.simplify --spec {params.spec:q} --tool {params.tool} "
        "--onnx {input.onnx} --out {output.onnx} > {log} 2>&1"
