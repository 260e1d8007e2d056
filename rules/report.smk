rule report:
    """One self-contained HTML page; the PNG plots also go to `snakemake --report`."""
    input:
        summary=f"{DEVICE_RESULTS}/bench/summary.csv",
        unavailable=f"{DEVICE_RESULTS}/bench/unavailable.json",
        bench=bench_csvs(),
        markers=validation_markers(),
        engines=[f"{e}.json" for e in engine_paths()],
        code=code("report"),
        template=os.path.join(workflow.basedir, "workflow_lib", "templates", "report.html.j2"),
    output:
        html=f"{DEVICE_RESULTS}/report/index.html",
        speedup=report(
            f"{DEVICE_RESULTS}/report/speedup.png",
            caption="../report/speedup.rst",
            category="Plots",
        ),
        latency=report(
            f"{DEVICE_RESULTS}/report/latency.png",
            caption="../report/latency.rst",
            category="Plots",
        ),
        e2e=report(
            f"{DEVICE_RESULTS}/report/e2e_rtf.png",
            caption="../report/e2e_rtf.rst",
            category="Plots",
        ),
    params:
        config_hash=CONFIG_HASH,
        plots=lambda wc, output: os.path.dirname(output.html),
    log:
        "results/logs/report.log",
    localrule: True
    shell:
        "python -m workflow_lib.report --summary {input.summary} --unavailable {input.unavailable} "
        "--bench {input.bench} --markers {input.markers} --engines {input.engines} "
        "--config-hash {params.config_hash} --out {output.html} --plots {params.plots} > {log} 2>&1"
