"""How a job runs on this machine: the stage command line every stage starts through (cli), the cores it
holds (slots), what the host is and can do (host), and how it times a step (timing)."""
