"""The stages: one module per rule's job, each a `python -m workflow_lib.stages.<stage>` command line,
testable without Snakemake. A stage never imports another stage, nor a model."""
