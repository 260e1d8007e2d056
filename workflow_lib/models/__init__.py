"""Model packages: the embedded demo. Generic workflow code never imports these (checked by import-linter)."""
