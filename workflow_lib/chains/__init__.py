"""The chains layer: the protocol a model's end-to-end chain implements as a plug-in (`protocol`), a base
for chains whose input is audio (`audio`), and what every chain stage does with a plug-in (`harness`)."""
