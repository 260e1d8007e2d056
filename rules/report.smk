rule report:
    """One self-contained HTML page; the PNG plots (one per entry of workflow_lib.analysis.plots.PLOTS) also go to `snakemake --report`."""
    input:
        unpack(get_report_inputs),
    output:
        html=PATHS.report,
        **{name: report(PATHS.plot(name), caption="../report/plots.rst", category="Plots") for name in PLOTS},
    params:
        config_hash=CONFIG_HASH,
        captions={name: plot.caption for name, plot in PLOTS.items()},
        plots=lambda wc, output: os.path.dirname(output.html),
        code=get_code("report", "templates/report.html.j2"),
    log:
        PATHS.device_log("report"),
    localrule: True
    shell:
        "python -m workflow_lib.stages.report --summary {input.summary} --unavailable {input.unavailable} --host {input.host} "
        "--bench {input.bench} --markers {input.markers} --artifacts {input.artifacts} --bundles {input.bundles} "
        "--graphs {input.graphs} --calibrations {input.calibrations} --references {input.references} "
        "--comparison {input.comparison} --live {input.live} "
        "--config-hash {params.config_hash} --out {output.html} --plots {params.plots} > {log} 2>&1"
