rule build_engine:
    """TensorRT engine per component and precision, reused from the content-keyed cache when possible."""
    input:
        onnx=onnx_for,
        code=code("engine"),
    output:
        engine=f"{ENGINE_DIR}/{{model}}/{{component}}.{{precision}}.engine",
        meta=f"{ENGINE_DIR}/{{model}}/{{component}}.{{precision}}.engine.json",
    params:
        spec=spec_json,
        tensorrt=json.dumps(config["tensorrt"], sort_keys=True),
    log:
        "results/logs/engines/{model}/{component}.{precision}.log",
    benchmark:
        "results/jobs/engines/{model}/{component}.{precision}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        **(GPU_RESOURCES if BUILD_NEEDS_GPU else {}),
    shell:
        "python -m workflow_lib.engine --spec {params.spec:q} --precision {wildcards.precision} "
        "--tensorrt {params.tensorrt:q} --onnx {input.onnx} --out {output.engine} > {log} 2>&1"
