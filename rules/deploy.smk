rule select_deploy:
    """What to ship per component and device: the fastest validated backend beating PyTorch (CI above 1), bundled."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
    output:
        bundle=directory(PATHS.deploy("{model}")),
    wildcard_constraints:
        model=pattern(m for m in config["models"] if m not in CHAINS),
    params:
        specs=lambda wc: json.dumps({c: SPECS[(wc.model, c)].slice("deploy") for c in components(wc.model)}, sort_keys=True),
        point=config["deploy"]["point"],
        bootstrap=config["bench"]["bootstrap"],
        code=get_code("deploy"),
    log:
        PATHS.device_log("deploy", "{model}"),
    localrule: True
    shell:
        "python -m workflow_lib.stages.deploy --csvs {input.csvs} --markers {input.markers} --specs {params.specs:q} "
        "--point {params.point} --bootstrap {params.bootstrap} --out {output.bundle} > {log} 2>&1"


rule search_deploy:
    """What to ship for a model with a chain: the fastest assignment whose whole chain passes e2e.fidelity, bundled."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        reference=PATHS.chain_reference("{model}"),
    output:
        bundle=directory(PATHS.deploy("{model}")),
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=get_chain_specs,
        chain=get_chain_settings,
        timing=json.dumps(BENCH_TIMING, sort_keys=True),
        point=config["deploy"]["point"],
        bootstrap=config["bench"]["bootstrap"],
        code=code_hash("workflow_lib.models.svc.search"),
    log:
        PATHS.device_log("deploy", "{model}"),
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=12000,
        runtime=60,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.models.svc.search --csvs {input.csvs} --markers {input.markers} --specs {params.specs:q} "
        "--e2e {params.chain:q} --reference {input.reference} --timing {params.timing:q} --point {params.point} "
        "--bootstrap {params.bootstrap} --out {output.bundle} --threads {threads} > {log} 2>&1"
