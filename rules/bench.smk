rule bench_component:
    """Latency of one backend and precision; a backend that cannot run here writes no rows, only its reason."""
    input:
        unpack(bench_inputs),
    output:
        csv=f"{DEVICE_RESULTS}/bench/{{model}}/{{component}}.{{backend}}.{{precision}}.csv",
        samples=f"{DEVICE_RESULTS}/bench/{{model}}/{{component}}.{{backend}}.{{precision}}.samples.parquet",
        meta=f"{DEVICE_RESULTS}/bench/{{model}}/{{component}}.{{backend}}.{{precision}}.csv.json",
    params:
        spec=spec_json,
        settings=json.dumps(config["bench"], sort_keys=True),
        artifact=lambda wc, input: (
            f"--artifact {input.artifact} --marker {input.marker}" if "artifact" in input.keys() else ""
        ),
    log:
        "results/logs/bench/{model}/{component}.{backend}.{precision}.log",
    # The whole machine: concurrent jobs would distort the timings.
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
        **GPU_RESOURCES,
    shell:
        "python -m workflow_lib.bench --spec {params.spec:q} --backend {wildcards.backend} "
        "--precision {wildcards.precision} {params.artifact} --settings {params.settings:q} "
        "--out {output.csv} --samples {output.samples} > {log} 2>&1"


rule bench_e2e:
    """The whole voice-conversion chain, audio in -> audio out, for one backend assignment."""
    input:
        unpack(e2e_inputs),
    output:
        csv=f"{DEVICE_RESULTS}/bench/{{model}}/e2e/{{assignment}}.csv",
        samples=f"{DEVICE_RESULTS}/bench/{{model}}/e2e/{{assignment}}.samples.parquet",
        meta=f"{DEVICE_RESULTS}/bench/{{model}}/e2e/{{assignment}}.csv.json",
    params:
        specs=lambda wc: json.dumps({c: SPECS[(wc.model, c)].to_json() for (m, c) in SPECS if m == wc.model}),
        e2e=lambda wc: json.dumps(config["models"][wc.model]["e2e"], sort_keys=True),
        artifacts=lambda wc: json.dumps(e2e_artifacts(wc.model), sort_keys=True),
        settings=json.dumps(config["bench"], sort_keys=True),
    log:
        "results/logs/bench/{model}/e2e.{assignment}.log",
    threads: workflow.cores
    resources:
        mem_mb=12000,
        runtime=60,
        **GPU_RESOURCES,
    shell:
        "python -m workflow_lib.e2e --specs {params.specs:q} --e2e {params.e2e:q} --assignment {wildcards.assignment} "
        "--artifacts {params.artifacts:q} --settings {params.settings:q} "
        "--out {output.csv} --samples {output.samples} > {log} 2>&1"


rule bench_summary:
    """All benchmark CSVs in one table with speedups over PyTorch fp32 and bootstrap 95 % CIs."""
    input:
        csvs=bench_csvs(),
        code=code("summary"),
    output:
        csv=report(
            f"{DEVICE_RESULTS}/bench/summary.csv",
            caption="../report/summary.rst",
            category="Benchmarks",
        ),
        unavailable=f"{DEVICE_RESULTS}/bench/unavailable.json",
    params:
        bootstrap=config["bench"]["bootstrap"],
    log:
        "results/logs/bench/summary.log",
    localrule: True
    shell:
        "python -m workflow_lib.summary --csvs {input.csvs} --bootstrap {params.bootstrap} "
        "--out {output.csv} --unavailable {output.unavailable} > {log} 2>&1"
