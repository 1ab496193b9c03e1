"""Tables against their schema, through the real stage command: every bad table is refused
with one named error (file, column, fix), no traceback, and no output written."""

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import PACKAGE, PROJECT_ROOT, machinery, project_module

launcher = machinery("runtime.launcher")
# A mixed-type table (categories, missing values, dates, ids, string labels), written by the
# template's demo_data.py.
MIXED_TABLE = PROJECT_ROOT / "tests" / "fixtures" / "mixed.csv"
data = project_module("data")

HEADER = "id,city,income,member,signed,label"
GOOD_ROWS = [
    "1,paris,10.5,yes,2020-01-02,gold",
    "2,NA,NA,no,2020-02-03,silver",
    "3,rome,7.25,yes,2021-03-04,gold",
    "4,oslo,3.0,NA,2021-05-06,silver",
    "5,rome,8.0,no,2022-01-01,gold",
    "6,paris,1.0,yes,2022-02-02,silver",
    "7,oslo,2.0,no,2022-03-03,gold",
    "8,rome,9.0,yes,2023-01-01,silver",
]
SCHEMA = {
    "name": "people",
    "file": "people.csv",
    "target": "label",
    "task": "classification",
    "label": "string",
    "features": {
        "numeric": ["income"],
        "categorical": ["city"],
        "boolean": ["member"],
        "datetime": ["signed"],
    },
    "drop": ["id"],
    "missing": ["", "NA"],
}


def write_workspace(path, text: bytes, schema=None, suffix=".csv"):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["data"] = schema or SCHEMA
    raw = path / f"people{suffix}"
    raw.write_bytes(text)
    params["paths"] = {
        **params["paths"],
        "raw_data": str(raw),
        "train": str(path / "out" / "train.parquet"),
        "test": str(path / "out" / "test.parquet"),
    }
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    return path / "params.yaml"


def prepare(path):
    command = [sys.executable, "-m", PACKAGE, "stage", "prepare", "--params", "params.yaml"]
    env = {**launcher.pinned_environment(dict(os.environ)), "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(command, cwd=path, capture_output=True, text=True, env=env)


def csv_bytes(header=HEADER, rows=GOOD_ROWS) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


BAD_TABLES = {
    "missing column": (
        csv_bytes(
            HEADER.replace(",member", ""),
            [",".join(p for i, p in enumerate(r.split(",")) if i != 3) for r in GOOD_ROWS],
        ),
        r"declared column 'member' is missing from the file",
    ),
    "undeclared column": (
        csv_bytes(HEADER + ",extra", [r + ",1" for r in GOOD_ROWS]),
        r"column 'extra' is not declared in conf/data/people\.yaml",
    ),
    "value of the wrong kind": (
        csv_bytes(rows=[*GOOD_ROWS, "9,rome,lots,yes,2023-02-02,gold"]),
        r"column 'income' is declared numeric, but holds values such "
        r"as 'lots'",
    ),
    "one class": (
        csv_bytes(rows=[r.replace("silver", "gold") for r in GOOD_ROWS]),
        r"the target 'label' has 1 class",
    ),
    "missing target": (
        csv_bytes(rows=[*GOOD_ROWS, "9,rome,1.0,yes,2023-02-02,NA"]),
        r"the target 'label' is missing in 1 of 9 rows \(the first is data row 9\).*"
        r"missing_target: drop",
    ),
    "all-missing column": (
        csv_bytes(
            rows=[
                ",".join(["NA" if i == 1 else p for i, p in enumerate(r.split(","))])
                for r in GOOD_ROWS
            ]
        ),
        r"column 'city' is missing in every row",
    ),
    "empty file": (b"", r"the file is empty"),
    "header only": (csv_bytes(rows=[]), r"has a header but no rows"),
    "duplicate header": (
        csv_bytes(HEADER + ",city", [r + ",x" for r in GOOD_ROWS]),
        r"the column name 'city' \(columns 2 and 7\) appears more than once\. Fix: rename",
    ),
    "not UTF-8": (
        csv_bytes(rows=[*GOOD_ROWS, "9,z\xfcrich,1.0,yes,2023-02-02,gold"]).replace(
            "z\xfcrich".encode(), "z\xfcrich".encode("latin-1")
        ),
        r"column 'city' holds bytes that are not UTF-8",
    ),
}


@pytest.mark.parametrize("case", BAD_TABLES, ids=list(BAD_TABLES))
def test_a_bad_table_is_refused_by_name_and_nothing_is_written(tmp_path, case):
    text, message = BAD_TABLES[case]
    write_workspace(tmp_path, text)
    result = prepare(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "people.csv" in result.stderr and "Fix:" in result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_a_good_mixed_table_keeps_its_labels_and_types(tmp_path):
    write_workspace(tmp_path, csv_bytes())
    result = prepare(tmp_path)
    assert result.returncode == 0, result.stderr
    train = data.read_prepared(tmp_path / "out" / "train.parquet")
    assert set(train.column_names) == {"income", "member", "city", "signed", "label"}
    assert set(data.labels(train, data_config()).tolist()) <= {"gold", "silver"}
    frame = data.features_frame(train, data_config())
    assert frame["income"].dtype == np.float64 and frame["city"].dtype == object


def test_parquet_input_is_checked_the_same_way(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": [1, 2],
            "city": ["a", "b"],
            "income": ["x", "y"],
            "member": [True, False],
            "signed": ["2020-01-01", "2020-01-02"],
            "label": ["gold", "silver"],
        }
    )
    pq.write_table(table, tmp_path / "bad.parquet")
    write_workspace(tmp_path, (tmp_path / "bad.parquet").read_bytes(), suffix=".parquet")
    result = prepare(tmp_path)
    assert result.returncode == 1
    assert "column 'income' is declared numeric but is stored as string" in result.stderr


def data_config():
    return project_module("config").DataConfig(
        **{**SCHEMA, "features": project_module("config").FeatureColumns(**SCHEMA["features"])}
    )


def test_prepared_tables_are_byte_identical_across_processes(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for path in (first, second):
        path.mkdir()
        (path / "people.csv").write_bytes(MIXED_TABLE.read_bytes())
        schema = {
            "name": "people",
            "file": "people.csv",
            "target": "churn",
            "task": "classification",
            "label": "string",
            "features": {
                "numeric": ["tenure_months", "monthly_charges", "age", "year"],
                "categorical": ["region", "plan", "contract"],
                "boolean": ["paperless_billing", "has_partner"],
                "datetime": ["signup_date"],
            },
            "drop": ["customer_id", "household"],
            "missing": ["", "NA"],
        }
        schema["features"]["numeric"].append("support_calls")
        write_workspace(path, (path / "people.csv").read_bytes(), schema)
        assert prepare(path).returncode == 0
    for name in ("train.parquet", "test.parquet"):
        assert (first / "out" / name).read_bytes() == (second / "out" / name).read_bytes()


ingest = machinery("tools.ingest")


@pytest.mark.parametrize(
    ("column", "values", "kind"),
    [
        ("customer_id", ["1001.0", "1002.0", "1003.0", "1004.0"], "drop"),  # a float id
        ("weight", ["1.5", "2.5", "3.5", "4.5"], "numeric"),  # unique, but a measure
        ("comment", ["a b", "c d", "e f", "g h"], "drop"),  # unique text
        ("origin", ["usa", "usa", "usa", "usa"], "drop"),  # one value
        ("origin", ["usa", "usa", "NA", "usa"], "categorical"),  # one value and missing
    ],
)
def test_make_data_puts_what_cannot_inform_the_model_under_drop(tmp_path, column, values, kind):
    path = tmp_path / "t.csv"
    rows = [f"{value},{index % 2}" for index, value in enumerate(values)]
    path.write_text("\n".join([f"{column},label", *rows]) + "\n")
    schema = ingest.infer_schema(path, "label", "t", "t.csv")
    found = (
        "drop"
        if column in schema["drop"]
        else next(name for name, columns in schema["features"].items() if column in columns)
    )
    assert found == kind


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        (["yes", "no"], "string"),
        (["true", "false"], "string"),
        (["True", "False"], "boolean"),
        (["007", "012"], "string"),
        (["7", "12"], "integer"),
    ],
)
def test_make_data_keeps_labels_as_the_file_writes_them(tmp_path, labels, label):
    path = tmp_path / "t.csv"
    rows = [f"{index},{labels[index % 2]}" for index in range(8)]
    path.write_text("\n".join(["x,label", *rows]) + "\n")
    assert ingest.infer_schema(path, "label", "t", "t.csv")["label"] == label


def test_the_separator_is_sniffed_past_a_quoted_value_cut_at_the_sniffed_lines(tmp_path):
    tables = machinery("runtime.tables")
    path = tmp_path / "t.csv"
    rows = [f'{index};"a;b";1' for index in range(tables.SNIFF_LINES - 1)]
    path.write_text("\n".join(["id;note;label", *rows, '99;"cut\nhere";1']) + "\n")
    assert tables.sniff_delimiter(path) == ";"
    path.write_text('id,note,label\n1,"a;b;c",x\n2,"d;e",y\n')
    assert tables.sniff_delimiter(path) == ","


def test_year_first_dates_are_dates_to_make_data_and_to_the_reader(tmp_path):
    """Seattle's weather table writes 2012/01/31: a date, not 1,461 distinct categories."""
    path = tmp_path / "weather.csv"
    path.write_text("date,wind,weather\n2012/01/31,4.7,rain\n2012/02/01 10:30,4.5,sun\n")
    schema = ingest.infer_schema(path, "weather", "weather", "weather.csv")
    assert schema["features"]["datetime"] == ["date"]
    assert schema["dates"] == {"date": ["year", "month", "day_of_week", "day_of_year", "hour"]}
    declared = {**SCHEMA, "target": "weather", "drop": []}
    declared["features"] = project_module("config").FeatureColumns(
        numeric=["wind"], datetime=["date"]
    )
    table = data.read_raw(path, project_module("config").DataConfig(**declared))
    assert [str(value) for value in table["date"].to_pylist()] == [
        "2012-01-31 00:00:00",
        "2012-02-01 10:30:00",
    ]


def test_make_data_refuses_a_column_name_hydra_would_resolve(tmp_path):
    """A column named ${oc.env:TOKEN} written into conf/data would put the token into
    params.yaml; make data refuses it before writing anything."""
    path = tmp_path / "t.csv"
    path.write_text("${oc.env:SOME_TOKEN},label\n1,a\n2,b\n")
    with pytest.raises(machinery("runtime.errors").DataError, match=r"holds '\$\{'"):
        ingest.infer_schema(path, "label", "t", "t.csv")
