rule bench_component:
    """Latency of one backend and precision; a backend that cannot run here writes no rows, only its reason."""
    input:
        unpack(get_bench_inputs),
    output:
        csv=LAYOUT.bench_csv("{model}", "{component}", "{backend}", "{precision}"),
        samples=samples_path(LAYOUT.bench_csv("{model}", "{component}", "{backend}", "{precision}")),
        meta=LAYOUT.bench_csv("{model}", "{component}", "{backend}", "{precision}") + ".json",
    params:
        spec=get_spec_json,
        timing=json.dumps(BENCH_TIMING, sort_keys=True),
        marker=lambda wc, input: f"--marker {input.marker}" if "marker" in input.keys() else "",
        code=get_code("bench"),
    log:
        LAYOUT.device_log("bench", "{model}", "{component}.{backend}.{precision}"),
    # The whole machine: concurrent jobs would distort the timings.
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
        **GPU_RESOURCES,
    shell:
        "python -m workflow_lib.bench --spec {params.spec:q} --backend {wildcards.backend} "
        "--precision {wildcards.precision} --artifact {input.artifact} {params.marker} "
        "--settings {params.timing:q} --out {output.csv} > {log} 2>&1"


rule bench_e2e:
    """The whole voice-conversion chain, audio in -> audio out, for one backend assignment."""
    input:
        unpack(get_e2e_inputs),
    output:
        csv=LAYOUT.e2e_csv("{model}", "{assignment}"),
        samples=samples_path(LAYOUT.e2e_csv("{model}", "{assignment}")),
        meta=LAYOUT.e2e_csv("{model}", "{assignment}") + ".json",
        wav=report(LAYOUT.e2e_wav("{model}", "{assignment}"), caption="../report/e2e_wav.rst", category="Audio"),
        reference_wav=LAYOUT.e2e_wav("{model}", "{assignment}", reference=True),
    params:
        specs=get_model_specs,
        chain=get_chain_settings,
        args=get_e2e_args,
        threads=json.dumps({"threads": BENCH_TIMING["threads"]}),
        code=get_code("e2e"),
    log:
        LAYOUT.device_log("bench", "{model}", "e2e.{assignment}"),
    threads: workflow.cores
    resources:
        mem_mb=12000,
        runtime=60,
        **GPU_RESOURCES,
    shell:
        "python -m workflow_lib.e2e --specs {params.specs:q} --e2e {params.chain:q} --assignment {wildcards.assignment} "
        "{params.args} --settings {params.threads:q} --out {output.csv} --wav {output.wav} "
        "--reference-wav {output.reference_wav} > {log} 2>&1"


rule bench_summary:
    """All benchmark CSVs in one table with speedups over PyTorch fp32 and bootstrap 95 % CIs."""
    input:
        csvs=bench_csvs() + e2e_csvs(),
        flops=[Layout.graph(m, c) + ".json" for (m, c) in SPECS],
    output:
        csv=report(LAYOUT.summary, caption="../report/summary.rst", category="Benchmarks"),
        unavailable=LAYOUT.unavailable,
    params:
        bootstrap=config["bench"]["bootstrap"],
        roofline=json.dumps(config["roofline"], sort_keys=True),
        code=get_code("summary"),
    log:
        LAYOUT.device_log("bench", "summary"),
    localrule: True
    shell:
        "python -m workflow_lib.summary --csvs {input.csvs} --flops {input.flops} --bootstrap {params.bootstrap} "
        "--roofline {params.roofline:q} "
        "--out {output.csv} --unavailable {output.unavailable} > {log} 2>&1"
