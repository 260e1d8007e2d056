"""Command-line tools for users, outside the workflow's DAG (converting a checkpoint into a format the loader
reads)."""
