checkpoint probe_host:
    """What this host can run (per backend and variant, with the reason where not); the DAG is re-evaluated with it."""
    output:
        PATHS.host,
    params:
        backends=" ".join(BACKENDS),
        variants=" ".join(sorted({v for (m, c) in SPECS for v in variants_of(m, c)})),
        # the config sections a backend's probe reads (the TensorRT flavour and its targets), under their own keys
        probe=json.dumps({"tensorrt": {k: config["tensorrt"][k] for k in ("flavour", "compute_capabilities")}},
                         sort_keys=True),
        # re-probe on another machine, another GPU class, or other runtime versions
        machine=platform.node(),
        gpu_class=config["cluster"]["gpu_class"] or "",
        runtimes=runtime_versions(),
        code=get_code("probe"),
    log:
        PATHS.device_log("probe"),
    benchmark:
        PATHS.device_job_benchmark("probe")
    resources:
        mem_mb=2000,
        runtime=10,
        **(GPU_RESOURCES if config["cluster"]["gpu_class"] else {}),
    shell:
        "python -m workflow_lib.stages.probe --config {params.probe:q} --backends {params.backends} "
        "--variants {params.variants} --out {output} > {log} 2>&1"
