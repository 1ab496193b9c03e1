"""The demo tables a project is baked with, and the synthetic tables of the scale benchmark:
a fixture of the template's tests and bench (``make demo-tables`` writes the shipped copies),
not part of a baked project.

Nothing is downloaded: the numeric tables come from scikit-learn's bundled copies, and the
mixed-type ``churn`` table (categories, missing values, dates, an id and a group column,
string labels, the target not last) is generated from a fixed seed. Only numpy and the
standard library are used, so the bake needs nothing more than it already has.
"""

import csv
import math
from pathlib import Path

import numpy as np

SKLEARN_LOADERS = {
    "breast_cancer": "load_breast_cancer",
    "wine": "load_wine",
    "digits": "load_digits",
    # Regression: disease progression a year after baseline, a number from 25 to 346.
    "diabetes": "load_diabetes",
}
MIXED_DATASET = "churn"
MISSING_MARKER = "NA"
REGIONS = ["north", "south", "east", "west", "central"]
PLANS = ["basic", "standard", "premium"]
CONTRACTS = ["monthly", "annual", "two-year"]
START_DAY = np.datetime64("2019-01-01")


def sklearn_columns(name: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """A bundled scikit-learn dataset as named columns, the target last (class codes as
    integers; diabetes's disease progression as floats)."""
    from sklearn import datasets

    bunch = getattr(datasets, SKLEARN_LOADERS[name])()
    names = [str(feature).replace(",", ";") for feature in bunch.feature_names]
    columns = {feature: bunch.data[:, index] for index, feature in enumerate(names)}
    columns["target"] = bunch.target
    return [*names, "target"], columns


def _with_missing(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    values = values.astype(object)
    values[rng.random(values.size) < share] = None
    return values


def churn_columns(
    rows: int, seed: int = 0, extra_numeric: int = 0, extra_categorical: int = 0
) -> tuple[list[str], dict[str, np.ndarray]]:
    """A customer-churn table whose label depends on its features, with ``extra_*`` noise
    columns to make it wider (the benchmark's ~30 columns)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    contract = rng.choice(len(CONTRACTS), rows, p=[0.55, 0.3, 0.15])
    plan = rng.choice(len(PLANS), rows)
    charges = np.round(20 + 30 * plan + rng.normal(0, 8, rows), 2)
    calls = rng.poisson(1.5, rows)
    age = rng.integers(18, 90, rows).astype(float)
    paperless = rng.random(rows) < 0.6
    partner = rng.random(rows) < 0.45
    signup = START_DAY + rng.integers(0, 5 * 365, rows).astype("timedelta64[D]")
    score = (
        1.2
        - 0.05 * tenure
        - 0.9 * contract
        + 0.02 * (charges - 50)
        + 0.45 * calls
        + 0.4 * paperless
        - 0.3 * partner
        + rng.normal(0, 0.8, rows)
    )
    churned = 1 / (1 + np.exp(-score)) > 0.5
    columns = {
        "customer_id": np.array([f"C{index:07d}" for index in range(rows)], dtype=object),
        "household": np.array(
            [f"H{index:06d}" for index in rng.integers(0, max(2, rows // 3), rows)], dtype=object
        ),
        "signup_date": np.datetime_as_string(signup, unit="D").astype(object),
        "year": signup.astype("datetime64[Y]").astype(int) + 1970,
        "region": _with_missing(
            rng, np.array(REGIONS, dtype=object)[rng.integers(0, 5, rows)], 0.04
        ),
        "plan": np.array(PLANS, dtype=object)[plan],
        "churn": np.where(churned, "churned", "stayed").astype(object),
        "contract": np.array(CONTRACTS, dtype=object)[contract],
        "tenure_months": tenure,
        "monthly_charges": np.where(rng.random(rows) < 0.03, np.nan, charges),
        "support_calls": calls,
        "age": np.where(rng.random(rows) < 0.05, np.nan, age),
        "paperless_billing": np.where(paperless, "yes", "no").astype(object),
        "has_partner": _with_missing(rng, np.where(partner, "true", "false"), 0.02),
    }
    for index in range(1, extra_numeric + 1):
        columns[f"sensor_{index:02d}"] = np.round(rng.normal(0, 1, rows), 4)
    for index in range(1, extra_categorical + 1):
        levels = np.array([f"level_{level}" for level in range(8)], dtype=object)
        columns[f"segment_{index:02d}"] = _with_missing(rng, levels[rng.integers(0, 8, rows)], 0.01)
    return list(columns), columns


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_MARKER
    return repr(value) if isinstance(value, float) else str(value)


def write_csv(path: str | Path, names: list[str], columns: dict[str, np.ndarray]) -> Path:
    """A CSV with a header; floats as ``repr`` (the shortest text that reads back to the same
    bits), missing values as ``NA``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    as_lists = [columns[name].tolist() for name in names]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_cell(value) for value in row] for row in zip(*as_lists, strict=True))
    return path


def write_demo_table(path: str | Path, dataset: str) -> Path:
    """The raw table a project is baked with."""
    if dataset == MIXED_DATASET:
        names, columns = churn_columns(2000, seed=7)
    else:
        names, columns = sklearn_columns(dataset)
    return write_csv(path, names, columns)
