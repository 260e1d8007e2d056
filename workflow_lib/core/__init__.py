"""The ground layer: paths, files, errors, component specs, the graph-variant table, input roles and sample
sets, code hashes and what stages declare. Imports nothing else of workflow_lib, and nothing heavy at
import time (the Snakefile reads it while it builds the DAG)."""
