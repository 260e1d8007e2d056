rule validate_onnx:
    """ONNX Runtime load-validation marker: passed, or failed (which fails the job)."""
    input:
        artifact=onnx_for,
        ckpt=checkpoint_file,
        code=code("validate"),
    output:
        marker=f"{DEVICE_RESULTS}/validation/{{model}}/{{component}}.onnxruntime.{{precision}}.json",
    params:
        spec=spec_json,
    log:
        "results/logs/validate/{model}/{component}.onnxruntime.{precision}.log",
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    shell:
        "python -m workflow_lib.validate --spec {params.spec:q} --backend onnxruntime "
        "--precision {wildcards.precision} --artifact {input.artifact} --out {output.marker} > {log} 2>&1"


rule validate_engine:
    """TensorRT load-validation marker: passed, failed (fails the job) or skipped with the exact reason."""
    input:
        artifact=lambda wc: engine_path(wc.model, wc.component, wc.precision),
        ckpt=checkpoint_file,
        code=code("validate"),
    output:
        marker=f"{DEVICE_RESULTS}/validation/{{model}}/{{component}}.tensorrt.{{precision}}.json",
    params:
        spec=spec_json,
    log:
        "results/logs/validate/{model}/{component}.tensorrt.{precision}.log",
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
        **GPU_RESOURCES,
    shell:
        "python -m workflow_lib.validate --spec {params.spec:q} --backend tensorrt "
        "--precision {wildcards.precision} --artifact {input.artifact} --out {output.marker} > {log} 2>&1"
