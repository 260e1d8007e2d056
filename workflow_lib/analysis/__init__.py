"""The analysis layer: parity and fidelity against PyTorch, benchmark results and speedups, what could
ship, and the report's plots. Reads what the runtimes produce; never runs a stage."""
