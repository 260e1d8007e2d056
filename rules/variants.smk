rule graph_variant:
    """Every derived graph variant (workflow_lib/core/variants.py): its stage makes it from its parent's graph."""
    input:
        unpack(get_variant_inputs),
    output:
        onnx=PATHS.graph("{variant}", "{model}", "{component}"),
        meta=sidecar(PATHS.graph("{variant}", "{model}", "{component}")),
    wildcard_constraints:
        variant=pattern(graph_variants.DERIVED),
    params:
        stage=lambda wc: graph_variants.get(wc.variant).stage,
        spec=lambda wc: spec_of(wc).slice(graph_variants.get(wc.variant).stage, wc.variant),
        settings=get_variant_settings,
        calibration=lambda wc, input: f"--calibration {input.calibration}" if "calibration" in input.keys() else "",
        code=lambda wc: get_code(graph_variants.get(wc.variant).stage),
    log:
        PATHS.log("{variant}", "{model}", "{component}"),
    benchmark:
        PATHS.job_benchmark("{variant}", "{model}", "{component}")
    # before the chain's reference run, which only the chain timing and search (last) read
    priority: 1
    threads: 1
    resources:
        mem_mb=lambda wc: graph_variants.get(wc.variant).resources["mem_mb"],
        runtime=lambda wc: graph_variants.get(wc.variant).resources["runtime"],
    shell:
        "python -m workflow_lib.stages.{params.stage} --spec {params.spec:q} --variant {wildcards.variant} "
        "--parent {input.parent} --out {output.onnx} "
        "--settings {params.settings:q} {params.calibration} --reference {input.reference} --threads {threads} --log {log} > {log} 2>&1"
