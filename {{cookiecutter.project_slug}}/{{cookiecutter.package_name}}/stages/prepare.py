"""prepare: read the raw table against its schema, split it, write train and test as Parquet."""

from pathlib import Path

from reproml.runtime.tables import write_parquet

from ..config import ProjectConfig
from ..data import model_columns, read_raw
from ..splits import split


def run(config: ProjectConfig) -> dict[str, Path]:
    source = config.paths.raw_data
    table = read_raw(source, config.data)
    train, test = split(table, config.data, config.split, config.seed, source)
    # The model's columns, and every date (a time split may read one the model does not).
    kept = dict.fromkeys([*model_columns(config.data), *config.data.features.datetime])
    table = table.select([*kept, config.data.target])
    return {
        "train": write_parquet(config.paths.train, table.take(train)),
        "test": write_parquet(config.paths.test, table.take(test)),
    }
