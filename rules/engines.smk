rule build_engine:
    """TensorRT engine per component and precision, reused from the content-keyed cache when possible."""
    input:
        onnx=get_onnx,
    output:
        engine=LAYOUT.engine("{model}", "{component}", "{precision}"),
        meta=LAYOUT.engine("{model}", "{component}", "{precision}") + ".json",
    params:
        spec=get_spec_json,
        tensorrt=json.dumps(config["tensorrt"], sort_keys=True),
        code=get_code("engine"),
    log:
        LAYOUT.device_log("engines", "{model}", "{component}.{precision}"),
    benchmark:
        Layout.job_benchmark("engines", "{model}", "{component}.{precision}")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        **(GPU_RESOURCES if BUILD_NEEDS_GPU else {}),
    shell:
        "python -m workflow_lib.engine --spec {params.spec:q} --precision {wildcards.precision} "
        "--tensorrt {params.tensorrt:q} --onnx {input.onnx} --out {output.engine} > {log} 2>&1"
