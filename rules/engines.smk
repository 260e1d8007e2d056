rule build_engine:
    """TensorRT engine per component and graph variant, reused from the content-keyed cache when possible."""
    input:
        onnx=lambda wc: PATHS.graph(wc.variant, wc.model, wc.component),
    output:
        engine=PATHS.artifact(backends.ENGINE, "{variant}", "{model}", "{component}"),
        meta=sidecar(PATHS.artifact(backends.ENGINE, "{variant}", "{model}", "{component}")),
    params:
        spec=get_spec("engine"),
        tensorrt=json.dumps(config["tensorrt"], sort_keys=True),
        code=get_code("engine"),
    log:
        PATHS.device_log("engines", "{model}", "{component}.{variant}"),
    benchmark:
        PATHS.device_job_benchmark("engines", "{model}", "{component}.{variant}")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        **(GPU_RESOURCES if BUILD_NEEDS_GPU else {}),
    shell:
        "python -m workflow_lib.stages.engine --spec {params.spec:q} --variant {wildcards.variant} "
        "--tensorrt {params.tensorrt:q} --onnx {input.onnx} --out {output.engine} --threads {threads} --log {log} > {log} 2>&1"
