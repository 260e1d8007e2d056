rule bench_component:
    """Latency of one backend and graph variant, on a slot of bench.threads cores of its own."""
    input:
        unpack(get_bench_inputs),
    output:
        csv=PATHS.bench_csv("{model}", "{component}", "{backend}", "{variant}"),
        samples=samples_path(PATHS.bench_csv("{model}", "{component}", "{backend}", "{variant}")),
        meta=sidecar(PATHS.bench_csv("{model}", "{component}", "{backend}", "{variant}")),
    params:
        series=lambda wc: shlex.join(bench_args(wc.model, wc.component, wc.backend, wc.variant)),
        timing=bench_timing,
        deferred=lambda wc: " ".join(["--deferred", *deferred_points(wc)]) if deferred_points(wc) else "",
        code=get_code("bench"),
    log:
        PATHS.device_log("bench", "{model}", "{component}.{backend}.{variant}"),
    benchmark:
        PATHS.device_job_benchmark("bench", "{model}", "{component}.{backend}.{variant}")
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=8000,
        runtime=60,
        **gpu_resources_if(lambda wc: uses_gpu(wc.backend)),
    shell:
        "python -m workflow_lib.stages.bench {params.series} --settings {params.timing:q} {params.deferred} "
        "--out {output.csv} --threads {threads} --log {log} > {log} 2>&1"


rule bench_shipped:
    """What a model ships, at the points its benchmarks left out (bench.prune), on the devices it ships on: how
    what ships scales. Each series in a benchmark process of its own; it follows the decision, like the chain bench
    of what ships."""
    input:
        decision=PATHS.decision("{model}"),
        host=PATHS.host,  # which series run here (their arguments)
    output:
        directory(PATHS.shipped_dir("{model}")),
    params:
        series=lambda wc: shipped_args(wc.model),
        outs=lambda wc: json.dumps({c: PATHS.shipped_csv(wc.model, c) for c in components(wc.model)}, sort_keys=True),
        timing=json.dumps({**BENCH_TIMING, "points": PRUNED_POINTS}, sort_keys=True),
        code=get_code("bench_shipped", plugins=("workflow_lib.stages.bench",)),  # it runs the bench stage
    log:
        PATHS.device_log("bench", "{model}", "shipped"),
    benchmark:
        PATHS.device_job_benchmark("bench", "{model}", "shipped")
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=8000,
        runtime=60,
        **gpu_resources_if(lambda wc: host()["cuda"]),
    shell:
        "python -m workflow_lib.stages.bench_shipped --decision {input.decision} --series {params.series:q} "
        "--settings {params.timing:q} --outs {params.outs:q} --bench-threads {threads} --log {log} > {log} 2>&1"


rule bench_chain:
    """A model's whole chain, input in -> output out, for one backend assignment: scored on the evaluation files, timed."""
    input:
        unpack(get_chain_bench_inputs),
    output:
        csv=PATHS.chain_csv("{model}", "{assignment}"),
        samples=samples_path(PATHS.chain_csv("{model}", "{assignment}")),
        meta=sidecar(PATHS.chain_csv("{model}", "{assignment}")),
        listen=PATHS.assignment_listen("{model}", "{assignment}"),
    params:
        specs=lambda wc: get_specs("chain_bench", wc.model),
        chain=lambda wc: get_chain(wc.model, "scoring", "settings", "roles", "gates", "gating"),
        args=get_chain_bench_args,
        timing=json.dumps(BENCH_TIMING, sort_keys=True),
        code=lambda wc: chain_code("chain_bench", wc.model),
    log:
        PATHS.device_log("bench", "{model}", "chain.{assignment}"),
    benchmark:
        PATHS.device_job_benchmark("bench", "{model}", "chain.{assignment}")
    threads: TIMING_CORES
    resources:
        timing=1,
        mem_mb=12000,
        runtime=60,
        **gpu_resources_if(chain_uses_gpu),
    shell:
        "python -m workflow_lib.stages.chain_bench --specs {params.specs:q} --chain {params.chain:q} "
        "--reference {input.reference} --assignment {wildcards.assignment} {params.args} --timing {params.timing:q} "
        "--out {output.csv} --listen {output.listen} --threads {threads} > {log} 2>&1"


rule assignment_media:
    """What an assignment makes of the first evaluation file, as media a person judges (the plug-in's)."""
    input:
        listen=PATHS.assignment_listen("{model}", "{assignment}"),
    output:
        report(PATHS.assignment_media("{model}", "{assignment}", "{suffix}"), caption="../report/chain_media.rst",
               category="Media"),
    wildcard_constraints:
        suffix=r"\.[A-Za-z0-9]+",
    params:
        chain=lambda wc: get_chain(wc.model, "settings"),
        code=lambda wc: chain_code("media", wc.model, scoring=False),
    log:
        PATHS.device_log("media", "{model}", "assignment.{assignment}{suffix}"),
    benchmark:
        PATHS.device_job_benchmark("media", "{model}", "assignment.{assignment}{suffix}")
    localrule: True
    shell:
        "python -m workflow_lib.stages.media --chain {params.chain:q} --listen {input.listen} --which outputs "
        "--out {output} > {log} 2>&1"


rule bench_summary:
    """All benchmark CSVs in one table with speedups over PyTorch fp32 and bootstrap 95 % CIs."""
    input:
        csvs=lambda wc: bench_csvs() + chain_csvs(),
        shipped=lambda wc: shipped_dirs(),
        flops=[sidecar(PATHS.graph("export", m, c)) for (m, c) in SPECS],
        host=PATHS.host,
    output:
        csv=report(PATHS.summary, caption="../report/summary.rst", category="Benchmarks"),
        unavailable=PATHS.unavailable,
        snapshot=PATHS.snapshot,
    params:
        bootstrap=config["bench"]["bootstrap"],
        roofline=json.dumps(config["roofline"], sort_keys=True),
        unrunnable=lambda wc: json.dumps([u for m in CHAINS for u in chain_unrunnable(m)], sort_keys=True),
        shipped=lambda wc: " ".join(shipped_csvs()),  # the CSVs in those folders
        code=get_code("summary"),
    log:
        PATHS.device_log("bench", "summary"),
    benchmark:
        PATHS.device_job_benchmark("bench", "summary")
    localrule: True
    shell:
        "python -m workflow_lib.stages.summary --csvs {input.csvs} {params.shipped} --flops {input.flops} "
        "--bootstrap {params.bootstrap} "
        "--roofline {params.roofline:q} --host {input.host} --unrunnable {params.unrunnable:q} "
        "--out {output.csv} --unavailable {output.unavailable} --snapshot {output.snapshot} > {log} 2>&1"
