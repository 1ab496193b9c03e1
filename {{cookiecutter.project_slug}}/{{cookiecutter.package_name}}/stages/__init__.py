"""Pipeline stages. Each module exposes ``run(config) -> outputs`` and nothing else; dvc.yaml
runs each as ``python -m <package> stage <name>``."""

STAGES = ("prepare", "train", "evaluate", "verify")
