rule report:
    """One self-contained HTML page; the PNG plots (one per entry of workflow_lib.analysis.plots.PLOTS) also go to `snakemake --report`."""
    input:
        unpack(get_report_inputs),
    output:
        html=PATHS.report,
        **{name: report(PATHS.plot(name), caption="../report/plots.rst", category="Plots") for name in PLOTS},
    params:
        inputs=lambda wc: report_inputs().to_json(),
        config_hash=CONFIG_HASH,
        captions={name: plot.caption for name, plot in PLOTS.items()},
        plots=lambda wc, output: os.path.dirname(output.html),
        code=get_code("report", "templates/report.html.j2"),
    log:
        PATHS.device_log("report"),
    benchmark:
        PATHS.device_job_benchmark("report")
    localrule: True
    shell:
        "python -m workflow_lib.stages.report --inputs {params.inputs:q} "
        "--config-hash {params.config_hash} --out {output.html} --plots {params.plots} > {log} 2>&1"


rule check_failures:
    """The run's last check: every variant that failed with an error (everything else was built) fails the run,
    unless failures.fail_run is false."""
    input:
        report=PATHS.report,
        bundles=deploy_dirs(),
    output:
        PATHS.failures_checked,
    params:
        fail_run="--fail-run" if config["failures"]["fail_run"] else "",
        failures=PATHS.failures_dir,
        code=get_code("failures"),
    log:
        PATHS.device_log("failures"),
    benchmark:
        PATHS.device_job_benchmark("failures")
    localrule: True
    shell:
        # what failed is the run's last word: on the console too, not only in the log
        "python -m workflow_lib.stages.failures --failures {params.failures} {params.fail_run} --out {output} "
        "> {log} 2>&1 || (cat {log} >&2; exit 1)"
