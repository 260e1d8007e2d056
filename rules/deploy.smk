rule select_deploy:
    """What to ship per component and device: the fastest validated backend beating PyTorch (CI above 1), the two
    fastest timed against each other."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
    output:
        decision=PATHS.decision("{model}"),
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
        "--point {params.point} --bootstrap {params.bootstrap} --paired {params.paired:q} --out {output.decision} "
        "--threads {threads} > {log} 2>&1"


rule search_deploy:
    """What to ship for a model with a chain: the fastest assignment whose whole chain passes its gates on the
    evaluation files, the two fastest timed against each other."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        reference=PATHS.chain_reference("{model}"),
        graphs=lambda wc: [sidecar(PATHS.graph(v, wc.model, c)) for c in components(wc.model)
                           for v in variants_of(wc.model, c)],
    output:
        decision=PATHS.decision("{model}"),
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
        "--point {params.point} --bootstrap {params.bootstrap} --out {output.decision} --threads {threads} > {log} 2>&1"


rule live:
    """The shipped chain converted live at each chunk size (chain.stream): latency a listener gets, and fidelity."""
    input:
        decision=PATHS.decision("{model}"),
        reference=PATHS.chain_reference("{model}"),
        artifacts=lambda wc: candidate_artifacts(wc.model),
    output:
        record=PATHS.live("{model}"),
        wav=report(PATHS.live_wav("{model}"), caption="../report/live_wav.rst", category="Audio"),
    wildcard_constraints:
        model=pattern(m for m in CHAINS if chain_of(m).get("stream")),
    params:
        specs=lambda wc: get_specs("live", wc.model),
        chain=lambda wc: get_chain_settings(wc.model, "settings", "roles", "stream"),
        code=lambda wc: chain_code("live", wc.model),
    log:
        PATHS.device_log("live", "{model}"),
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=8000,
        runtime=30,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.live --specs {params.specs:q} --chain {params.chain:q} "
        "--decision {input.decision} --reference {input.reference} --out {output.record} --wav {output.wav} "
        "--threads {threads} > {log} 2>&1"


rule bundle:
    """The deployment bundle: what was decided, the chosen files, the runner, its README and requirements."""
    input:
        decision=PATHS.decision("{model}"),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        live=lambda wc: [PATHS.live(wc.model)] if wc.model in CHAINS and chain_of(wc.model).get("stream") else [],
    output:
        bundle=directory(PATHS.deploy("{model}")),
    params:
        specs=lambda wc: get_specs("bundle", wc.model),
        chain=lambda wc: get_chain_settings(wc.model, "settings", "roles") if wc.model in CHAINS else "null",
        live=lambda wc, input: f"--live {input.live}" if input.live else "",
        threads=TIMING_CORES,
        # what the bundle vendors (the runner, and the chain plug-in) is part of its code
        code=lambda wc: get_code("bundle", plugins=[RUNNER, *([chain_of(wc.model)["plugin"]] if wc.model in CHAINS else [])]),
    log:
        PATHS.device_log("bundle", "{model}"),
    localrule: True
    shell:
        "python -m workflow_lib.stages.bundle --decision {input.decision} --specs {params.specs:q} "
        "--chain {params.chain:q} {params.live} --runner-threads {params.threads} --out {output.bundle} > {log} 2>&1"
