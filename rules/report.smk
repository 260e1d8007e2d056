rule report:
    """One self-contained HTML page; the PNG plots (one per entry of workflow_lib.plots.PLOTS) also go to `snakemake --report`."""
    input:
        summary=LAYOUT.summary,
        unavailable=LAYOUT.unavailable,
        bench=bench_csvs() + e2e_csvs(),
        markers=validation_markers(),
        engines=[f"{e}.json" for e in engine_paths()],
        bundles=deploy_dirs(),
        wavs=[LAYOUT.e2e_wav(m, a, reference) for m in config["models"] for a in e2e_assignments(m) for reference in (False, True)],
        fp16=[Layout.graph(m, c, "onnx_fp16") + ".json" for (m, c) in SPECS if "fp16" in PRECISIONS],
    output:
        html=f"{LAYOUT.report_dir}/index.html",
        **{
            name: report(f"{LAYOUT.report_dir}/{name}.png", caption=f"../report/{name}.rst", category="Plots")
            for name in PLOTS
        },
    params:
        config_hash=CONFIG_HASH,
        plots=lambda wc, output: os.path.dirname(output.html),
        code=get_code("report", "templates/report.html.j2"),
    log:
        LAYOUT.device_log("report"),
    localrule: True
    shell:
        "python -m workflow_lib.report --summary {input.summary} --unavailable {input.unavailable} "
        "--bench {input.bench} --markers {input.markers} --engines {input.engines} --bundles {input.bundles} "
        "--fp16 {input.fp16} "
        "--config-hash {params.config_hash} --out {output.html} --plots {params.plots} > {log} 2>&1"
