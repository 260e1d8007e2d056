"""The chains layer: the protocol a model's end-to-end chain implements as a plug-in (`protocol`), its typed
config (`spec`), turning an assignment or a decision into runners (`assignment`), and what every chain
stage does with a plug-in (`harness`)."""
