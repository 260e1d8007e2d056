rule compare:
    """This run against a baseline run (compare.baseline): per series and chain, ratio, rank test and a mark."""
    input:
        snapshot=PATHS.snapshot,
        baseline=lambda wc: config["compare"]["baseline"],
    output:
        csv=report(PATHS.comparison, caption="../report/comparison.rst", category="Benchmarks"),
        meta=sidecar(PATHS.comparison),
    params:
        factor=config["compare"]["factor"],
        min_ms=config["compare"]["min_ms"],
        code=get_code("compare"),
    log:
        PATHS.device_log("compare"),
    benchmark:
        PATHS.device_job_benchmark("compare")
    localrule: True
    shell:
        "python -m workflow_lib.stages.compare --snapshot {input.snapshot} --baseline {input.baseline} "
        "--factor {params.factor} --min-ms {params.min_ms} --out {output.csv} > {log} 2>&1"


rule compare_gate:
    """Fails when anything regressed or newly fails against the baseline: the check for CI (opt-in)."""
    input:
        meta=sidecar(PATHS.comparison),
    output:
        checked=PATHS.comparison_checked,
    log:
        PATHS.device_log("compare_gate"),
    benchmark:
        PATHS.device_job_benchmark("compare_gate")
    localrule: True
    shell:
        "python -m workflow_lib.stages.compare --check {input.meta} --out {output.checked} > {log} 2>&1"
