rule select_deploy:
    """What to ship per component and device: the fastest validated backend beating PyTorch (CI above 1), the two
    fastest timed against each other, bundled."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
    output:
        bundle=directory(PATHS.deploy("{model}")),
    wildcard_constraints:
        model=pattern(m for m in config["models"] if m not in CHAINS),
    params:
        specs=lambda wc: get_specs("deploy", wc.model),
        point=config["deploy"]["point"],
        paired=json.dumps(config["deploy"]["paired"], sort_keys=True),
        bootstrap=config["bench"]["bootstrap"],
        code=get_code("deploy"),
    log:
        PATHS.device_log("deploy", "{model}"),
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=8000,
        runtime=30,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.deploy --csvs {input.csvs} --markers {input.markers} --specs {params.specs:q} "
        "--point {params.point} --bootstrap {params.bootstrap} --paired {params.paired:q} --out {output.bundle} "
        "--threads {threads} > {log} 2>&1"


rule search_deploy:
    """What to ship for a model with a chain: the fastest assignment whose whole chain passes its gates on the
    evaluation files, the two fastest timed against each other, bundled."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        reference=PATHS.chain_reference("{model}"),
        graphs=lambda wc: [sidecar(PATHS.graph(v, wc.model, c)) for c in components(wc.model)
                           for v in variants_of(wc.model, c)],
    output:
        bundle=directory(PATHS.deploy("{model}")),
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=lambda wc: get_specs("chain_search", wc.model),
        chain=lambda wc: get_chain_settings(wc.model),
        timing=json.dumps(BENCH_TIMING, sort_keys=True),
        point=config["deploy"]["point"],
        bootstrap=config["bench"]["bootstrap"],
        code=lambda wc: chain_code("chain_search", wc.model),
    log:
        PATHS.device_log("deploy", "{model}"),
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=12000,
        runtime=60,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.chain_search --csvs {input.csvs} --markers {input.markers} "
        "--specs {params.specs:q} --chain {params.chain:q} --reference {input.reference} --timing {params.timing:q} "
        "--point {params.point} --bootstrap {params.bootstrap} --out {output.bundle} --threads {threads} > {log} 2>&1"
