"""Pipeline stages. Each module exposes ``run(config) -> outputs`` and nothing else; dvc.yaml
runs each as ``python -m <package> stage <name>``: a new stage is a module here and a block
in dvc.yaml."""
