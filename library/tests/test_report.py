"""The report's quarters and incidents from claims as notes.well_formed reads them (no bake:
the records are built here as a rebuild, a rollback and `make incident` write them)."""

import json
from types import SimpleNamespace

import pytest

from reproml.tools.notes import well_formed
from reproml.tools.report import by_quarter, quarter, quarter_table

A, B = "a" * 40, "b" * 40


def incident(commit: str, cause: str, reported: str, **extra) -> dict:
    line = json.dumps(
        {
            "kind": "incident",
            "revision": commit,
            "release": "model@v1.0.0",
            "cause": cause,
            "note": "what happened",
            "reported": reported,
            **extra,
        }
    )
    record, problem = well_formed(line, commit)
    assert problem is None, problem
    return record


def rebuild(commit: str, result: str, finished: str, seconds: float, environment: str) -> dict:
    return {
        "kind": "rebuild",
        "revision": commit,
        "result": result,
        "varied_environment": False,
        "timings": {"total": seconds},
        "environment": {"hash": environment},
        "finished": finished,
    }


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-01-01T00:00:00Z", "2026-Q1"),
        ("2026-03-31T23:59:59Z", "2026-Q1"),
        ("2026-04-01T00:00:00Z", "2026-Q2"),
        ("2026-12-07T16:35:10Z", "2026-Q4"),
        # GTO's time with an offset is counted in UTC: still the old year there.
        ("2027-01-01T00:30:00+01:00", "2026-Q4"),
        ("", None),
        ("last tuesday", None),
    ],
)
def test_a_time_falls_in_its_utc_quarter(timestamp, expected):
    assert quarter(timestamp) == expected


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cause": "Unreproducible"}, "unknown cause 'Unreproducible'"),
        ({"cause": None}, "incident record without a valid 'cause'"),
        ({"reported": "2026-13-01T00:00:00Z"}, "'reported' is not a UTC time"),
        ({"reported": "2026-12-07"}, "'reported' is not a UTC time"),
        ({"reported": "2026-02-31T00:00:00Z"}, "'reported' is not a UTC time"),
        ({"note": 3}, "incident record without a valid 'note'"),
        ({"release": None}, "incident record without a valid 'release'"),
    ],
)
def test_an_incident_spelled_otherwise_is_no_record(change, problem):
    line = json.dumps(
        {
            "kind": "incident",
            "revision": A,
            "release": "model@v1.0.0",
            "cause": "other",
            "note": "n",
            "reported": "2026-12-07T16:35:10Z",
            **change,
        }
    )
    record, said = well_formed(line, A)
    assert record is None and problem in said


def test_the_five_measures_are_counted_in_the_quarter_each_claim_was_made():
    releases = [
        SimpleNamespace(tag="model@v1.0.0", commit=A, created="2026-02-10T10:00:00+00:00"),
        SimpleNamespace(tag="model@v2.0.0", commit=B, created="2026-05-10T10:00:00+00:00"),
    ]
    verified = {A: releases[0]}  # v2's provenance is broken
    counted = [
        rebuild(A, "match", "2026-02-11T00:00:00Z", 10.0, "e1"),
        rebuild(A, "match", "2026-02-12T00:00:00Z", 30.0, "e1"),
        rebuild(A, "mismatch", "2026-05-01T00:00:00Z", 20.0, "e2"),
        rebuild(A, "match", "2026-05-02T00:00:00Z", 40.0, "e2"),
        {
            "kind": "rollback",
            "revision": A,
            "result": "failure",
            "finished": "2026-05-03T00:00:00Z",
        },
        incident(A, "unreproducible", "2026-05-04T00:00:00Z"),
        incident(A, "other", "2026-05-05T00:00:00Z"),
        incident(A, "unreproducible", "2026-08-01T00:00:00Z"),
    ]
    rows = {row["quarter"]: row for row in by_quarter(releases, verified, counted)}
    assert sorted(rows) == ["2026-Q1", "2026-Q2", "2026-Q3"]
    first, second, third = rows["2026-Q1"], rows["2026-Q2"], rows["2026-Q3"]
    assert (first["releases"], first["with_full_provenance"]) == (1, 1)
    assert (second["releases"], second["with_full_provenance"]) == (1, 0)
    assert first["time_to_reproduce"] == {"n": 2, "mean_seconds": 20.0, "p95_seconds": 30.0}
    assert first["environments"] == {"seen": 1, "confirmed_consistent": 1}
    assert second["environments"] == {"seen": 1, "confirmed_consistent": 0}
    assert second["field"]["successes"] == 1 and second["field"]["checked"] == 2
    assert second["rollback"]["successes"] == 0 and second["rollback"]["checked"] == 1
    assert second["incidents"] == {"total": 2, "unreproducible": 1, "share_unreproducible": 0.5}
    assert third["incidents"]["unreproducible"] == 1 and third["releases"] == 0
    table = "\n".join(quarter_table(list(rows.values())))
    assert "2026-Q2" in table and "2 (1)" in table
