"""Train/test splits, all seeded from the project seed and free of leaks by construction.

- stratified: each class gives ``test_size`` of its rows to the test set; a regression target
  has no classes, so its rows are stratified by the target's quantile bins (``target_bins``:
  STRATA bins of about equal size), and train and test cover the target's whole range alike;
- group: every row of a group (a customer, a patient) lands on the same side;
- time: every test row is later than every train row.
"""

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reproml.runtime.errors import DataError

from .config import DataConfig, SplitConfig

# Quantile bins a regression target is stratified by (deciles).
STRATA = 10


def class_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a column's values, numbered in sorted value order (so the codes do not
    depend on which value comes first in the file)."""
    encoded = column.combine_chunks().dictionary_encode()
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[pc.array_sort_indices(encoded.dictionary).to_numpy()] = np.arange(rank.size)
    # Zero-copy view of the indices: the callers have refused missing values already.
    return rank[encoded.indices.to_numpy()]


def target_bins(values: np.ndarray, bins: int = STRATA) -> np.ndarray:
    """The quantile bin (0, 1, ...; at most ``bins``) of each value. The edges are quantiles of
    the values, so the bins do not depend on row order; tied values share a bin, so there may
    be fewer bins, numbered without gaps."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return np.unique(np.searchsorted(edges, values, side="right"), return_inverse=True)[1]


def stratified(codes: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test): each class contributes ``test_size`` of its rows to test."""
    rng = np.random.default_rng(seed)
    in_test = np.zeros(codes.size, dtype=bool)
    for code in range(int(codes.max()) + 1):
        rows = np.flatnonzero(codes == code)
        if rows.size:
            in_test[rng.permutation(rows)[: max(1, round(test_size * rows.size))]] = True
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def by_group(groups: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups, in a seeded order, go to test until it holds ``test_size`` of the rows."""
    count = int(groups.max()) + 1
    if count < 2:
        raise ValueError("a group split needs at least two groups")
    sizes = np.bincount(groups, minlength=count)
    order = np.random.default_rng(seed).permutation(count)
    taken = np.searchsorted(np.cumsum(sizes[order]), test_size * groups.size) + 1
    chosen = order[: min(max(1, taken), count - 1)]
    in_test = np.isin(groups, chosen)
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def by_time(times: np.ndarray, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The latest ``test_size`` of the rows are the test set; rows sharing a time stay together,
    so every test row is strictly later than every train row."""
    ordered = np.sort(times, kind="stable")
    train_count = min(max(1, round((1 - test_size) * times.size)), times.size - 1)
    cutoff = ordered[train_count - 1]
    in_test = times > cutoff
    if not in_test.any():
        raise ValueError("every row has the same time, so none can be later than the others")
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def split(
    table: pa.Table, schema: DataConfig, config: SplitConfig, seed: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices of ``table`` as the split config says; neither side empty."""
    train, test = _split(table, schema, config, seed, source)
    if not train.size or not test.size:
        side = "training" if not train.size else "testing"
        raise DataError(
            f"{source}: the {config.kind} split of {table.num_rows} rows leaves none for "
            f"{side}. Fix: bring more rows, or change split.test_size ({config.test_size})."
        )
    return train, test


def _split(
    table: pa.Table, schema: DataConfig, config: SplitConfig, seed: int, source: str
) -> tuple[np.ndarray, np.ndarray]:
    if config.kind == "stratified" and schema.task == "regression":
        values = table[schema.target].to_numpy()
        # Bins of at least 1/test_size rows, so that each gives about test_size of its rows
        # (a small table gets fewer bins, a tiny one a plain seeded shuffle).
        bins = max(1, min(STRATA, values.size // math.ceil(1 / config.test_size)))
        return stratified(target_bins(values, bins), config.test_size, seed)
    if config.kind == "stratified":
        return stratified(class_codes(table[schema.target]), config.test_size, seed)
    column = table[config.column]
    if column.null_count:
        raise DataError(
            f"{source}: the {config.kind} split column {config.column!r} is missing in "
            f"{column.null_count} rows. Fix: fill them in, or split by another column."
        )
    try:
        if config.kind == "group":
            return by_group(class_codes(column), config.test_size, seed)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        return by_time(column.to_numpy(), config.test_size)
    except ValueError as error:
        raise DataError(
            f"{source}: cannot split by {config.column!r}: {error}. Fix: choose another split "
            "in conf/config.yaml."
        ) from None
