rule openvino_ir:
    """OpenVINO IR (.xml + .bin) from a graph variant's ONNX, for the OpenVINO backend."""
    input:
        onnx=lambda wc: PATHS.graph(wc.variant, wc.model, wc.component),
    output:
        xml=PATHS.artifact(backends.OPENVINO_IR, "{variant}", "{model}", "{component}"),
        bin=str(backends.OPENVINO_IR.files(PATHS.artifact(backends.OPENVINO_IR, "{variant}", "{model}", "{component}"))[1]),
        meta=sidecar(PATHS.artifact(backends.OPENVINO_IR, "{variant}", "{model}", "{component}")),
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
        "--out {output.xml} --weights {output.bin} --threads {threads} --log {log} > {log} 2>&1"
