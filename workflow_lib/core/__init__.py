"""The ground layer: paths, files, errors, component specs, the graph-variant table, timing, CPU slots,
the host, code hashes, sample sets, audio DSP and the stage command line. Imports nothing else of
workflow_lib, and nothing heavy at import time (the Snakefile reads it while it builds the DAG)."""
