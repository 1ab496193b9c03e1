"""prepare: split the raw table into train and test sets, stratified and seeded."""

from pathlib import Path

import numpy as np

from ..config import ProjectConfig
from ..dataio import read_table, write_table


def stratified_split(target: np.ndarray, test_size: float, seed: int):
    """Row indices (train, test): each class contributes ``test_size`` of its rows to test."""
    rng = np.random.default_rng(seed)
    test_rows = []
    for label in np.unique(target).tolist():
        rows = rng.permutation(np.flatnonzero(target == label))
        test_rows.append(rows[: max(1, round(test_size * rows.size))])
    test = np.sort(np.concatenate(test_rows))
    train = np.setdiff1d(np.arange(target.size), test)
    return train, test


def run(config: ProjectConfig) -> dict[str, Path]:
    header, features, target = read_table(config.paths.raw_data, config.data.target)
    train, test = stratified_split(target, config.split.test_size, config.seed)
    return {
        "train": write_table(config.paths.train, header, features[train], target[train]),
        "test": write_table(config.paths.test, header, features[test], target[test]),
    }
