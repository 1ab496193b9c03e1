"""Reproducible ML pipeline package: stages, configuration and the reproducibility machinery.

Importing the package is free: every module imports its heavy dependencies (numpy,
scikit-learn, Hydra) lazily, so a stage pays only for what it uses.
"""
