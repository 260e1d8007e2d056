"""The workflow's logic: one module per stage (each a `python -m workflow_lib.<stage>` CLI, testable without
Snakemake) and the small shared modules beneath them. See README.md, "Layout".
"""
