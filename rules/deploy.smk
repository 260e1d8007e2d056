rule select_deploy:
    """What to ship per component and device: the fastest validated backend beating PyTorch (CI above 1), the two
    fastest timed against each other."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        samples=lambda wc: sample_files(wc.model),
    output:
        decision=PATHS.decision("{model}"),
    wildcard_constraints:
        model=pattern(m for m in config["models"] if m not in CHAINS),
    params:
        specs=lambda wc: get_specs("deploy", wc.model),
        samples=lambda wc: json.dumps(get_samples(wc.model), sort_keys=True),
        point=config["deploy"]["point"],
        paired=json.dumps(config["deploy"]["paired"], sort_keys=True),
        bootstrap=config["bench"]["bootstrap"],
        code=get_code("deploy"),
    log:
        PATHS.device_log("deploy", "{model}"),
    benchmark:
        PATHS.device_job_benchmark("deploy", "{model}")
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=8000,
        runtime=30,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.deploy --csvs {input.csvs} --markers {input.markers} --specs {params.specs:q} "
        "--point {params.point} --bootstrap {params.bootstrap} --paired {params.paired:q} --samples {params.samples:q} "
        "--out {output.decision} --threads {threads} > {log} 2>&1"


rule search_deploy:
    """What to ship for a model with a chain: the fastest assignment whose whole chain passes its gates on the
    search files, the two fastest timed against each other; then judged once on the evaluation files."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        reference=PATHS.chain_reference("{model}"),
        graphs=lambda wc: [sidecar(PATHS.graph(v, wc.model, c)) for c in components(wc.model)
                           for v in variants_of(wc.model, c)],
        samples=lambda wc: sample_files(wc.model),
        exports=lambda wc: [sidecar(PATHS.graph("export", wc.model, c)) for c in components(wc.model)],
    output:
        decision=PATHS.decision("{model}"),
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=lambda wc: get_specs("chain_search", wc.model),
        chain=lambda wc: get_chain(wc.model, "scoring", "settings", "roles", "gates", "gating", "search",
                                   "assignments", "safe"),
        point=config["deploy"]["point"],
        bootstrap=config["bench"]["bootstrap"],
        samples=lambda wc: json.dumps(get_samples(wc.model), sort_keys=True),
        code=lambda wc: chain_code("chain_search", wc.model),
    log:
        PATHS.device_log("deploy", "{model}"),
    benchmark:
        PATHS.device_job_benchmark("deploy", "{model}")
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=12000,
        runtime=60,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.chain_search --csvs {input.csvs} --markers {input.markers} "
        "--specs {params.specs:q} --chain {params.chain:q} --reference {input.reference} "
        "--point {params.point} --bootstrap {params.bootstrap} --samples {params.samples:q} --flops {input.exports} "
        "--out {output.decision} "
        "--threads {threads} > {log} 2>&1"


rule live:
    """The shipped chain converted live at each chunk size (chain.stream): latency a listener gets, and fidelity."""
    input:
        decision=PATHS.decision("{model}"),
        reference=PATHS.chain_reference("{model}"),
        artifacts=lambda wc: candidate_artifacts(wc.model),
    output:
        record=PATHS.live("{model}"),
        listen=PATHS.live_listen("{model}"),
    wildcard_constraints:
        model=pattern(m for m in CHAINS if chain_of(m).stream),
    params:
        specs=lambda wc: get_specs("live", wc.model),
        chain=lambda wc: get_chain(wc.model, "scoring", "settings", "roles", "stream"),
        code=lambda wc: chain_code("live", wc.model),
    log:
        PATHS.device_log("live", "{model}"),
    benchmark:
        PATHS.device_job_benchmark("live", "{model}")
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=8000,
        runtime=30,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.live --specs {params.specs:q} --chain {params.chain:q} "
        "--decision {input.decision} --reference {input.reference} --out {output.record} --listen {output.listen} "
        "--threads {threads} > {log} 2>&1"


rule live_media:
    """The first evaluation file streamed by the shipped chain, as the chain writes its output."""
    input:
        listen=PATHS.live_listen("{model}"),
    output:
        report(PATHS.live_media("{model}", "{suffix}"), caption="../report/live_media.rst", category="Media"),
    wildcard_constraints:
        suffix=r"\.[A-Za-z0-9]+",
    params:
        chain=lambda wc: get_chain(wc.model, "settings"),
        code=lambda wc: chain_code("media", wc.model, scoring=False),
    log:
        PATHS.device_log("media", "{model}", "live{suffix}"),
    benchmark:
        PATHS.device_job_benchmark("media", "{model}", "live{suffix}")
    localrule: True
    shell:
        "python -m workflow_lib.stages.media --chain {params.chain:q} --listen {input.listen} --which stream "
        "--out {output} > {log} 2>&1"


rule bundle:
    """The deployment bundle: what was decided, the chosen files, the runner, its README and requirements."""
    input:
        decision=PATHS.decision("{model}"),
        artifacts=lambda wc: candidate_artifacts(wc.model),
        live=lambda wc: [PATHS.live(wc.model)] if wc.model in CHAINS and chain_of(wc.model).stream else [],
    output:
        bundle=directory(PATHS.deploy("{model}")),
    params:
        specs=lambda wc: get_specs("bundle", wc.model),
        chain=lambda wc: get_chain(wc.model, "settings", "roles", "stream") if wc.model in CHAINS else "null",
        live=lambda wc, input: f"--live {input.live}" if input.live else "",
        threads=TIMING_CORES,
        # what the bundle vendors (the runner, and the chain plug-in) is part of its code
        code=lambda wc: get_code("bundle", plugins=[RUNNER, *([chain_of(wc.model).plugin] if wc.model in CHAINS else [])]),
    log:
        PATHS.device_log("bundle", "{model}"),
    benchmark:
        PATHS.device_job_benchmark("bundle", "{model}")
    localrule: True
    shell:
        "python -m workflow_lib.stages.bundle --decision {input.decision} --specs {params.specs:q} "
        "--chain {params.chain:q} {params.live} --runner-threads {params.threads} --out {output.bundle} > {log} 2>&1"
