"""Claims that cannot be quietly removed (tools/claims.py): every claim names the newest ones
its maker saw, so a deleted claim is named by the next one, and a clone names what it held
and lost. Real git, a real notes ref and GTO's own tags; signing off, so no key is needed
(the chain reads only what counts, signed or not: tier 3 runs it signed)."""

import subprocess
from pathlib import Path

import pytest
from support import GIT_TEST_ENV, git, machinery

claims = machinery("tools.claims")
notes = machinery("tools.notes")
tags = machinery("tools.tags")


def test_heads_are_the_claims_no_later_claim_names_and_missing_ones_are_named():
    first, second, third = (f"record:{'a' * 40}:{digit * 32}" for digit in "123")
    chain = claims.Chain(
        {
            first: claims.Claim(first, "first"),
            third: claims.Claim(third, "third", (second,)),
        }
    )
    assert chain.heads() == sorted([first, third])
    assert chain.missing() == {second: ["third"]}


def test_only_well_formed_ids_before_a_tags_signature_are_read():
    good = f"tag:model@v1.0.0:{'b' * 40}"
    message = "\n".join(
        [
            "Release model v1.0.0",
            "-----BEGIN IN-TOTO STATEMENT-----",  # a release's statement comes first
            "{}",
            "-----END IN-TOTO STATEMENT-----",
            f"Reproml-Previous: {good}",
            "Reproml-Previous: tag:model@v1 0:nothex",
            "-----BEGIN SSH SIGNATURE-----",
            f"Reproml-Previous: record:{'c' * 40}:{'d' * 32}",
        ]
    )
    assert claims.previous_in_message(message) == (good,)


@pytest.mark.parametrize(
    "previous", ["record:x", ["not an id"], [f"record:{'a' * 40}:{'1' * 32}"] * 501, [7]]
)
def test_a_record_whose_previous_is_not_claim_ids_is_skipped(previous):
    line = notes.compact_json(
        {
            "kind": "rebuild",
            "revision": "a" * 40,
            "result": "match",
            "varied_environment": False,
            "timings": {"total": 1.0},
            "previous": previous,
        }
    )
    record, problem = notes.check_note(Path("."), line, "a" * 40)
    assert record is None and "'previous' is not a list of claim ids" in problem


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository with a model artifact and signing off, as a team that opted out has it."""
    for key, value in GIT_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "--initial-branch=main")
    (repo / "dvc.yaml").write_text(
        "artifacts:\n  model:\n    path: models/model.pkl\n    type: model\n"
    )
    (repo / "pyproject.toml").write_text('[tool.reproml]\nrelease_signing = "off"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    return repo


def rebuild_record(repo: Path, seconds: float) -> str:
    """Append a rebuild record of HEAD as a rebuild would, and return its claim id."""
    commit = git(repo, "rev-parse", "HEAD")
    record = {
        "kind": "rebuild",
        "revision": commit,
        "result": "match",
        "varied_environment": False,
        "timings": {"total": seconds},
    }
    assert notes.append_note(repo, commit, record) is None
    records, _ = notes.notes_of(repo, commit)
    return claims.note_id(next(r for r in records if r["timings"]["total"] == seconds))


def test_a_deleted_record_is_named_by_the_claim_that_follows_it(project):
    first = rebuild_record(project, 1.0)
    second = rebuild_record(project, 2.0)
    chain, _ = claims.read(project)
    assert chain.claims[second].previous == (first,) and chain.heads() == [second]
    assert claims.problems(project) == []
    # Someone rewrites the note without the first record.
    head = git(project, "rev-parse", "HEAD")
    kept = next(
        line
        for line in git(project, "notes", "--ref=reproml", "show", head).splitlines()
        if '"total":2.0' in line
    )
    git(project, "notes", "--ref=reproml", "add", "-f", "-m", kept, head)
    [problem] = claims.problems(project)
    assert f"a record on commit {head[:12]} is named by the signed rebuild record" in problem
    assert "deleted on origin, or not fetched" in problem and "make push-records" in problem


def test_a_tag_follows_the_records_and_a_deleted_notes_ref_is_named_by_it_and_by_memory(project):
    record = rebuild_record(project, 1.0)
    commit = git(project, "rev-parse", "HEAD")
    name = tags.make_signed(project, "model", ["register", "model", commit, "--version", "v1.0.0"])
    assert name == "model@v1.0.0"
    chain, _ = claims.read(project)
    [tag] = [ref for ref in chain.claims if ref.startswith("tag:")]
    assert chain.claims[tag].previous == (record,)
    assert claims.problems(project) == []  # this clone now remembers both
    git(project, "update-ref", "-d", "refs/notes/reproml")
    [problem] = claims.problems(project)
    assert "is named by the signed tag model@v1.0.0" in problem
    # The tag deleted too: nothing names the record now, but this clone saw both.
    git(project, "tag", "-d", "model@v1.0.0")
    found = claims.problems(project)
    assert len(found) == 2 and all("was a claim in this clone" in line for line in found)
    assert any("tag model@v1.0.0 was a claim" in line for line in found)
    accepted = claims.accept(project, ["model@v1.0.0", git(project, "rev-parse", "HEAD")[:7]])
    assert sorted(accepted) == sorted([tag, record]) and claims.problems(project) == []


def test_origin_losing_a_claim_it_held_is_named_at_fetch_and_the_clone_keeps_it(project, tmp_path):
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    rebuild_record(project, 1.0)
    git(project, "push", "-q", "origin", "main", "refs/notes/reproml")
    assert claims.origin_drops(project) == []  # remembers what origin holds
    git(origin, "update-ref", "-d", "refs/notes/reproml")
    notes.fetch(project)
    [drop] = claims.origin_drops(project)
    assert (
        drop.startswith("origin no longer has a record on commit") and "make push-records" in drop
    )
    assert notes.all_notes(project)[0], "the clone dropped its own copy"
    notes.push(project)
    assert claims.origin_drops(project) == []


def test_accept_takes_only_what_is_reported_deleted_never_a_claim_still_here(project):
    kept = rebuild_record(project, 1.0)
    gone = rebuild_record(project, 2.0)
    third = rebuild_record(project, 3.0)  # names the second
    head = git(project, "rev-parse", "HEAD")
    lines = [
        line for line in git(project, "notes", "--ref=reproml", "show", head).splitlines() if line
    ]
    git(project, "notes", "--ref=reproml", "add", "-f", "-m", "\n".join([lines[0], lines[2]]), head)
    assert len(claims.problems(project)) == 1
    # The commit names all three records: only the one reported goes.
    assert claims.accept(project, [head[:7]]) == [gone]
    chain, _ = claims.read(project)
    assert {kept, third} <= set(chain.claims) and claims.problems(project) == []


def test_a_new_claim_names_at_most_max_previous_heads_and_still_counts(project, monkeypatch):
    monkeypatch.setattr(claims, "MAX_PREVIOUS", 2)
    for seconds in (1.0, 2.0, 3.0):  # three records on one commit, appended as heads
        commit = git(project, "rev-parse", "HEAD")
        line = notes.compact_json(
            {
                "kind": "rebuild",
                "revision": commit,
                "result": "match",
                "varied_environment": False,
                "timings": {"total": seconds},
            }
        )
        git(project, "notes", "--ref=reproml", "append", "-m", line, commit)
    assert len(claims.heads(project)) == 2
    newest = rebuild_record(project, 4.0)
    chain, skipped = claims.read(project)
    assert newest in chain.claims and not skipped, skipped


def test_names_and_notes_that_are_not_utf8_are_passed_over_not_a_traceback(project):
    commit = git(project, "rev-parse", "HEAD")
    subprocess.run(
        ["git", "update-ref", b"refs/tags/model@v1.0.0\xff", commit],
        cwd=project,
        env=GIT_TEST_ENV,
        check=True,
    )
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=project,
            input=b'{"kind": "rebuild", "x": "\xff"}\n',
            capture_output=True,
            env=GIT_TEST_ENV,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(project, "notes", "--ref=reproml", "add", "-f", "-C", blob, commit)
    chain, skipped = claims.read(project)
    assert not chain.claims and skipped == [
        f"refs/notes/reproml note on {commit[:12]}, line 1: not UTF-8 text"
    ]
    assert claims.problems(project) == []


@pytest.fixture
def signed_project(project, tmp_path):
    """The project signing with ssh keys: ``sign(listed, key)`` commits ``listed`` keys alone
    in .allowed_signers on main (a rotation drops one) and has git sign with ``key``."""
    signing = machinery("tools.signing")
    keys = tmp_path / "keys"
    keys.mkdir()

    def key_file(name: str) -> Path:
        key = keys / name
        if not key.exists():
            command = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)]
            subprocess.run(command, check=True)
        return key

    def sign(listed: list[str], key: str) -> None:
        lines = [
            f"{name}@example.com {key_file(name).with_suffix('.pub').read_text()}"
            for name in listed
        ]
        (project / ".allowed_signers").write_text("".join(lines))
        (project / "pyproject.toml").write_text('[tool.reproml]\nrelease_signing = "ssh"\n')
        git(project, "add", "-A")
        git(project, "commit", "-qm", f"allow {', '.join(listed)}", "--allow-empty")
        git(project, "config", "user.signingkey", str(key_file(key)))
        for cache in (signing._trusted, signing._ever, notes._verdicts, tags._verdicts):
            cache.clear()

    return project, sign, key_file


def test_a_record_by_a_rotated_key_is_no_deletion_but_a_strangers_copy_of_it_is(signed_project):
    project, sign, key_file = signed_project
    sign(["old", "new"], "old")
    commit = git(project, "rev-parse", "HEAD")
    first = rebuild_record(project, 1.0)
    git(project, "config", "user.signingkey", str(key_file("new")))
    second = rebuild_record(project, 2.0)
    chain, _ = claims.read(project)
    assert chain.claims[second].previous == (first,)
    # The old key leaves main: its record is still here, and no longer counts. No deletion.
    git(project, "checkout", "-q", "-b", "rotated")
    sign(["new"], "new")
    git(project, "branch", "-f", "main", "rotated")
    chain, _ = claims.read(project)
    assert first in chain.not_counted and "once listed" in chain.not_counted[first]
    assert claims.problems(project) == []
    # Someone replaces it by the same payload signed with their own key: not the project's.
    kept = []
    for line in filter(None, git(project, "notes", "--ref=reproml", "show", commit).splitlines()):
        record = notes.json.loads(line)
        if record["timings"]["total"] == 1.0:
            record["signature"] = subprocess.run(
                [
                    "ssh-keygen",
                    "-Y",
                    "sign",
                    "-q",
                    "-n",
                    "reproml-record",
                    "-f",
                    str(key_file("x")),
                ],
                input=notes.signed_payload(record),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        kept.append(notes.compact_json(record))
    git(project, "notes", "--ref=reproml", "add", "-f", "-m", "\n".join(kept), commit)
    notes._verdicts.clear()
    [problem] = claims.problems(project)
    assert problem.startswith(f"a record on commit {commit[:12]} is named by the signed rebuild")
