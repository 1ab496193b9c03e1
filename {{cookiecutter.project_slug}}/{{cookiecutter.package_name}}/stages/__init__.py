"""Pipeline stages. Each module exposes ``run(config) -> outputs`` and nothing else."""

STAGES = ("prepare", "train", "evaluate", "verify")
