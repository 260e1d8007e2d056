rule openvino_ir:
    """OpenVINO IR (.xml + .bin) from a graph variant's ONNX, for the OpenVINO backend."""
    input:
        onnx=lambda wc: PATHS.graph(wc.variant, wc.model, wc.component),
    output:
        xml=PATHS.openvino("{variant}", "{model}", "{component}"),
        bin=ir_weights(PATHS.openvino("{variant}", "{model}", "{component}")),
        meta=PATHS.openvino("{variant}", "{model}", "{component}") + ".json",
    params:
        spec=get_spec("openvino_ir"),
        code=get_code("openvino_ir"),
    log:
        PATHS.log("openvino", "{model}", "{component}.{variant}"),
    benchmark:
        PATHS.job_benchmark("openvino", "{model}", "{component}.{variant}")
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.stages.openvino_ir --spec {params.spec:q} --variant {wildcards.variant} --onnx {input.onnx} "
        "--out {output.xml} --threads {threads} > {log} 2>&1"
