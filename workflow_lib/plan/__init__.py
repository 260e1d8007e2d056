"""What the Snakefile needs to plan a run: the whole config checked at once (beyond the JSON schema)."""
