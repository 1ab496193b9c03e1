"""Provenance statements and report measures, as units (the git side is tested end to end)."""

import copy

from conftest import project_module

provenance = project_module("repro.provenance")
report = project_module("repro.report")

FACTS = {
    "commit": "a" * 40,
    "model_path": "models/model.pkl",
    "model_sha256": "b" * 64,
    "data": {"data/raw/x.csv": {"md5": "c" * 32}},
    "params": {"seed": 42, "model": {"family": "logreg", "C": 1.0}},
    "locks": {"runtime.lock": "d" * 64},
    "environment": {"hash": "e" * 64, "python": "3.11.7"},
}


def released():
    statement = provenance.build_statement(FACTS, "git+file:///repo", "t0", "t1", release="m@v1")
    return provenance.parse_tag_message(provenance.tag_message("Release m v1", statement))


def test_a_statement_round_trips_through_the_tag_and_checks_out():
    fields, statement = released()
    assert statement["_type"] == provenance.STATEMENT_TYPE
    assert statement["predicateType"] == provenance.PREDICATE_TYPE
    assert provenance.check_statement(fields, statement, FACTS) == []
    assert provenance.is_complete(statement)


def test_every_hand_edit_is_named():
    fields, statement = released()
    edited = copy.deepcopy(statement)
    edited["predicate"]["buildDefinition"]["externalParameters"]["params"]["seed"] = 7
    problems = provenance.check_statement(fields, edited, FACTS)
    assert any("edited" in p for p in problems) and any("parameters" in p for p in problems)

    fields_with_other_model = {**fields, "model-sha256": "0" * 64}
    problems = provenance.check_statement(fields_with_other_model, statement, FACTS)
    assert problems == ["the tag's model-sha256 is not the statement's subject"]

    other_commit = {**FACTS, "model_sha256": "f" * 64}
    problems = provenance.check_statement(fields, statement, other_commit)
    assert any("is not the model the commit recorded" in p for p in problems)


def test_a_statement_without_an_environment_is_not_full_provenance():
    _, statement = released()
    statement["predicate"]["buildDefinition"]["internalParameters"]["environment"] = {}
    assert not provenance.is_complete(statement)


def test_timeouts_are_unchecked_not_failures():
    rate = report._rate([{"result": "match"}, {"result": "mismatch"}, {"result": "timeout"}])
    assert rate == {"successes": 1, "checked": 2, "unchecked": 1, "rate": 0.5}
    assert report._p95([float(n) for n in range(1, 21)]) == 19.0
