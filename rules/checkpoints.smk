rule seed_checkpoint:
    """Seeded random-init weights for models that ship no checkpoint files (the demo)."""
    output:
        ckpt=Layout.checkpoint("{model}", "{component}"),
        meta=Layout.checkpoint("{model}", "{component}") + ".json",
    wildcard_constraints:
        model=seeded_models_pattern(),
    params:
        cls=lambda wc: SPECS[(wc.model, wc.component)].cls,
        kwargs=lambda wc: json.dumps(SPECS[(wc.model, wc.component)].kwargs, sort_keys=True),
        seed=lambda wc: SEEDED[wc.model],
        code=get_code("checkpoints"),
    log:
        Layout.log("checkpoints", "{model}", "{component}"),
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_lib.checkpoints --cls {params.cls} --kwargs {params.kwargs:q} --seed {params.seed} "
        "--out {output.ckpt} > {log} 2>&1"
