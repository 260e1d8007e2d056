"""What ships inside a deployment bundle and runs there without the workflow: the runner (`runner`)."""
