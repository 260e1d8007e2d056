rule chain_reference:
    """PyTorch fp32's run of a model's chain on every file it is judged on: what every assignment is scored against."""
    input:
        ckpts=lambda wc: [SPECS[(wc.model, c)].checkpoint for c in components(wc.model)],
        files=lambda wc: chain_files(wc.model),
        samples=lambda wc: list(sample_sets(wc.model).values()),
    output:
        npz=PATHS.chain_reference("{model}"),
        meta=sidecar(PATHS.chain_reference("{model}")),
        listen=PATHS.chain_listen("{model}"),
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=lambda wc: get_specs("chain_reference", wc.model),
        chain=lambda wc: get_chain(wc.model, "inputs", "seconds", "settings", "roles", "search"),
        code=lambda wc: chain_code("chain_reference", wc.model, scoring=False),
        stored=lambda wc: json.dumps(sample_sets(wc.model)),
    log:
        PATHS.log("chain_reference", "{model}"),
    benchmark:
        PATHS.job_benchmark("chain_reference", "{model}")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "python -m workflow_lib.stages.chain_reference --specs {params.specs:q} --chain {params.chain:q} "
        "--stored {params.stored:q} --out {output.npz} --listen {output.listen} --threads {threads} > {log} 2>&1"


rule chain_media:
    """The first evaluation file and what PyTorch fp32 makes of it, as media a person judges (the plug-in's)."""
    input:
        listen=PATHS.chain_listen("{model}"),
    output:
        report(PATHS.chain_media("{model}", "{which}", "{suffix}"), caption="../report/reference_media.rst",
               category="Media"),
    wildcard_constraints:
        which="input|reference",
        suffix=r"\.[A-Za-z0-9]+",
    params:
        chain=lambda wc: get_chain(wc.model, "settings"),
        code=lambda wc: chain_code("media", wc.model, scoring=False),
    log:
        PATHS.log("media", "{model}", "{which}{suffix}"),
    benchmark:
        PATHS.job_benchmark("media", "{model}", "{which}{suffix}")
    localrule: True
    shell:
        "python -m workflow_lib.stages.media --chain {params.chain:q} --listen {input.listen} --which {wildcards.which} "
        "--out {output} > {log} 2>&1"


rule chain_calibration:
    """A chain component's sample set: what PyTorch fp32 feeds it when the chain runs on each file (only the roles
    upstream of it run, so only their checkpoints and its own are inputs), and its outputs."""
    input:
        ckpts=lambda wc: [SPECS[(wc.model, c)].checkpoint
                          for c in [*chain_of(wc.model).upstream(wc.component), wc.component]],
        files=lambda wc: chain_files(wc.model),
    output:
        npz=PATHS.calibration("{model}", "{component}"),
        meta=sidecar(PATHS.calibration("{model}", "{component}")),
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=lambda wc: get_specs("chain_calibration", wc.model,
                                   [*chain_of(wc.model).upstream(wc.component), wc.component]),
        chain=lambda wc: get_chain(wc.model, "inputs", "settings", "roles"),
        code=lambda wc: chain_code("chain_calibration", wc.model, scoring=False),
    log:
        PATHS.log("calibration", "{model}", "{component}"),
    benchmark:
        PATHS.job_benchmark("calibration", "{model}", "{component}")
    # first of all: the INT8 search, the longest job, waits on it (and the chain's reference run reads it)
    priority: 3
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "python -m workflow_lib.stages.chain_calibration --specs {params.specs:q} --chain {params.chain:q} "
        "--component {wildcards.component} --out {output.npz} --threads {threads} > {log} 2>&1"


rule calibration:
    """The sample set of a component outside a chain: calibration.files (and search / evaluation files), else its
    generators (unrepresentative)."""
    input:
        ckpt=get_checkpoint,
        files=lambda wc: [f for key in ("files", "search", "evaluation")
                          for f in (spec_of(wc).raw.get("calibration") or {}).get(key, [])],
    output:
        npz=PATHS.calibration("{model}", "{component}"),
        meta=sidecar(PATHS.calibration("{model}", "{component}")),
    wildcard_constraints:
        model=pattern(m for m in config["models"] if m not in CHAINS),
    params:
        spec=get_spec("calibration"),
        code=get_code("calibration"),
    log:
        PATHS.log("calibration", "{model}", "{component}"),
    benchmark:
        PATHS.job_benchmark("calibration", "{model}", "{component}")
    # before the chain's reference run: an INT8 graph waits on it
    priority: 1
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_lib.stages.calibration --spec {params.spec:q} --out {output.npz} --threads {threads} > {log} 2>&1"
