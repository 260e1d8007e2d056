rule openvino_ir:
    """OpenVINO IR (.xml + .bin) from the graph of that precision, for the OpenVINO backend."""
    input:
        onnx=get_onnx,
    output:
        xml=Layout.openvino("{model}", "{component}", "{precision}"),
        bin=Layout.openvino("{model}", "{component}", "{precision}").removesuffix(".xml") + ".bin",
        meta=Layout.openvino("{model}", "{component}", "{precision}") + ".json",
    params:
        spec=get_spec_json,
        code=get_code("openvino_ir"),
    log:
        Layout.log("openvino", "{model}", "{component}.{precision}"),
    benchmark:
        Layout.job_benchmark("openvino", "{model}", "{component}.{precision}")
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.openvino_ir --spec {params.spec:q} --onnx {input.onnx} --out {output.xml} > {log} 2>&1"
