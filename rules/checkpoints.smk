rule seed_checkpoint:
    """Seeded random-init weights for models that ship no checkpoint files (the demo)."""
    input:
        code=code("checkpoints"),
    output:
        ckpt="results/checkpoints/{model}/{component}.safetensors",
        meta="results/checkpoints/{model}/{component}.safetensors.json",
    wildcard_constraints:
        model=seeded_models_pattern(),
    params:
        cls=lambda wc: SPECS[(wc.model, wc.component)].cls,
        kwargs=lambda wc: json.dumps(SPECS[(wc.model, wc.component)].kwargs, sort_keys=True),
        seed=lambda wc: SEEDED[wc.model],
    log:
        "results/logs/checkpoints/{model}/{component}.log",
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_lib.checkpoints --cls {params.cls} --kwargs {params.kwargs:q} --seed {params.seed} "
        "--out {output.ckpt} > {log} 2>&1"
