rule chain_reference:
    """PyTorch fp32's run of a model's chain on the input speech: what every assignment is scored against."""
    input:
        ckpts=lambda wc: [SPECS[(wc.model, c)].checkpoint for c in components(wc.model)],
        speech=lambda wc: e2e_of(wc.model).get("inputs") or [],
    output:
        npz=PATHS.chain_reference("{model}"),
        meta=PATHS.chain_reference("{model}") + ".json",
        input_wav=PATHS.chain_audio("{model}", "input"),
        reference_wav=report(PATHS.chain_audio("{model}", "reference"), caption="../report/reference_wav.rst",
                             category="Audio"),
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=get_chain_specs,
        e2e=get_chain_reference_settings,
        code=code_hash("workflow_lib.models.svc.reference"),
    log:
        PATHS.log("chain_reference", "{model}"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "python -m workflow_lib.models.svc.reference --specs {params.specs:q} --e2e {params.e2e:q} --out {output.npz} "
        "--input-wav {output.input_wav} --reference-wav {output.reference_wav} --threads {threads} > {log} 2>&1"


rule chain_calibration:
    """A chain component's calibration set: what PyTorch fp32 feeds it when the chain runs on the input speech
    (only the components upstream of it run, so only their checkpoints and its own are inputs), and its outputs."""
    input:
        ckpts=lambda wc: [SPECS[(wc.model, c)].checkpoint for c in [*chain_upstream(wc.model, wc.component), wc.component]],
        speech=lambda wc: e2e_of(wc.model).get("inputs") or [],
    output:
        npz=PATHS.calibration("{model}", "{component}"),
        meta=PATHS.calibration("{model}", "{component}") + ".json",
    wildcard_constraints:
        model=pattern(CHAINS),
    params:
        specs=lambda wc: json.dumps({c: SPECS[(wc.model, c)].slice("chain")
                                     for c in [*chain_upstream(wc.model, wc.component), wc.component]}, sort_keys=True),
        e2e=get_chain_calibration_settings,
        code=code_hash("workflow_lib.models.svc.calibrate"),
    log:
        PATHS.log("calibration", "{model}", "{component}"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "python -m workflow_lib.models.svc.calibrate --specs {params.specs:q} --e2e {params.e2e:q} "
        "--component {wildcards.component} --out {output.npz} --threads {threads} > {log} 2>&1"


rule calibration:
    """The calibration set of a component outside a chain: calibration.files, else its generators (unrepresentative)."""
    input:
        ckpt=get_checkpoint,
        files=lambda wc: (spec_of(wc).raw.get("calibration") or {}).get("files", []),
    output:
        npz=PATHS.calibration("{model}", "{component}"),
        meta=PATHS.calibration("{model}", "{component}") + ".json",
    wildcard_constraints:
        model=pattern(m for m in config["models"] if m not in CHAINS),
    params:
        spec=get_spec("calibration"),
        code=get_code("calibration"),
    log:
        PATHS.log("calibration", "{model}", "{component}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_lib.stages.calibration --spec {params.spec:q} --out {output.npz} --threads {threads} > {log} 2>&1"
