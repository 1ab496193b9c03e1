"""Tier 3: provenance, the gated registry and the reproducibility report, on real git, real
DVC and a real (local) remote, with a bare git repository as origin."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import bake, project_package, run
from test_end_to_end import (
    Project,
    install_other_threadpoolctl,
    model_override,
    restore_committed_state,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("registry")]


def commit_all(project: Project, message: str) -> None:
    project.git("add", "-A")
    project.git("commit", "-qm", message)


def change_parameter(project: Project) -> None:
    family, key, old, new = model_override(project)
    conf = project.path / "conf" / "model" / f"{family}.yaml"
    conf.write_text(conf.read_text().replace(f"{key}: {old}", f"{key}: {new}"))
    project.make("params")


def tag_message(project: Project, tag: str) -> str:
    """A tag's message without its signature."""
    return run(
        [
            "git",
            "for-each-ref",
            f"refs/tags/{tag}",
            "--format=%(contents:subject)%0a%0a%(contents:body)",
        ],
        cwd=project.path,
    ).stdout


def new_key(keys: Path, name: str) -> Path:
    """An SSH key pair in a temporary folder (never ~/.ssh); returns the private key's path."""
    keys.mkdir(exist_ok=True)
    command = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys / name)]
    run(command, cwd=keys)
    return keys / name


def set_up_signing(project: Project, keys: Path) -> Path:
    """The releaser's key: listed in the committed .allowed_signers, and git told (in this
    repository only) to sign with it."""
    key = new_key(keys, "releaser")
    allowed = project.path / ".allowed_signers"
    public = key.with_suffix(".pub").read_text()
    allowed.write_text(allowed.read_text() + f"releaser@example.com {public}")
    project.git("config", "gpg.format", "ssh")
    project.git("config", "user.signingkey", str(key))
    commit_all(project, "Allow the release key")
    return key


def retag(project: Project, tag: str, message: str) -> None:
    """Replace a release tag's message by hand, as someone editing provenance would (signed
    with the releaser's own key: only the statement checks can catch it)."""
    commit = run(["git", "rev-parse", f"{tag}^{{commit}}"], cwd=project.path).stdout.strip()
    (project.path.parent / "message.txt").write_text(message)
    project.git(
        "tag", "-f", "-s", "-a", tag, "-F", str(project.path.parent / "message.txt"), commit
    )


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    """bake -> repro -> release v1 -> change a parameter -> repro -> release v2 ->
    rollback v1 -> rebuild v1 -> records pushed to a bare origin."""
    root = tmp_path_factory.mktemp("lifecycle")
    origin = root / "origin.git"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(origin)], cwd=root)
    project = Project(bake(root))
    project.make("setup")
    project.git("remote", "add", "origin", str(origin))
    set_up_signing(project, root / "keys")
    project.make("repro")
    commit_all(project, "First model")
    project.dvc("push")
    released_v1 = project.make("release", "VERSION=v1.0.0")
    change_parameter(project)
    project.make("repro")
    commit_all(project, "Second model")
    project.dvc("push")
    project.make("release", "VERSION=v2.0.0")
    project.make("promote", "VERSION=v2.0.0", "STAGE=prod")
    rolled_back = project.make("rollback", "VERSION=v1.0.0")
    rebuilt = project.make("rebuild", "REV=model@v1.0.0")
    project.git("push", "-q", "origin", "main", "--tags")
    project.make("push-records")
    return {
        "project": project,
        "origin": origin,
        "root": root,
        "release": released_v1,
        "rollback": rolled_back,
        "rebuild": rebuilt,
    }


def test_release_passes_every_gate_and_tags_in_gto_format(lifecycle):
    project = lifecycle["project"]
    output = lifecycle["release"].stdout
    for gate in (
        "clean tree",
        "pipeline up to date",
        "verify passed",
        "data and model in the remote",
    ):
        assert f"gate {gate}: passed" in output
    tags = run(["git", "tag"], cwd=project.path).stdout.split()
    assert {"model@v1.0.0", "model@v2.0.0"} <= set(tags)
    shown = run([str(project.path / ".venv/bin/gto"), "show", "model"], cwd=project.path).stdout
    assert "v1.0.0" in shown and "v2.0.0" in shown
    assert run(["git", "cat-file", "-t", "model@v1.0.0"], cwd=project.path).stdout.strip() == "tag"


def confidences(project: Project) -> dict[str, str]:
    """``{tag: its confidence line}`` as `make registry` prints them."""
    listing = project.make("registry").stdout
    found, tag = {}, None
    for line in listing.splitlines():
        if line.startswith("model@"):
            tag = line.split()[0]
        elif line.strip().startswith("confidence ") and tag:
            found[tag] = line.strip()
    return found


def test_promotion_shows_in_the_registry_and_in_gto(lifecycle):
    project = lifecycle["project"]
    listing = project.make("registry").stdout
    assert re.search(r"model@v2\.0\.0 .* stages: prod .* provenance ok", listing)
    assert re.search(r"model@v1\.0\.0 .* stages: - .* provenance ok", listing)
    assert "model#prod#" in run(["git", "tag"], cwd=project.path).stdout
    # Confidence from each release's own signed evidence (docs/releases.md's formula): v1
    # was rebuilt MATCH once, today, in one environment (40 + 10/3 + 15), and its gate had no
    # release in prod and no criteria to check (15); v2 has only its gate.
    found = confidences(project)
    assert found["model@v1.0.0"] == (
        "confidence 73/100 (1/1 rebuilds MATCH; 1 environment, field; last rebuilt 0 days ago; "
        "gate passed, no rule to check)"
    ), found
    assert found["model@v2.0.0"].startswith("confidence 15/100 (no rebuild checked;"), found


def test_statement_is_in_toto_slsa_with_the_commit_data_and_lock(lifecycle):
    project = lifecycle["project"]
    shown = project.make("provenance", "REV=v1.0.0")
    assert "provenance does NOT check out" not in shown.stdout
    statement = json.loads(
        run(
            [
                str(project.path / ".venv/bin/python"),
                "-m",
                "reproml.tools",
                "provenance",
                "v1.0.0",
                "--json",
            ],
            cwd=project.path,
            env=project.env,
        ).stdout
    )
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    commit = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=project.path).stdout.strip()
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    digests = {item["name"]: item["digest"] for item in dependencies}
    assert digests["source"] == {"gitCommit": commit}
    raw = next(name for name in digests if name.startswith("data/raw/"))
    assert "md5" in digests[raw] and "sha256" in digests["runtime.lock"]
    record = json.loads(
        run(["git", "show", f"{commit}:models/model.json"], cwd=project.path).stdout
    )
    assert statement["subject"][0]["digest"]["sha256"] == record["model"]["sha256"]
    assert statement["predicate"]["runDetails"]["metadata"]["startedOn"]
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert params == yaml.safe_load(
        run(["git", "show", f"{commit}:params.yaml"], cwd=project.path).stdout
    )


def test_rollback_materialises_the_released_model_outside_the_workspace(lifecycle):
    project = lifecycle["project"]
    output = lifecycle["rollback"].stdout
    assert "rollback to v1.0.0: success, hash-verified" in output
    path = Path(re.search(r"model at (\S+)", output).group(1))
    record = json.loads(
        run(["git", "show", "model@v1.0.0:models/model.json"], cwd=project.path).stdout
    )
    from hashlib import sha256

    assert sha256(path.read_bytes()).hexdigest() == record["model"]["sha256"]
    assert run(["git", "status", "--porcelain"], cwd=project.path).stdout == ""


def test_report_after_the_lifecycle(lifecycle):
    report = lifecycle["project"].make("report").stdout
    assert "Reproducibility report: 2 releases" in report
    assert re.search(r"releases with full provenance:\s+2/2 \(100%\)", report)
    assert re.search(r"reproduction success, field:\s+1/1 \(100%\), 0 unchecked", report)
    assert re.search(r"rollback success:\s+1/1 \(100%\)", report)
    mean = re.search(
        r"time to reproduce:\s+mean ([\d.]+) s, p95 ([\d.]+) s over 1 rebuilds", report
    )
    assert mean and float(mean.group(1)) > 0
    assert (lifecycle["project"].path / "build/report/time-to-reproduce.svg").read_text().count(
        "<rect"
    ) == 1


def test_records_and_provenance_survive_a_clone(lifecycle, tmp_path):
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    report = clone.make("report").stdout
    assert re.search(r"releases with full provenance:\s+2/2", report)
    assert re.search(r"reproduction success, field:\s+1/1", report)
    assert re.search(r"rollback success:\s+1/1", report)


# Another CI job's record lands on origin between this push's fetch and its push (a field
# rebuild's matrix jobs race): origin then refuses the update, once.
RACING_JOB_HOOK = """#!/bin/sh
if [ ! -e "$GIT_DIR/raced" ]; then
  touch "$GIT_DIR/raced"
  # Outside the push's quarantine, as the other job's own push would be.
  env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \\
    git -c user.name=other -c user.email=other@example.com \\
    notes --ref=reproml append -m "from the other job" "$(git rev-parse main)"
fi
"""


def test_a_records_push_that_loses_a_race_merges_and_retries_losing_nothing(lifecycle, tmp_path):
    origin = tmp_path / "racing.git"
    run(["git", "clone", "-q", "--bare", str(lifecycle["origin"]), str(origin)], cwd=tmp_path)
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(RACING_JOB_HOOK)
    hook.chmod(0o755)
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(origin), str(clone.path)], cwd=tmp_path)
    clone.git("notes", "--ref=reproml", "append", "-m", "from this job", "HEAD")
    python = str(lifecycle["project"].path / ".venv" / "bin" / "python")
    pushed = run([python, "-m", "reproml.tools", "records", "push"], cwd=clone.path)
    assert "pushed the records to origin" in pushed.stdout
    assert (origin / "raced").exists(), "the hook never refused a push: no race was injected"
    head = run(["git", "rev-parse", "HEAD"], cwd=clone.path).stdout.strip()
    shown = run(["git", "notes", "--ref=reproml", "show", head], cwd=origin).stdout
    assert "from this job" in shown and "from the other job" in shown


def test_forged_malformed_and_misattached_notes_are_named_and_not_counted(lifecycle, tmp_path):
    """Records count only when well formed, about their own commit, and signed by a key in
    .allowed_signers: a hand-appended "match", an edited signed record, a stranger's signed
    record and a copied record would each raise the field rate, and none does."""
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    v1, v2 = (
        run(["git", "rev-parse", f"model@{v}^{{commit}}"], cwd=clone.path).stdout.strip()
        for v in ("v1.0.0", "v2.0.0")
    )
    v1_records = run(["git", "notes", "--ref=reproml", "show", v1], cwd=clone.path).stdout
    rebuild_line = next(line for line in v1_records.splitlines() if '"kind":"rebuild"' in line)
    signed = json.loads(rebuild_line)
    assert signed["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    forged = {key: value for key, value in signed.items() if key != "signature"}
    forged["revision"] = v2
    payload = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    stranger = new_key(tmp_path / "keys", "stranger")
    stranger_signature = run(
        ["ssh-keygen", "-Y", "sign", "-q", "-n", "reproml-record", "-f", str(stranger)],
        cwd=tmp_path,
        input=payload,
    ).stdout
    edited = {**signed, "result": "match", "timings": {**signed["timings"], "total": 0.1}}
    notes = [
        (v2, "{not json"),
        (v2, rebuild_line),  # moved from v1
        (v2, payload),  # hand-made, unsigned
        (v2, json.dumps({**forged, "signature": stranger_signature})),
        (v1, json.dumps(edited)),
        (v1, rebuild_line),  # a copy
        # Copies in other spellings: the signature covers the canonical payload, not bytes.
        (v1, json.dumps(signed)),
        (v1, " " + rebuild_line),
        (v1, json.dumps({**signed, "signature": signed["signature"].replace("\n", "\n\n")})),
    ]
    before = confidences(clone)
    for commit, line in notes:
        clone.git("notes", "--ref=reproml", "append", "-m", line, commit)
    # None of them moves a release's confidence: it reads signed, attached records only.
    assert confidences(clone) == before
    report = clone.make("report")
    assert "Traceback" not in report.stderr
    assert f"skipped {len(notes)} records (not counted)" in report.stdout
    for expected in (
        f"note on {v2[:12]}, line 1: not JSON",
        f"describes {v1[:12]}, not the commit it is attached to",
        "not signed (written by hand, or by a rebuild without a signing key)",
        "signed by a key that is not in .allowed_signers",
        "its signature does not match its content (edited after signing)",
        "(a record counts once)",
    ):
        assert expected in report.stdout, expected
    assert re.search(r"reproduction success, field:\s+1/1", report.stdout)
    assert re.search(r"records signed by:\s+releaser@example.com \(2\)", report.stdout)

    # Bytes that are not UTF-8, in a note line and in a tag's name: skipped and named, never a
    # traceback in the commands every clone runs.
    (tmp_path / "line").write_bytes(b'{"kind": "rebuild", "note": "\xff"}\n')
    clone.git("notes", "--ref=reproml", "append", "-F", str(tmp_path / "line"), v2)
    run(["git", "update-ref", b"refs/tags/model@v9.0.0\xff", v2], cwd=clone.path)
    for target in ("setup", "report", "registry", "claims", "release-list"):
        done = clone.make(target, check=False)
        assert "Traceback" not in done.stderr and done.returncode == 0, (target, done.stderr)
    assert re.search(rf"note on {v2[:12]}, line \d+: not UTF-8 text", clone.make("report").stdout)


def test_incidents_are_signed_counted_per_quarter_and_forged_ones_are_not(lifecycle, tmp_path):
    """`make incident` keeps a signed claim; the report counts incidents, and the share caused
    by unreproducible model state, in total and by quarter. A bad CAUSE is refused by name;
    an unsigned, re-spelled or edited incident is skipped and named."""
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    releaser = run(["git", "config", "user.signingkey"], cwd=lifecycle["project"].path)
    clone.git("config", "gpg.format", "ssh")
    clone.git("config", "user.signingkey", releaser.stdout.strip())

    refused = clone.make(
        "incident", "VERSION=v1.0.0", "CAUSE=Unreproducible", "NOTE=x", check=False
    )
    assert refused.returncode != 0 and "CAUSE='Unreproducible' is not a cause" in refused.stderr
    assert "Traceback" not in refused.stderr
    empty = clone.make("incident", "VERSION=v1.0.0", "CAUSE=other", "NOTE=", check=False)
    assert empty.returncode != 0 and "NOTE= is empty" in empty.stderr
    said = clone.make(
        "incident", "VERSION=v1.0.0", "CAUSE=unreproducible", "NOTE=<b>served</b> bytes differed"
    ).stdout
    assert "recorded an incident (unreproducible) about model@v1.0.0" in said
    clone.make("incident", "VERSION=v2.0.0", "CAUSE=other", "NOTE=feature store outage")

    v1 = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=clone.path).stdout.strip()
    lines = run(["git", "notes", "--ref=reproml", "show", v1], cwd=clone.path).stdout
    signed = json.loads(next(line for line in lines.splitlines() if '"incident"' in line))
    assert signed["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    unsigned = {key: value for key, value in signed.items() if key != "signature"}
    forged = [
        json.dumps({**unsigned, "note": "hand-written"}),  # no signature
        json.dumps({**signed, "cause": "other"}),  # edited after signing
        json.dumps({**unsigned, "cause": "Unreproducible", "note": "re-spelled"}),
        json.dumps({**unsigned, "reported": "last tuesday", "note": "no time"}),
    ]
    for line in forged:
        clone.git("notes", "--ref=reproml", "append", "-m", line, v1)
    report = clone.make("report")
    assert "Traceback" not in report.stderr
    text = report.stdout
    assert re.search(r"incidents, unreproducible state:\s+1/2 \(50%\)", text), text
    quarter = f"{signed['reported'][:4]}-Q{(int(signed['reported'][5:7]) - 1) // 3 + 1}"
    assert re.search(rf"^    {quarter} +2 +2/2 \(100%\) .* +2 \(1\) ", text, re.M), text
    for expected in (
        "not signed (written by hand",
        "its signature does not match its content (edited after signing)",
        "unknown cause 'Unreproducible'",
        "incident record whose 'reported' is not a UTC time",
    ):
        assert expected in text, expected
    python = str(clone.path / ".venv" / "bin" / "python")
    data = json.loads(
        run([python, "-m", "reproml.tools", "report", "--json"], cwd=clone.path).stdout
    )
    assert data["incidents"]["total"] == 2 and data["incidents"]["share_unreproducible"] == 0.5
    (row,) = [row for row in data["by_quarter"] if row["quarter"] == quarter]
    assert row["incidents"] == {"total": 2, "unreproducible": 1, "share_unreproducible": 0.5}
    assert row["releases"] == 2 and row["with_full_provenance"] == 2
    assert row["rollback"]["successes"] == 1 and row["time_to_reproduce"]["n"] == 1
    assert {i["release"]: i["cause"] for i in data["incidents"]["list"]} == {
        "model@v1.0.0": "unreproducible",
        "model@v2.0.0": "other",
    }
    # Confidence: halved by v1's unreproducible incident, a fifth off v2's for its other one;
    # the forged incidents above change nothing.
    factors = {e["release"]: e["confidence"]["incident_factor"] for e in data["per_release"]}
    assert factors == {"model@v1.0.0": 0.5, "model@v2.0.0": 0.8}
    assert "1 incidents (1 unreproducible)" in confidences(clone)["model@v1.0.0"]
    svg = (clone.path / "build/report/by-quarter.svg").read_text()
    assert "Reproducibility measures by quarter" in svg and quarter in svg


def test_compare_scores_two_versions_on_the_same_rows_each_in_its_own_environment(
    lifecycle, tmp_path
):
    """`make compare A=v1.0.0`: v1's model runs its own predict in its own environment (a
    sealed rebuild's) on the workspace's test rows; the scores are scikit-learn's on those
    rows; the interval is byte-identical on a second run; what differs is named. With no A,
    the release in prod is A; a bad name is refused naming the fix."""
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    clone.dvc("pull")
    compared = clone.make("compare", "A=v1.0.0").stdout
    assert "model@v1.0.0 (A) against workspace (B), both on B's" in compared, compared
    assert "predict with model@v1.0.0" in compared and "its model, code and environment" in compared
    # change_parameter doubled one key of the model for v2.0.0, the workspace's release.
    _, key, now, _ = model_override(clone)
    changed = rf"parameters that differ: 1\n    model\.{key}: {now / 2} -> {now}\n"
    assert re.search(changed, compared), compared
    assert "data that differ: none" in compared and "packages that differ: none" in compared
    report = clone.path / "build/compare/model-v1.0.0-vs-workspace.json"
    first = report.read_bytes()
    data = json.loads(first)
    assert (
        data["a"]["commit"]
        == run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=clone.path).stdout.strip()
    )
    assert data["bootstrap"]["resamples"] == 1000 and data["bootstrap"]["interval"] == [2.5, 97.5]
    # The library is the oracle: B's scores are the workspace's own evaluate's, on its rows.
    evaluated = json.loads((clone.path / "metrics/metrics.json").read_text())
    assert data["metrics"]["accuracy"]["b"] == pytest.approx(evaluated["accuracy"])
    assert data["metrics"]["f1_macro"]["b"] == pytest.approx(evaluated["f1_macro"])
    for entry in data["metrics"].values():
        low, high = entry["interval"]
        assert low <= entry["difference"] <= high
    clone.make("compare", "A=v1.0.0")
    assert report.read_bytes() == first, "the same comparison gave other bytes"
    assert "<svg" in (clone.path / "build/compare/model-v1.0.0-vs-workspace.svg").read_text()

    # The release in prod (v2.0.0) is A by default: the workspace is its commit.
    clone.make("compare")
    same = json.loads((clone.path / "build/compare/model-v2.0.0-vs-workspace.json").read_text())
    assert same["predictions"]["changed"] == 0
    assert all(entry["difference"] == 0 for entry in same["metrics"].values())
    refused = clone.make("compare", "A=v7.0.0", check=False)
    said = refused.stderr
    assert refused.returncode != 0 and "'v7.0.0' is not a commit, tag or released version" in said
    assert "Traceback" not in refused.stderr

    # A commit (or a branch, tag or experiment) that is no release: its code runs only when
    # named again, as for `make rebuild`; then sealed, in its own environment, and v1.0.0's
    # commit scores exactly as v1.0.0 did.
    v1 = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=clone.path).stdout.strip()
    untrusted = clone.make("compare", f"A={v1}", check=False)
    assert untrusted.returncode != 0, untrusted.stdout
    assert f"`make compare A={v1} TRUST={v1}`" in untrusted.stderr, untrusted.stderr
    assert "predict with" not in untrusted.stdout  # nothing of it ran
    by_commit = clone.make("compare", f"A={v1}", f"TRUST={v1}").stdout
    assert f"predict with {v1} ({v1[:12]}): its model, code and environment" in by_commit
    commit_report = json.loads((clone.path / f"build/compare/{v1}-vs-workspace.json").read_text())
    assert commit_report["metrics"] == data["metrics"]
    # B a release: its test rows are the ones its dvc.lock records (md5-checked, through the
    # project's own DVC configuration), its model runs in its own environment; the workspace
    # is v2.0.0's commit, so the scores are the ones above.
    clone.make("compare", "A=v1.0.0", "B=v2.0.0")
    releases = json.loads(
        (clone.path / "build/compare/model-v1.0.0-vs-model-v2.0.0.json").read_text()
    )
    assert releases["metrics"] == data["metrics"]


def add_rows(project: Project, count: int = 60) -> None:
    """New data: rows appended to the raw table (the first ones again, as a team's next
    export repeats customers), tracked by DVC."""
    (raw,) = (project.path / "data" / "raw").glob("*.csv")
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines) + "".join(lines[1 : count + 1]))
    project.dvc("add", "-q", str(raw.relative_to(project.path)))


def test_release_criteria_refuse_a_worse_model_on_new_data_and_sign_the_decision(lifecycle):
    """v2.0.0 is in prod; the data then gains rows. A model much worse than prod's on the new
    test rows (v2's model run in its own environment) is refused, naming the score, both
    values and the rule; with OVERRIDE= it goes out, the reason signed and counted; a model
    as good as prod's passes, and its statement holds the decision, which `make registry`
    shows. A criterion on a score evaluate does not give is named before anything is tagged."""
    project = lifecycle["project"]
    family, key, now, _ = model_override(project)
    conf = project.path / "conf" / "model" / f"{family}.yaml"
    criteria_file = project.path / "conf" / "release" / "default.yaml"
    try:
        add_rows(project)
        conf.write_text(conf.read_text().replace(f"{key}: {now}", f"{key}: 0.0001"))
        project.make("params")
        project.make("repro")
        commit_all(project, "More rows, and a model that lost its regularisation")
        project.dvc("push")
        refused = project.make("release", "VERSION=v3.0.0", check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "Traceback" not in said, said
        assert "release refused by the gate 'release criteria'" in said, said
        assert re.search(
            r"accuracy went from 0\.9\d+ to 0\.[0-7]\d+, interval of B - A \[-0\.\d+, -0\.\d+\]"
            r": REFUSED by not_worse_beyond_interval",
            said,
        ), said
        assert "against model@v2.0.0" in said
        assert "model@v3.0.0" not in run(["git", "tag"], cwd=project.path).stdout

        criteria_file.write_text("criteria: {auc: {threshold: 0.5}}\n")
        commit_all(project, "A criterion on a score evaluate does not give")
        assert project.status_is_clean(), "the criteria are an input of no stage"
        named = project.make("release", "VERSION=v3.0.0", "OVERRIDE=x", check=False)
        assert (
            named.returncode != 0 and "criteria.auc: evaluate gives no such score" in named.stderr
        )
        project.git("reset", "-q", "--hard", "HEAD~1")

        overridden = project.make("release", "VERSION=v3.0.0", "OVERRIDE=hotfix, ticket 12")
        assert "gate release criteria: OVERRIDDEN" in overridden.stdout
        decision = release_decision(project, "model@v3.0.0")
        assert decision["override"] == "hotfix, ticket 12" and not decision["passed"]
        assert decision["baseline"]["release"] == "model@v2.0.0"

        conf.write_text(conf.read_text().replace(f"{key}: 0.0001", f"{key}: {now}"))
        project.make("params")
        project.make("repro")
        commit_all(project, "The regularisation back, on the new rows")
        project.dvc("push")
        passed = project.make("release", "VERSION=v4.0.0")
        assert "gate release criteria: passed" in passed.stdout, passed.stdout
        decision = release_decision(project, "model@v4.0.0")
        assert decision["passed"] and decision["override"] is None
        assert decision["baseline"]["release"] == "model@v2.0.0" and decision["rows"] > 0
        (primary,) = [r for r in decision["rules"] if r["rule"] == "not_worse_beyond_interval"]
        assert primary["score"] == "accuracy" and primary["passed"]
        accuracy = decision["metrics"]["accuracy"]
        assert accuracy["interval"][0] <= accuracy["difference"] <= accuracy["interval"][1]
        assert project.make("provenance", "REV=v4.0.0").returncode == 0
        listing = project.make("registry").stdout
        assert re.search(r"gate: passed vs model@v2\.0\.0", listing), listing
        assert re.search(r"gate: OVERRIDDEN vs model@v2\.0\.0 \(hotfix, ticket 12\)", listing)
        report = project.make("report").stdout
        assert re.search(r"release gate overridden:\s+1 of 4 verified releases", report), report
    finally:
        back_to_v2(project, "model@v3.0.0", "model@v4.0.0")


def release_decision(project: Project, tag: str) -> dict:
    """The release decision the tag's signed statement holds."""
    body = tag_message(project, tag).split("-----BEGIN IN-TOTO STATEMENT-----\n", 1)[1]
    statement = json.loads(body.split("-----END IN-TOTO STATEMENT-----", 1)[0])
    return statement["predicate"]["buildDefinition"]["externalParameters"]["release_decision"]


def test_check_releases_names_a_file_missing_from_a_directory_output(lifecycle, tmp_path):
    """A directory output is a manifest plus one object per file: the remote holding the
    manifest is not enough, every file of it must be there."""
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup", "pull")
    # As CI does: the releaser's private key arrives in a secret.
    bad = clone.make("signing-key", env={"REPROML_SIGNING_KEY": "not a key"}, check=False)
    assert bad.returncode != 0 and "is not an unencrypted OpenSSH private key" in bad.stderr
    secret = (lifecycle["root"] / "keys" / "releaser").read_text()
    assert "now signs with" in clone.make("signing-key", env={"REPROML_SIGNING_KEY": secret}).stdout
    images = clone.path / "data" / "raw" / "images"
    images.mkdir()
    contents = {name: f"image {name} of {tmp_path}\n" for name in ("a", "b", "c")}
    for name, text in contents.items():
        (images / f"{name}.txt").write_text(text)
    clone.dvc("add", "data/raw/images")
    commit_all(clone, "Add a directory of images")
    clone.dvc("push")
    clone.make("release", "VERSION=v3.0.0")
    assert "model@v3.0.0: complete" in clone.make("check-releases").stdout

    remote = Path(clone.dvc("remote", "list").stdout.split()[1])
    md5 = hashlib.md5(contents["b"].encode()).hexdigest()
    (remote / "files" / "md5" / md5[:2] / md5[2:]).unlink()
    checked = clone.make("check-releases", check=False)
    assert checked.returncode != 0
    assert re.search(
        r"model@v3\.0\.0: MISSING data/raw/images/b\.txt \(in data/raw/images, md5 \w+\.dir\)",
        checked.stdout,
    ), checked.stdout
    assert "a.txt" not in checked.stdout and "model@v1.0.0: complete" in checked.stdout


def test_every_command_takes_a_release_as_v1_0_0_and_as_model_at_v1_0_0(lifecycle, tmp_path):
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    assert "provenance does NOT" not in clone.make("provenance", "REV=model@v1.0.0").stdout
    rolled = clone.make("rollback", "VERSION=model@v1.0.0").stdout
    assert "success, hash-verified" in rolled
    # A stage assignment is a signed claim: the releaser's key, as CI would hand it over.
    key = {"REPROML_SIGNING_KEY": (lifecycle["root"] / "keys" / "releaser").read_text()}
    clone.make("promote", "VERSION=model@v1.0.0", "STAGE=staging", env=key)
    assert registry_view(clone)["v1.0.0"] == {"staging"}
    rebuilt = clone.make("rebuild", "REV=v1.0.0").stdout
    assert "rebuild of v1.0.0" in rebuilt and ": MATCH" in rebuilt


def test_a_shallow_or_tagless_clone_fails_the_release_checks_by_name(lifecycle, tmp_path):
    """As CI's default checkout makes them: depth 1, or no tags. Checks that saw nothing
    would pass; they must name the clone's problem and the fix instead."""
    origin = f"file://{lifecycle['origin']}"
    shallow = Project(tmp_path / "shallow")
    run(["git", "clone", "-q", "--depth", "1", origin, str(shallow.path)], cwd=tmp_path)
    tagless = Project(tmp_path / "tagless")
    run(["git", "clone", "-q", "--no-tags", origin, str(tagless.path)], cwd=tmp_path)
    for clone, expected in (
        (shallow, "this clone is shallow"),
        (tagless, "origin has release tags this clone lacks: model@v1.0.0, model@v2.0.0"),
    ):
        clone.make("setup")
        for target in ("check-releases", "registry", "report"):
            refused = clone.make(target, check=False)
            assert refused.returncode != 0, (target, refused.stdout)
            assert expected in refused.stderr and "Fix:" in refused.stderr, refused.stderr
    tagless.git("fetch", "-q", "--tags")
    checked = tagless.make("check-releases").stdout
    assert "model@v1.0.0: complete" in checked and "model@v2.0.0: complete" in checked


def test_gates_refuse_naming_the_gate_and_the_fix(lifecycle):
    project = lifecycle["project"]
    scratch = project.path / "notes.txt"
    scratch.write_text("uncommitted")
    try:
        refused = project.make("release", "VERSION=v9.0.0", check=False)
        assert refused.returncode != 0
        assert "gate 'clean tree'" in refused.stderr and "Fix: commit" in refused.stderr
    finally:
        scratch.unlink()

    change_parameter(project)
    commit_all(project, "Changed conf, forgot to repro")
    try:
        refused = project.make("release", "VERSION=v9.0.0", check=False)
        assert "gate 'pipeline up to date'" in refused.stderr and "make repro" in refused.stderr

        project.make("repro")
        commit_all(project, "Repro, but forgot dvc push")
        refused = project.make("release", "VERSION=v9.0.0", check=False)
        assert "gate 'data and model in the remote'" in refused.stderr
        assert "models/model.pkl" in refused.stderr and "dvc push" in refused.stderr

        project.dvc("push")
        report = project.path / "reports" / "verify.json"
        failed = json.loads(report.read_text())
        failed["result"] = "mismatch"
        report.write_text(json.dumps(failed))
        project.dvc("commit", "--force", "verify")  # someone forcing a failed verify in
        commit_all(project, "Forced a failed verify into dvc.lock")
        refused = project.make("release", "VERSION=v9.0.0", check=False)
        assert "gate 'verify passed'" in refused.stderr
        assert "model@v9.0.0" not in run(["git", "tag"], cwd=project.path).stdout
    finally:
        project.git("reset", "-q", "--hard", "model@v2.0.0")
        restore_committed_state(project)
        # DVC's run-cache kept the forced failed verify: a later `dvc repro` with the same
        # inputs would hand it back to another test.
        shutil.rmtree(project.path / ".dvc" / "cache" / "runs", ignore_errors=True)


def registry_view(project: Project) -> dict[str, set[str]]:
    listing = project.make("registry").stdout
    found = re.findall(r"^model@(v\S+)\s+\w+\s+\S+\s+stages: (.+?)\s+provenance", listing, re.M)
    return {
        version: set() if stages == "-" else set(stages.split(", ")) for version, stages in found
    }


def gto_view(project: Project) -> dict[str, set[str]]:
    gto = str(project.path / ".venv/bin/gto")
    shown = run([gto, "show", "model", "--json"], cwd=project.path, check=False).stdout
    versions = json.loads(shown) if shown.strip().startswith("[") else []
    return {entry["version"]: {s["stage"] for s in entry["stages"]} for entry in versions}


def test_the_registry_reads_tags_exactly_as_gto_does(lifecycle, tmp_path):
    """assign, unassign (`model#stage!#N`), deregister (`model@vX!`) and deprecate: after each,
    `make registry` and `gto show` agree, and a deregistered version cannot be rolled back."""
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(lifecycle["origin"]), str(clone.path)], cwd=tmp_path)
    clone.make("setup")
    key = {"REPROML_SIGNING_KEY": (lifecycle["root"] / "keys" / "releaser").read_text()}
    steps = [
        ["assign", "model", "--version", "v1.0.0", "--stage", "staging"],
        ["deprecate", "model", "v2.0.0", "prod"],
        ["deprecate", "model", "v1.0.0"],
        ["deprecate", "model"],
    ]
    assert registry_view(clone) == gto_view(clone) == {"v1.0.0": set(), "v2.0.0": {"prod"}}
    for number, step in enumerate(steps):
        made = clone.make("gto", f"ARGS={' '.join(step)}", env=key).stdout
        assert re.search(r"made model\S+, signed", made), made
        assert registry_view(clone) == gto_view(clone), step
        if number == 2:
            assert "v1.0.0" not in registry_view(clone)
            refused = clone.make("rollback", "VERSION=v1.0.0", check=False)
            assert refused.returncode != 0 and "not a registered version" in refused.stderr
    assert registry_view(clone) == {}


HAND_MADE_MESSAGE = """
import sys
from importlib import import_module
provenance = import_module("reproml.tools.provenance")
registry = import_module("reproml.tools.registry")
repo = registry.repo_root()
commit = registry.resolve_commit(repo, "HEAD")
facts = registry._facts(repo, commit, registry.artifact(repo)[1])
statement = provenance.build_statement(
    facts, "git+file:///elsewhere", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
    artifact="model", release="model@v9.0.0",
)
sys.stdout.write(provenance.tag_message("Release model v9.0.0", statement))
"""


def test_a_hand_made_tag_with_an_honest_statement_is_not_a_release(lifecycle):
    """Built exactly as an insider would, with the package's own statement and tag format:
    every statement check passes, but the tag is not signed by an allowed key."""
    project = lifecycle["project"]
    package = project_package(project.path)
    before = set(run(["git", "tag"], cwd=project.path).stdout.split())
    try:
        # GTO allows one version per commit: the forger tags a commit of its own.
        project.git("commit", "-q", "--allow-empty", "-m", "nothing to see here")
        script = [".venv/bin/python", "-c", HAND_MADE_MESSAGE, package]
        (project.path.parent / "forged.txt").write_text(run(script, cwd=project.path).stdout)
        forge = ["git", "-c", "user.name=x", "-c", "user.email=x@example.com", "tag", "-a"]
        run(
            [*forge, "model@v9.0.0", "-F", str(project.path.parent / "forged.txt"), "HEAD"],
            cwd=project.path,
        )
        listing = project.make("registry").stdout
        assert re.search(r"^ +model@v9\.0\.0 is not signed", listing, re.M), listing
        assert "model@v9.0.0 " not in listing.split("ignored")[0]  # not listed as a release
        shown = project.make("provenance", "REV=v9.0.0", check=False).stdout
        assert "NOT a verified release" in shown
        listed = shown.split("provenance does NOT check out:", 1)[1].splitlines()
        problems = [line for line in listed if line.startswith("  - ")]
        assert len(problems) == 1 and "is not signed" in problems[0], problems
        for target in ("promote", "rollback"):
            refused = project.make(target, "VERSION=v9.0.0", check=False)
            assert refused.returncode != 0, target
            assert "model@v9.0.0 is not a verified release" in refused.stderr, target
        after = set(run(["git", "tag"], cwd=project.path).stdout.split())
        assert after == before | {"model@v9.0.0"}
    finally:
        run(["git", "tag", "-d", "model@v9.0.0"], cwd=project.path, check=False)
        project.git("reset", "-q", "--hard", "model@v2.0.0")


def test_a_release_signed_by_a_key_not_allowed_is_refused_and_leaves_no_tag(lifecycle, tmp_path):
    project = lifecycle["project"]
    releaser = run(["git", "config", "user.signingkey"], cwd=project.path).stdout.strip()
    config = project.path / "conf" / "config.yaml"
    try:
        # A seed no other test uses: DVC's run-cache must not hand back another test's
        # outputs (the gate test forces a failed verify into it).
        config.write_text(config.read_text().replace("seed: 42", "seed: 4243"))
        project.make("params")
        project.make("repro")
        commit_all(project, "A model released with the wrong key")
        project.dvc("push")
        project.git("config", "user.signingkey", str(new_key(tmp_path, "stranger")))
        refused = project.make("release", "VERSION=v9.3.0", check=False)
        assert refused.returncode != 0
        assert "not in .allowed_signers" in refused.stderr and "no tag left" in refused.stderr
        assert "model@v9.3.0" not in run(["git", "tag"], cwd=project.path).stdout
    finally:
        project.git("config", "user.signingkey", releaser)
        project.git("reset", "-q", "--hard", "model@v2.0.0")
        restore_committed_state(project)


def test_a_drifted_model_is_not_released_and_the_drift_is_named(lifecycle):
    project = lifecycle["project"]
    _, other = install_other_threadpoolctl(project)
    try:
        change_parameter(project)
        project.make("repro", env={"REPRO_ALLOW_DRIFT": "1"})
        commit_all(project, "Trained on a drifted environment")
        project.dvc("push")
        refused = project.make("release", "VERSION=v9.1.0", check=False)
        assert refused.returncode != 0
        assert "gate 'environment matches the lock'" in refused.stderr
        assert f"+ threadpoolctl=={other}" in refused.stderr
        assert "model@v9.1.0" not in run(["git", "tag"], cwd=project.path).stdout
    finally:
        project.make("setup")
        project.git("reset", "-q", "--hard", "model@v2.0.0")
        restore_committed_state(project)


def test_credentials_in_the_origin_url_never_reach_the_release_tag(lifecycle):
    project = lifecycle["project"]
    origin = run(["git", "remote", "get-url", "origin"], cwd=project.path).stdout.strip()
    secret = "https://ci:SECRET-TOKEN@git.example.invalid/team/repo.git?private_token=SECRET2"
    try:
        change_parameter(project)
        project.make("repro")
        commit_all(project, "A third model")
        project.dvc("push")
        project.git("remote", "set-url", "origin", secret)
        project.make("release", "VERSION=v3.0.0")
        message = tag_message(project, "model@v3.0.0")
        assert "SECRET" not in message and "ci:" not in message
        assert '"uri": "git+https://git.example.invalid/team/repo.git"' in message
        assert project.make("provenance", "REV=v3.0.0").returncode == 0
    finally:
        project.git("remote", "set-url", "origin", origin)
        delete_tags(project, "model@v3.0.0")
        project.git("reset", "-q", "--hard", "model@v2.0.0")
        restore_committed_state(project)


def test_old_releases_are_checked_with_their_own_files_after_a_path_moves(lifecycle):
    project = lifecycle["project"]
    paths = project.path / "conf" / "paths" / "default.yaml"
    dvc_yaml = project.path / "dvc.yaml"
    try:
        # The model moves, and its record with it (a record sits beside its model).
        paths.write_text(paths.read_text().replace("models/model.", "models/classifier."))
        dvc_yaml.write_text(
            dvc_yaml.read_text().replace("path: models/model.pkl", "path: models/classifier.pkl")
        )
        project.make("params")
        project.make("repro")
        commit_all(project, "Move the model record")
        listing = project.make("registry").stdout
        assert re.search(r"model@v1\.0\.0 .* provenance ok", listing), listing
        assert re.search(r"model@v2\.0\.0 .* provenance ok", listing), listing
        assert project.make("provenance", "REV=v1.0.0").returncode == 0
    finally:
        project.git("reset", "-q", "--hard", "model@v2.0.0")
        restore_committed_state(project)


def raw_rows_to_predict(project: Project, path: Path, count: int = 12) -> Path:
    """The first rows of the tracked raw table without the target, as a server gets them."""
    import csv

    config = yaml.safe_load((project.path / "params.yaml").read_text())
    raw = project.path / config["paths"]["raw_data"]
    with raw.open(newline="") as source, path.open("w", newline="") as out:
        rows = csv.DictReader(source)
        names = [name for name in rows.fieldnames if name != config["data"]["target"]]
        writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for _, row in zip(range(count), rows, strict=False):
            writer.writerow(row)
    return path


def test_predict_with_a_release_runs_its_own_model_in_its_own_environment(lifecycle, tmp_path):
    """`make predict VERSION=v1.0.0` after the workspace moved to another scikit-learn (and
    so another lock): the workspace can no longer load its model, the release still predicts,
    the same bytes as before the move, with its own model (v1's, not the workspace's v2)."""
    project = lifecycle["project"]
    rows = raw_rows_to_predict(project, tmp_path / "rows.csv")

    def predicted(name: str, version: str = "", check: bool = True):
        env = {"IN": str(rows), "OUT": str(tmp_path / name), "VERSION": version}
        return project.make("predict", env=env, check=check)

    said = predicted("v1.csv", "v1.0.0").stdout
    assert "predict with model@v1.0.0" in said and "its model, code and environment" in said
    predicted("workspace.csv")
    first = (tmp_path / "v1.csv").read_bytes()
    assert first.splitlines()[0] == (tmp_path / "workspace.csv").read_bytes().splitlines()[0]
    assert first != (tmp_path / "workspace.csv").read_bytes()  # v1's own model, not v2's
    pyproject = project.path / "pyproject.toml"
    try:
        pyproject.write_text(
            pyproject.read_text().replace("scikit-learn==1.9.1", "scikit-learn==1.9.0")
        )
        project.make("lock")
        project.make("setup")
        assert "scikit-learn==1.9.0" in (project.path / "runtime.lock").read_text()
        moved = predicted("moved.csv", check=False)
        assert moved.returncode != 0 and "scikit-learn" in moved.stderr, moved.stderr
        predicted("v1-again.csv", "v1.0.0")
        assert (tmp_path / "v1-again.csv").read_bytes() == first
    finally:
        restore_committed_state(project)
        project.make("setup")
    # An unknown version, and a tag nobody signed, are refused before any of their code runs.
    project.git("tag", "-a", "-m", "stray", "model@v9.9.8", "HEAD")
    try:
        for version in ("v9.9.9", "v9.9.8"):
            refused = predicted("none.csv", version, check=False)
            assert refused.returncode != 0 and version in refused.stderr, refused.stderr
            assert "predict with" not in refused.stdout and not (tmp_path / "none.csv").exists()
    finally:
        project.git("tag", "-d", "model@v9.9.8")


def test_hand_edits_to_a_statement_or_a_tag_hash_are_detected(lifecycle):
    project = lifecycle["project"]
    original = tag_message(project, "model@v1.0.0")
    edits = {
        "statement": original.replace('"seed": 42', '"seed": 7'),
        "model hash": re.sub(r"model-sha256: [0-9a-f]{64}", "model-sha256: " + "0" * 64, original),
    }
    try:
        for what, edited in edits.items():
            retag(project, "model@v1.0.0", edited)
            checked = project.make("provenance", "REV=v1.0.0", check=False)
            assert checked.returncode != 0, what
            assert "provenance does NOT check out" in checked.stdout, what
            # The tag was replaced: the claim v2's release names is gone, and is named.
            replaced = project.make("report", check=False)
            assert replaced.returncode != 0 and "CLAIMS DELETED (1)" in replaced.stdout, what
            # First the original, which v2's release names; then the edit, which the
            # refused rollback's record names.
            named = "tag model@v2.0.0" if what == "statement" else "rollback record"
            assert f"tag model@v1.0.0 is named by the signed {named}" in replaced.stdout
            project.make("claims", "ACCEPT=model@v1.0.0")  # as if on purpose: the rest shows
            report = project.make("report").stdout
            assert re.search(r"full provenance:\s+1/2", report), what
            # The broken release's records (its rebuild, its rollback) no longer count.
            assert "2 releases (1 verified, 1 broken)" in report, report
            assert re.search(r"reproduction success, field:\s+0/0", report), report
            assert re.search(r"rollback success:\s+0/0", report), report
            if what == "statement":
                field = project.make("field-rebuild", "RELEASE=v1.0.0").stdout
                assert "model@v1.0.0: NOT VERIFIED, not rebuilt: provenance BROKEN" in field
            refused = project.make("rollback", "VERSION=v1.0.0", check=False)
            assert refused.returncode != 0 and "does not check out" in refused.stderr, what
    finally:
        retag(project, "model@v1.0.0", original)
        project.make("claims", "ACCEPT=model@v1.0.0")  # the edited tags, seen and gone
    assert project.make("provenance", "REV=v1.0.0").returncode == 0
    assert project.make("registry").returncode == 0


def test_every_release_is_complete_in_the_remote_and_incomplete_is_named(lifecycle):
    project = lifecycle["project"]
    assert "model@v1.0.0: complete" in project.make("check-releases").stdout
    lock = yaml.safe_load(run(["git", "show", "model@v1.0.0:dvc.lock"], cwd=project.path).stdout)
    md5 = next(
        out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == "models/model.pkl"
    )
    remote = Path(project.dvc("remote", "list").stdout.split()[1])
    stored = remote / "files" / "md5" / md5[:2] / md5[2:]
    aside = project.path.parent / "aside"
    stored.rename(aside)
    try:
        missing = project.make("check-releases", check=False)
        assert missing.returncode != 0
        assert f"model@v1.0.0: MISSING models/model.pkl (md5 {md5})" in missing.stdout
    finally:
        aside.rename(stored)


def model_md5(project: Project) -> str:
    lock = yaml.safe_load((project.path / "dvc.lock").read_text())
    return next(
        out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == "models/model.pkl"
    )


def test_gc_keeps_what_releases_and_unpushed_commits_need(lifecycle):
    project = lifecycle["project"]
    cache = project.path / ".dvc" / "cache" / "files" / "md5"

    def cached(md5: str) -> bool:
        return (cache / md5[:2] / md5[2:]).exists()

    try:
        change_parameter(project)
        project.make("repro")
        commit_all(project, "Unpushed model A")
        model_a = model_md5(project)
        change_parameter(project)
        project.make("repro")
        commit_all(project, "Unpushed model B")
        change_parameter(project)
        project.make("repro")
        leftover = model_md5(project)  # trained, never committed: garbage once discarded
        restore_committed_state(project)
        assert cached(leftover)

        project.make("gc")
        assert not cached(leftover), "gc kept an object that nothing references"
        assert cached(model_a), "gc deleted the model of an unpushed commit"
        for tag in ("model@v1.0.0", "model@v2.0.0"):
            lock = yaml.safe_load(run(["git", "show", f"{tag}:dvc.lock"], cwd=project.path).stdout)
            for stage in lock["stages"].values():
                for out in stage.get("outs", []):
                    if out["path"] == "models/model.pkl":
                        assert cached(out["md5"]), tag
        assert project.status_is_clean()
    finally:
        project.git("reset", "-q", "--hard", "model@v2.0.0")
        restore_committed_state(project)


def test_gc_after_an_experiment_keeps_it_and_does_not_refuse(lifecycle):
    """An experiment's refs are not unpushed branches: gc protects its objects the way DVC
    does (--all-experiments) instead of refusing forever."""
    project = lifecycle["project"]
    cache = project.path / ".dvc" / "cache" / "files" / "md5"
    try:
        project.dvc("exp", "run", "-S", "seed=5")
        experiment_model = model_md5(project)
        restore_committed_state(project)
        project.make("gc")
        assert (cache / experiment_model[:2] / experiment_model[2:]).exists()
    finally:
        restore_committed_state(project)


# ---- an attacker who can push branches and tags, but holds no key --------------------------


def tag_list(project: Project) -> set[str]:
    return set(run(["git", "tag"], cwd=project.path).stdout.split())


def delete_tags(project: Project, *tags: str) -> None:
    """Delete tags a test made, and say so to the clone, which names every claim it held and
    lost (`make claims ACCEPT=`: deleted on purpose)."""
    for tag in tags:
        run(["git", "tag", "-d", tag], cwd=project.path, check=False)
    if tags:
        accepted = project.make("claims", f"ACCEPT={' '.join(tags)}", check=False)
        assert "Traceback" not in accepted.stderr, accepted.stderr


def back_to_v2(project: Project, *tags: str) -> None:
    """Put the lifecycle project back as the fixture left it: the tags a test made deleted,
    main at v2, the workspace as committed."""
    delete_tags(project, *tags)
    project.git("reset", "-q", "--hard", "model@v2.0.0")
    restore_committed_state(project)


def attack_commit(project: Project, evidence: Path) -> str:
    """A commit whose first stage command first tries to reach the signing key: git's
    ``user.signingkey``, the environment (CI's ``REPROML_SIGNING_KEY``) and HOME, all printed
    (each line after ``STOLEN=``) and written to ``evidence`` (outside the project), then the
    key itself copied."""
    dvc_yaml = project.path / "dvc.yaml"
    steal = (
        "(git config user.signingkey; env; ls -a ~; cat ~/.ssh/* ~/.gitconfig) 2>&1 "
        f"| sed 's/^/STOLEN=/' | tee {evidence}; "
        f'cp "$(git config user.signingkey)" {evidence}.key; exit 1; '
    )
    dvc_yaml.write_text(re.sub(r"cmd: ", f"cmd: {steal}", dvc_yaml.read_text(), count=1))
    commit_all(project, "Faster training (honest)")
    return run(["git", "rev-parse", "HEAD"], cwd=project.path).stdout.strip()


def test_an_unsigned_release_never_runs_where_a_key_is_and_a_rebuild_sees_no_key(
    lifecycle, tmp_path
):
    project = lifecycle["project"]
    secret = (lifecycle["root"] / "keys" / "releaser").read_text()
    key_path = run(["git", "config", "user.signingkey"], cwd=project.path).stdout.strip()
    evidence = tmp_path / "evidence"
    before = tag_list(project)
    try:
        attack_commit(project, evidence)
        message = tag_message(project, "model@v2.0.0").replace("v2.0.0", "v5.0.0")
        (tmp_path / "message.txt").write_text(message)
        project.git("tag", "-a", "model@v5.0.0", "-F", str(tmp_path / "message.txt"), "HEAD")
        key = {"REPROML_SIGNING_KEY": secret}
        field = project.make("field-rebuild", "RELEASE=v5.0.0", env=key, check=False)
        output = field.stdout + field.stderr
        assert "model@v5.0.0: NOT VERIFIED, not rebuilt: model@v5.0.0 is not signed" in output
        assert not evidence.exists() and not Path(f"{evidence}.key").exists()
        listed = project.make("--no-print-directory", "release-list", env=key)
        assert "model@v5.0.0" not in listed.stdout and "model@v5.0.0" in listed.stderr
        assert tag_list(project) == before | {"model@v5.0.0"}

        # Rebuilt on purpose (`make rebuild` of the checked-out commit, which `make repro`
        # runs too): the code runs, sealed, and the key is out of its reach (git config,
        # environment, HOME); it cannot write outside its checkout either.
        rebuilt = project.make("rebuild", "REV=model@v5.0.0", env=key, check=False)
        assert rebuilt.returncode != 0 and not evidence.exists(), rebuilt.stdout
        seen = "\n".join(re.findall(r"STOLEN=(.*)", rebuilt.stdout))
        assert "HOME=" in seen and f"HOME={Path.home()}" not in seen, rebuilt.stdout
        for secret_part in (key_path, secret.splitlines()[1], "REPROML_SIGNING_KEY"):
            assert secret_part not in seen, secret_part
        assert not Path(f"{evidence}.key").exists()
        assert tag_list(project) == before | {"model@v5.0.0"}
    finally:
        back_to_v2(project, "model@v5.0.0")


def test_ci_key_signs_records_that_count_but_a_release_it_signs_is_refused(lifecycle, tmp_path):
    """CI's key is listed as `make signing-key` says (namespaces="reproml-record")."""
    project = lifecycle["project"]
    ci = new_key(tmp_path / "keys", "ci")
    releaser = run(["git", "config", "user.signingkey"], cwd=project.path).stdout.strip()
    said = project.make("signing-key", env={"REPROML_SIGNING_KEY": ci.read_text()}).stdout
    line = re.search(r"^  (ci@reproml namespaces=\"reproml-record\" ssh-ed25519 \S+)$", said, re.M)
    assert line, said
    project.git("config", "user.signingkey", releaser)  # signing-key pointed git at CI's key
    allowed = project.path / ".allowed_signers"
    try:
        allowed.write_text(allowed.read_text() + line.group(1) + "\n")
        commit_all(project, "CI may sign records")
        project.git("commit", "-q", "--allow-empty", "-m", "released by CI's key")
        (tmp_path / "m.txt").write_text(tag_message(project, "model@v2.0.0"))
        project.git(
            "-c", f"user.signingkey={ci}", "tag", "-s", "-a", "model@v6.0.0",
            "-F", str(tmp_path / "m.txt"), "HEAD",
        )  # fmt: skip
        listing = project.make("registry").stdout
        assert re.search(
            r"model@v6\.0\.0: signed by ci@reproml, whose key \.allowed_signers does not allow "
            r"to sign releases",
            listing,
        ), listing
        refused = project.make("rollback", "VERSION=v6.0.0", check=False)
        assert refused.returncode != 0 and "is not a verified release" in refused.stderr

        key = {"REPROML_SIGNING_KEY": ci.read_text()}
        rebuilt = project.make("field-rebuild", "RELEASE=v1.0.0", env=key)
        assert re.search(r"model@v1\.0\.0 +MATCH", rebuilt.stdout), rebuilt.stdout
        report = project.make("report").stdout
        assert re.search(r"records signed by:.*ci@reproml \(1\)", report), report
        assert re.search(r"reproduction success, field:\s+2/2", report), report
    finally:
        back_to_v2(project, "model@v6.0.0")
        # main rewound past the commit that listed CI's key: its record is no claim now.
        v1 = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=project.path).stdout
        project.make("claims", f"ACCEPT={v1.strip()}", check=False)
    assert project.make("registry").returncode == 0


def test_an_openpgp_signed_tag_in_ssh_mode_is_not_a_release(lifecycle, tmp_path):
    """git would verify it with gpg, whatever gpg.format says; the project counts only SSH."""
    project = lifecycle["project"]
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(gnupg)}
    generate = ["--quick-gen-key", "M <m@example.com>", "ed25519", "sign", "never"]
    run(["gpg", "--batch", "--passphrase", "", *generate], cwd=tmp_path, env=env)
    listed = run(["gpg", "--list-keys", "--with-colons"], cwd=tmp_path, env=env).stdout
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    try:
        project.git("commit", "-q", "--allow-empty", "-m", "signed with OpenPGP")
        (tmp_path / "m.txt").write_text(tag_message(project, "model@v2.0.0"))
        run(
            [
                *("git", "-c", "gpg.format=openpgp", "-c", f"user.signingkey={fingerprint}"),
                *("tag", "-s", "-a", "model@v7.0.0", "-F", str(tmp_path / "m.txt"), "HEAD"),
            ],
            cwd=project.path,
            env=env,
        )
        listing = project.make("registry", env=env).stdout
        assert "model@v7.0.0: signed with OpenPGP, but this project counts only SSH" in listing
        refused = project.make("promote", "VERSION=v7.0.0", env=env, check=False)
        assert refused.returncode != 0 and "is not a verified release" in refused.stderr
    finally:
        back_to_v2(project, "model@v7.0.0")


def tag_object(project: Project, target: str, kind: str, name: str) -> str:
    """A tag object written by hand, as anyone can push one."""
    text = f"object {target}\ntype {kind}\ntag {name}\ntagger x <x@x> 1900000000 +0000\n\nx\n"
    written = run(
        ["git", "hash-object", "-t", "tag", "-w", "--stdin"], cwd=project.path, input=text
    )
    return written.stdout.strip()


def test_stray_tags_neither_stop_nor_shadow_the_registry_and_are_named(lifecycle, tmp_path):
    """Unsigned tags pushed by anyone: a stage, a deprecation, a second version on a released
    commit and a counter-suffixed copy of a release on another commit."""
    project = lifecycle["project"]
    v1 = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=project.path).stdout.strip()
    before = tag_list(project)
    stray = {
        "model#prod#9": v1,
        "model@deprecated": v1,
        "model@v9.9.9": v1,
        "model@v1.0.0#1": "HEAD",
    }
    try:
        project.git("commit", "-q", "--allow-empty", "-m", "another commit")
        for tag, commit in stray.items():
            project.git("tag", "-a", tag, "-m", "pushed by anyone", commit)
        # A tag of a tag: git peels it, and GTO would read the inner object's own name.
        inner = tag_object(project, v1, "commit", "model#evil#1")
        project.git("update-ref", "refs/tags/model#dev#1", tag_object(project, inner, "tag", "w"))
        # A plain tag named like a version, on another commit.
        project.git("tag", "v1.0.0", "HEAD")
        assert registry_view(project) == {"v1.0.0": set(), "v2.0.0": {"prod"}}
        listing = project.make("registry").stdout
        for tag in stray:
            assert f"  {tag} is not signed" in listing, listing
        assert "model#dev#1 points at a tag, not at a commit" in listing, listing
        timed = "REBUILD_ARGS=--no-record --timeout 1"  # which commit is all that matters here
        rebuilt = project.make("rebuild", "REV=v1.0.0", timed, check=False)
        assert f"rebuild of v1.0.0 ({v1[:12]})" in rebuilt.stdout, rebuilt.stdout
        # A CI secret that is no key and no path: named where it is used, never echoed.
        odd = project.make("registry", env={"REPROML_SIGNING_KEY": "A" * 5000})
        assert "Traceback" not in odd.stderr and "AAAA" not in odd.stdout + odd.stderr
        report = project.make("report").stdout
        assert "Reproducibility report: 2 releases (2 verified, 0 broken)" in report
        assert "ignored 5 tags" in report
        assert (
            project.make("--no-print-directory", "release-list").stdout.strip()
            == '["model@v1.0.0", "model@v2.0.0"]'
        )
        assert "success, hash-verified" in project.make("rollback", "VERSION=v1.0.0").stdout

        # A promotion still works (its tag never takes a stray tag's name), and is signed.
        promoted = project.make("promote", "VERSION=v1.0.0", "STAGE=staging").stdout
        assert registry_view(project)["v1.0.0"] == {"staging"}, promoted
        made = tag_list(project) - before - set(stray) - {"model#dev#1", "v1.0.0"}
        assert len(made) == 1, made
        signed = run(["git", "cat-file", "tag", made.pop()], cwd=project.path).stdout
        assert "-----BEGIN SSH SIGNATURE-----" in signed

        # A promotion that cannot be signed leaves no tag behind.
        key = run(["git", "config", "user.signingkey"], cwd=project.path).stdout.strip()
        project.git("config", "user.signingkey", str(tmp_path / "no-such-key"))
        try:
            tags_now = tag_list(project)
            refused = project.make("promote", "VERSION=v2.0.0", "STAGE=canary", check=False)
            assert refused.returncode != 0 and "no tag left" in refused.stderr, refused.stderr
            assert tag_list(project) == tags_now
        finally:
            project.git("config", "user.signingkey", key)
    finally:
        back_to_v2(project, *(tag_list(project) - before))


def test_a_pushed_tag_that_makes_a_version_a_folder_is_named_with_a_fix_that_works(lifecycle):
    """Anyone pushes model@v9.4.0/x to origin before the user releases v9.4.0: git can then
    hold no tag model@v9.4.0 (tags are paths). The release refuses before its gates, naming
    the tag and the fix, and leaves no tag; the registry and the release checks pass over
    it, naming it, rather than ask for a `git fetch --tags` that cannot succeed."""
    project, origin = lifecycle["project"], lifecycle["origin"]
    v1 = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=project.path).stdout.strip()
    run(["git", "tag", "model@v9.4.0/x", v1], cwd=origin)
    before = tag_list(project)
    try:
        refused = project.make("release", "VERSION=v9.4.0", check=False)
        assert refused.returncode != 0, refused.stdout
        said = refused.stderr
        assert "model@v9.4.0 cannot be created: the tag model@v9.4.0/x exists on origin" in said
        assert "`git push origin :refs/tags/model@v9.4.0/x`" in said and "gate" not in said
        assert tag_list(project) == before
        for target in ("registry", "check-releases"):
            shown = project.make(target)
            assert "origin's tag model@v9.4.0/x is not a registry tag" in shown.stderr
            assert "blocks a tag named model@v9.4.0" in shown.stderr
            assert "git fetch --tags" not in shown.stderr + shown.stdout
    finally:
        run(["git", "tag", "-d", "model@v9.4.0/x"], cwd=origin)


def test_a_rebuild_that_must_be_sealed_runs_nothing_where_it_cannot_be(lifecycle):
    """SEALED=1 (the generated field rebuild) where the sandbox cannot run (here: turned off,
    as on a machine without bubblewrap): nothing is fetched, installed or run, and the
    message says why and how to fix it. Without SEALED, the rebuild says UNSEALED first."""
    project = lifecycle["project"]
    off = {"REPRO_BWRAP": ""}
    for target, rev in (("field-rebuild", "RELEASE=v1.0.0"), ("rebuild", "REV=v1.0.0")):
        refused = project.make(target, rev, "SEALED=1", env=off, check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0, said
        assert "sealed" in said and "was required" in said and "REPRO_BWRAP is set empty" in said
        assert "[1/4]" not in said and "MATCH" not in said, said
    timed = "REBUILD_ARGS=--no-record --timeout 1"
    unsealed = project.make("--silent", "rebuild", "REV=v1.0.0", timed, env=off, check=False)
    assert unsealed.stdout.startswith("warning: UNSEALED: REPRO_BWRAP is set empty"), unsealed


def mirror_and_keeper(lifecycle, tmp_path) -> tuple[Path, Project]:
    """A copy of origin (the shared one stays as it is) and a clone of it that can sign,
    as a team member's, which has seen every claim."""
    origin = tmp_path / "origin.git"
    run(["git", "clone", "-q", "--mirror", str(lifecycle["origin"]), str(origin)], cwd=tmp_path)
    keeper = Project(tmp_path / "keeper")
    run(["git", "clone", "-q", str(origin), str(keeper.path)], cwd=tmp_path)
    keeper.git("config", "gpg.format", "ssh")
    keeper.git("config", "user.signingkey", str(lifecycle["root"] / "keys" / "releaser"))
    keeper.make("setup")
    return origin, keeper


def fresh_clone(origin: Path, path: Path) -> Project:
    clone = Project(path)
    run(["git", "clone", "-q", str(origin), str(clone.path)], cwd=path.parent)
    clone.make("setup")
    return clone


def test_records_deleted_on_origin_are_named_never_read_as_no_data(lifecycle, tmp_path):
    """Someone who can push deletes refs/notes/reproml on origin. A later signed claim (a
    stage assignment) names the newest record, so every fresh clone's report, registry and
    field rebuild name the loss instead of reading "0/0 (no data)"; the clone that held the
    records names the deletion at `make setup`, keeps them, and `make push-records` restores
    them."""
    origin, keeper = mirror_and_keeper(lifecycle, tmp_path)
    v1 = run(["git", "rev-parse", "model@v1.0.0^{commit}"], cwd=keeper.path).stdout.strip()
    keeper.make("promote", "VERSION=v1.0.0", "STAGE=staging")
    keeper.git("push", "-q", "origin", "--tags")
    staging = run(["git", "tag", "--list", "model#staging#*"], cwd=keeper.path).stdout.strip()
    assert "Reproml-Previous: record:" + v1 in tag_message(keeper, staging)

    run(["git", "update-ref", "-d", "refs/notes/reproml"], cwd=origin)  # the attack

    fresh = fresh_clone(origin, tmp_path / "fresh")
    report = fresh.make("report", check=False)
    assert report.returncode != 0, report.stdout
    assert "CLAIMS DELETED (1)" in report.stdout and "no data" not in report.stdout
    assert f"a record on commit {v1[:12]} is named by the signed tag {staging}" in report.stdout
    assert re.search(r"field:\s+0/0 \(claims deleted: see above\)", report.stdout), report.stdout
    listed = fresh.make("registry", check=False)
    assert (
        listed.returncode != 0 and f"CLAIM DELETED: a record on commit {v1[:12]}" in listed.stderr
    )
    # A deleted claim could be an incident that lowered a score: no confidence is given.
    assert "confidence n/a: claims were deleted" in listed.stdout, listed.stdout
    assert "confidence 73/100" not in listed.stdout
    field = fresh.make("field-rebuild", "RELEASE=v1.0.0", check=False)
    assert field.returncode != 0 and "nothing was rebuilt" in field.stderr, field.stderr
    assert "==" not in field.stdout

    setup = keeper.make("setup")
    assert f"ORIGIN LACKS A CLAIM: origin no longer has a record on commit {v1[:12]}" in (
        setup.stderr
    )
    assert re.search(r"field:\s+1/1", keeper.make("report").stdout)  # kept here
    keeper.make("push-records")
    fresh.make("setup")
    assert re.search(r"field:\s+1/1", fresh.make("report").stdout)


def test_a_deregistration_deleted_on_origin_never_brings_the_release_back(lifecycle, tmp_path):
    """The signed `model@v1.0.0!` (v1.0.0 deprecated: GTO's deregistration) is deleted on
    origin. A fresh clone sees it named by the later signed claim and lists no release for
    CI's matrix rather than v1.0.0 come back; the clone that held it names the deletion at
    `make setup` and, once a pruning fetch has dropped its copy, at `make registry`."""
    origin, keeper = mirror_and_keeper(lifecycle, tmp_path)
    keeper.make("gto", "ARGS=deprecate model v1.0.0")  # GTO's deregistration: model@v1.0.0!
    assert "model@v1.0.0 " not in keeper.make("registry").stdout
    keeper.make("promote", "VERSION=v2.0.0", "STAGE=staging")
    keeper.git("push", "-q", "origin", "--tags")

    run(["git", "update-ref", "-d", "refs/tags/model@v1.0.0!"], cwd=origin)  # the attack

    fresh = fresh_clone(origin, tmp_path / "fresh")
    listed = fresh.make("--no-print-directory", "release-list", check=False)
    assert listed.returncode != 0 and "model@v1.0.0" not in listed.stdout, listed.stdout
    assert "tag model@v1.0.0! is named by the signed tag model#staging#" in listed.stderr
    assert fresh.make("registry", check=False).returncode != 0

    setup = keeper.make("setup")
    # Made here and pushed, never fetched back: origin lacks what this clone holds.
    lacks = "ORIGIN LACKS A CLAIM: origin does not have tag model@v1.0.0!, which this clone"
    assert lacks in setup.stderr, setup.stderr
    assert "`git push --force origin refs/tags/model@v1.0.0!`" in setup.stderr
    keeper.git("push", "-q", "origin", "model@v1.0.0!")  # restored from the clone that saw it
    fresh.git("fetch", "-q", "--tags", "origin")
    assert fresh.make("--no-print-directory", "release-list").stdout.strip() == '["model@v2.0.0"]'

    # Deleted again, and this time a pruning fetch drops the keeper's own copy too.
    run(["git", "update-ref", "-d", "refs/tags/model@v1.0.0!"], cwd=origin)
    keeper.git("fetch", "-q", "--prune", "--prune-tags", "origin")
    registry = keeper.make("registry", check=False)
    assert registry.returncode != 0 and "CLAIM DELETED: tag model@v1.0.0!" in registry.stderr
