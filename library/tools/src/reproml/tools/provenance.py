"""Provenance: the model's deterministic record, and the release statement built from it.

The record (``models/model.json``, written by the train stage) names the data version (the
DVC md5 of every input), the resolved parameters and the environment's fingerprint. It holds
nothing time- or machine-path-dependent, so dvc.lock stays stable.

At release, an in-toto Statement v1 with an SLSA Provenance v1 predicate is built from the
commit's own files (record, dvc.lock, locks, params) and stored in the annotated release tag,
which travels with the repository. Every field of it can be re-derived from the commit, so a
statement or a tag edited by hand no longer checks out.
"""

import argparse
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..runtime.io import compact_json, structural_differences
from .criteria import check_form
from .git import git_show, show_json, show_yaml
from .locking import RUNTIME_LOCK, UV_LOCK

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/reproml/template/dvc-repro@v1"
BUILDER_ID = "https://github.com/reproml/template/make-release@v1"
# The locks a statement pins by their sha256: everything, and what determines model bytes.
STATEMENT_LOCKS = (UV_LOCK, RUNTIME_LOCK)
STATEMENT_BEGIN = "-----BEGIN IN-TOTO STATEMENT-----"
STATEMENT_END = "-----END IN-TOTO STATEMENT-----"


def canonical(payload: dict) -> str:
    return compact_json(payload)


def digest(payload: dict) -> str:
    return hashlib.sha256(canonical(payload).encode()).hexdigest()


def commit_facts(repo: Path, commit: str, model_path: str, record_path: str) -> dict:
    """Everything a statement says, re-derived from the files of ``commit``."""
    record = show_json(repo, commit, record_path)
    if not isinstance(record, dict):
        raise ValueError(f"{commit[:12]} has no {record_path}: it was never trained and committed")
    params = show_yaml(repo, commit, "params.yaml")
    locks = {}
    for name in STATEMENT_LOCKS:
        text = git_show(repo, commit, name)
        if text is not None:
            locks[name] = hashlib.sha256(text.encode()).hexdigest()
    return {
        "commit": commit,
        "model_path": model_path,
        "model_sha256": record["model"]["sha256"],
        "data": record.get("data", {}),
        "params": params,
        "locks": locks,
        "environment": record.get("environment", {}),
        "drift": record.get("drift", []),
    }


def public_url(url: str) -> str:
    """``url`` without credentials, query string or fragment: what may go into a statement,
    a record or a log (an origin like ``https://user:TOKEN@host/repo`` must not)."""
    if "://" not in url:
        # scp-like `user@host:path`: the user name is not a secret, but drop it all the same.
        return re.sub(r"^[^@/:]+@", "", url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def build_statement(facts: dict, source_uri: str, started: str, finished: str, **extra) -> dict:
    """An in-toto Statement v1 whose predicate is SLSA Provenance v1."""
    dependencies = [
        {"uri": source_uri, "name": "source", "digest": {"gitCommit": facts["commit"]}},
        *(
            {"name": path, "digest": {"md5": value["md5"]}}
            for path, value in sorted(facts["data"].items())
        ),
        *(
            {"name": name, "digest": {"sha256": value}}
            for name, value in sorted(facts["locks"].items())
        ),
    ]
    environment = facts["environment"]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts["model_path"], "digest": {"sha256": facts["model_sha256"]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"params": facts["params"], **extra},
                # Drift from the lock, when training was allowed to run on it (empty: none).
                "internalParameters": {"environment": environment, "drift": facts["drift"]},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {
                    "invocationId": extra.get("release", facts["commit"]),
                    "startedOn": started,
                    "finishedOn": finished,
                },
                "byproducts": [
                    {"name": "environment", "digest": {"sha256": environment.get("hash", "")}}
                ],
            },
        },
    }


def tag_message(title: str, statement: dict) -> str:
    """The annotated tag's message: a title, the two hashes a reader checks, the statement."""
    return (
        f"{title}\n\n"
        f"model-sha256: {statement['subject'][0]['digest']['sha256']}\n"
        f"statement-sha256: {digest(statement)}\n\n"
        f"{STATEMENT_BEGIN}\n{json.dumps(statement, indent=2, sort_keys=True)}\n{STATEMENT_END}\n"
    )


def parse_tag_message(message: str) -> tuple[dict, dict]:
    """``(header fields, statement)`` from a release tag's message."""
    if STATEMENT_BEGIN not in message or STATEMENT_END not in message:
        raise ValueError("the tag message holds no provenance statement")
    head, rest = message.split(STATEMENT_BEGIN, 1)
    body = rest.split(STATEMENT_END, 1)[0]
    fields = {}
    for line in head.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in ("model-sha256", "statement-sha256"):
            fields[key] = value.strip()
    return fields, json.loads(body)


# What `make release` adds to the statement: the names, and the release criteria's decision
# (tools/criteria.py), which only the signed statement holds.
RELEASE_EXTRA_KEYS = ("artifact", "release", "release_decision")


def check_statement(
    fields: dict, statement: dict, facts: dict, release: str | None = None
) -> list[str]:
    """Every way the tag and its statement disagree with each other or with the commit.

    The statement is rebuilt from the commit's files and compared field by field, unknown
    extra fields included. Only what the commit cannot give is taken from the statement
    itself, and checked for its form: the source URI (credential-free), the run times (ISO
    8601, start before finish) and the release name (the tag's own, when it is known)."""
    problems = []
    if fields.get("statement-sha256") != digest(statement):
        problems.append("the statement's sha256 is not the one in the tag: it was edited")
    subject = _get(statement, "subject", 0, "digest", "sha256")
    if fields.get("model-sha256") != subject:
        problems.append("the tag's model-sha256 is not the statement's subject")
    if subject != facts["model_sha256"]:
        problems.append(
            f"the subject {subject} is not the model the commit recorded ({facts['model_sha256']})"
        )
    definition = _get(statement, "predicate", "buildDefinition") or {}
    resolved = {
        item.get("name"): item.get("digest", {})
        for item in definition.get("resolvedDependencies") or []
        if isinstance(item, dict)
    }
    if resolved.get("source", {}).get("gitCommit") != facts["commit"]:
        problems.append("the statement names another source commit than the tag's")
    for path, value in facts["data"].items():
        if resolved.get(path, {}).get("md5") != value["md5"]:
            problems.append(f"the statement's md5 of {path} is not the commit's")
    for name, value in facts["locks"].items():
        if resolved.get(name, {}).get("sha256") != value:
            problems.append(f"the statement's sha256 of {name} is not the commit's")
    external = definition.get("externalParameters") or {}
    if external.get("params") != facts["params"]:
        problems.append("the statement's parameters are not the commit's params.yaml")
    problems += _check_free_fields(statement, external, release)
    expected = build_statement(
        facts,
        str(_get(statement, "predicate", "buildDefinition", "resolvedDependencies", 0, "uri")),
        str(_get(statement, "predicate", "runDetails", "metadata", "startedOn")),
        str(_get(statement, "predicate", "runDetails", "metadata", "finishedOn")),
        **{key: external[key] for key in RELEASE_EXTRA_KEYS if key in external},
    )
    covered = ("subject.0.digest", "predicate.buildDefinition.externalParameters.params")
    for path in _differences(expected, statement):
        if problems and path.startswith(covered):
            continue
        problems.append(f"the statement's {path or 'top level'} is not what the commit gives")
    return problems


def _check_free_fields(statement: dict, external: dict, release: str | None) -> list[str]:
    problems = []
    uri = _get(statement, "predicate", "buildDefinition", "resolvedDependencies", 0, "uri")
    if not isinstance(uri, str) or not uri.startswith("git+") or public_url(uri[4:]) != uri[4:]:
        problems.append("the source URI is not a credential-free git+ URL")
    times = []
    for key in ("startedOn", "finishedOn"):
        value = _get(statement, "predicate", "runDetails", "metadata", key)
        try:
            times.append(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
        except ValueError:
            problems.append(f"runDetails.metadata.{key} is not an ISO 8601 time: {value!r}")
    if len(times) == 2 and times[0] > times[1]:
        problems.append("the build finished before it started")
    problems += check_form(external.get("release_decision"))
    if release is not None:
        named, artifact = external.get("release"), external.get("artifact")
        if named != release:
            problems.append(f"the statement names release {named!r}, not {release}")
        if artifact != release.split("@", 1)[0]:
            problems.append(f"the statement names artifact {artifact!r}, not {release}'s")
    return problems


def _get(node, *path):
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _differences(expected, actual) -> list[str]:
    """Dotted paths where ``actual`` differs from ``expected`` (extra keys included)."""
    notes = {"extra": " (an unknown extra field)", "missing": " (missing)", "changed": ""}
    return [
        path + notes[what]
        for path, what, _, _ in structural_differences(
            expected, actual, into_lists=True, strict=True
        )
    ]


def is_complete(statement: dict) -> bool:
    """Full provenance: data version, code commit, environment hash and parameters present."""
    definition = statement.get("predicate", {}).get("buildDefinition", {})
    names = {item.get("name") for item in definition.get("resolvedDependencies", [])}
    environment = definition.get("internalParameters", {}).get("environment", {})
    has_data = any(
        item.get("digest", {}).get("md5") for item in definition.get("resolvedDependencies", [])
    )
    return (
        "source" in names
        and has_data
        and bool(environment.get("hash"))
        and bool(definition.get("externalParameters", {}).get("params"))
    )


def describe(statement: dict, title: str) -> str:
    """The statement for a person: what was built, from what, how, where."""
    definition = statement["predicate"]["buildDefinition"]
    metadata = statement["predicate"]["runDetails"]["metadata"]
    environment = definition["internalParameters"].get("environment", {})
    lines = [f"Provenance of {title}"]
    for subject in statement["subject"]:
        lines.append(f"  model        {subject['name']}  sha256 {subject['digest']['sha256']}")
    for item in definition["resolvedDependencies"]:
        digest_name, value = next(iter(item["digest"].items()))
        label = "code" if item["name"] == "source" else "input"
        lines.append(f"  {label:<12} {item['name']}  {digest_name} {value}")
    lines.append(
        f"  environment  {environment.get('hash', '?')}  (python {environment.get('python')}, "
        f"{environment.get('platform')}, {', '.join(environment.get('blas', []))})"
    )
    params = definition["externalParameters"].get("params", {})
    lines.append(f"  params       seed {params.get('seed')}, model {params.get('model')}")
    if metadata.get("startedOn"):
        lines.append(f"  built        {metadata['startedOn']} .. {metadata['finishedOn']}")
    return "\n".join(lines)


def run_provenance(args: argparse.Namespace) -> int:
    """`make provenance`: the statement in words and as JSON, and what does not check out."""
    from .registry import statement_for

    title, statement, problems = statement_for(args.rev)
    if not args.json:
        print(describe(statement, title) + "\n")
    print(json.dumps(statement, indent=2, sort_keys=True))
    if problems:
        print("provenance does NOT check out:\n" + "\n".join(f"  - {p}" for p in problems))
        return 1
    return 0
