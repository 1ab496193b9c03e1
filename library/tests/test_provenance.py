"""Provenance statements and report measures, as units (the git side is tested end to end)."""

import copy

import pytest
from support import machinery

provenance = machinery("tools.provenance")
report = machinery("tools.report")

FACTS = {
    "commit": "a" * 40,
    "model_path": "models/model.pkl",
    "model_sha256": "b" * 64,
    "data": {"data/raw/x.csv": {"md5": "c" * 32}},
    "params": {"seed": 42, "model": {"family": "logreg", "C": 1.0}},
    "locks": {"runtime.lock": "d" * 64},
    "environment": {"hash": "e" * 64, "python": "3.11.7"},
    "drift": [],
}
STARTED, FINISHED = "2026-11-27T10:00:00Z", "2026-11-27T10:05:00Z"


def released():
    statement = provenance.build_statement(
        FACTS, "git+file:///repo", STARTED, FINISHED, artifact="m", release="m@v1"
    )
    return provenance.parse_tag_message(provenance.tag_message("Release m v1", statement))


def test_a_statement_round_trips_through_the_tag_and_checks_out():
    fields, statement = released()
    assert statement["_type"] == provenance.STATEMENT_TYPE
    assert statement["predicateType"] == provenance.PREDICATE_TYPE
    assert provenance.check_statement(fields, statement, FACTS, release="m@v1") == []
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


def leaf_paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaf_paths(value, (*path, index))
    else:
        yield path


def forged(value, path):
    """A forgery of one field that keeps it plausible where the field allows it."""
    if path[-1] == "uri":
        return "git+https://user:TOKEN@example.com/repo.git"
    if path[-1] in ("startedOn", "finishedOn"):
        return "yesterday"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1:] != "0" else "1") if value else "x"
    return "x"


def test_every_field_edited_alone_is_caught_even_with_the_digest_recomputed():
    """An attacker can recompute the statement's sha256 in the tag; every single-field edit,
    an added unknown field, an extra dependency and a wrong release name must still show."""
    fields, statement = released()
    paths = list(leaf_paths(statement))
    assert len(paths) > 20
    for path in paths:
        edited = copy.deepcopy(statement)
        node = edited
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = forged(node[path[-1]], path)
        resealed = {**fields, "statement-sha256": provenance.digest(edited)}
        if path[-1] == "sha256" and path[0] == "subject":
            resealed["model-sha256"] = node[path[-1]]
        problems = provenance.check_statement(resealed, edited, FACTS, release="m@v1")
        assert problems, f"an edit of {'.'.join(map(str, path))} went unnoticed"
    for extra in (
        lambda s: s["predicate"].update(extra={"x": 1}),
        lambda s: s["predicate"]["buildDefinition"]["resolvedDependencies"].append(
            {"name": "more", "digest": {"md5": "0" * 32}}
        ),
        lambda s: s["predicate"]["runDetails"]["byproducts"].append({"name": "x"}),
    ):
        edited = copy.deepcopy(statement)
        extra(edited)
        resealed = {**fields, "statement-sha256": provenance.digest(edited)}
        assert provenance.check_statement(resealed, edited, FACTS, release="m@v1")
    problems = provenance.check_statement(fields, statement, FACTS, release="m@v2")
    assert problems == ["the statement names release 'm@v1', not m@v2"]


def test_drift_is_part_of_the_statement_and_credentials_never_are():
    drifted = {**FACTS, "drift": ["- numpy==2.4.6", "+ numpy==2.0.0"]}
    statement = provenance.build_statement(drifted, "git+file:///r", STARTED, FINISHED)
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["drift"] == drifted["drift"]
    for url, public in [
        ("https://user:TOKEN@host.example/org/repo.git?x=1#f", "https://host.example/org/repo.git"),
        (
            "https://gitlab-ci-token:glcbt-abc@gitlab.example/g/p.git",
            "https://gitlab.example/g/p.git",
        ),
        ("ssh://git@host.example:2222/org/repo", "ssh://host.example:2222/org/repo"),
        ("git@host.example:org/repo.git", "host.example:org/repo.git"),
    ]:
        assert provenance.public_url(url) == public


def test_the_statement_parses_and_validates_with_the_in_toto_bindings():
    """The in-toto attestation framework's own Python bindings: the Statement validates, and
    the predicate parses as SLSA Provenance v1 (whose schema has no room for unknown fields)."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    _, statement = released()
    Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
    parsed = json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    assert parsed.build_definition.build_type == provenance.BUILD_TYPE
    assert parsed.run_details.builder.id == provenance.BUILDER_ID
    statement["predicate"]["runDetails"]["unexpected"] = 1
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
