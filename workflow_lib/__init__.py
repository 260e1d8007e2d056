"""The workflow's logic, in layers (README.md, "Layout"): `core` (the ground), `runtimes` (backends),
`analysis`, `chains` (the chain protocol), and at the top `stages` (one command line per rule's job),
`models` (the embedded demo's modules and chain plug-in) and `plan` (the config check the Snakefile
runs). The layering is a checked contract (pyproject.toml, `lint-imports`)."""
