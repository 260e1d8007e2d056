rule select_deploy:
    """What to ship per component and device: the fastest validated backend beating PyTorch (CI above 1), bundled."""
    input:
        csvs=lambda wc: bench_csvs(wc.model),
        markers=lambda wc: validation_markers(wc.model),
    output:
        bundle=directory(LAYOUT.deploy("{model}")),
    params:
        specs=get_model_specs,
        point=config["deploy"]["point"],
        bootstrap=config["bench"]["bootstrap"],
        code=get_code("deploy"),
    log:
        LAYOUT.device_log("deploy", "{model}"),
    localrule: True
    shell:
        "python -m workflow_lib.deploy --csvs {input.csvs} --markers {input.markers} --specs {params.specs:q} "
        "--point {params.point} --bootstrap {params.bootstrap} --out {output.bundle} > {log} 2>&1"
