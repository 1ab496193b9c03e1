"""Sweeps' failure reasons and the comparison table, as units (the queue and DVC are tested end
to end): a failed point is named with its stage's own message, never DVC's wrapper line, and
is shown with no scores, never its baseline's."""

import subprocess

import pytest
from support import GIT_TEST_ENV, git, machinery

experiment_runs = machinery("tools.experiment_runs")
experiment_table = machinery("tools.experiment_table")
sweep = machinery("tools.sweep")
ci_sweep = machinery("tools.ci_sweep")

DVC_WRAPPER = (
    "ERROR: failed to reproduce 'train': failed to run: python -m p stage train, exited with 1"
)

HANDLED = """Running stage 'prepare':
> python -m p stage prepare
error: data/raw/t.csv: the split of 569 rows leaves none for training. Fix: change split.test_size.
ERROR: failed to reproduce 'prepare': failed to run: python -m p stage prepare, exited with 1
"""

# A chained traceback: the last exception line is what the stage raised in the end.
RAISED = f"""Running stage 'train':
> python -m p stage train
[LightGBM] [Fatal] Check failed: (learning_rate) > (0.0)
Traceback (most recent call last):
  File "p/stages/train.py", line 18, in run
    model.fit(features, target)
KeyError: 'learning_rate'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "p/stages/train.py", line 18, in run
    model.fit(features, target)
    ~~~~~~~~~^^^^^^^^^^^^^^^^^^
lightgbm.basic.LightGBMError: Check failed: (learning_rate) > (0.0) at config_auto.cpp, line 355 .
{DVC_WRAPPER}
{DVC_WRAPPER}
"""

UNREPRODUCIBLE = """Running stage 'verify':
> python -m p stage verify
error: the rebuild does not match what the pipeline produced:
  models/model.pkl                   strict    MISMATCH  coef_ differs by 2e-3
  metrics/metrics.json               metrics   MISMATCH  accuracy 0.97 -> 0.96
ERROR: failed to reproduce 'verify': failed to run: python -m p stage verify, exited with 1
"""


def test_a_handled_error_is_the_stages_own_message_after_its_name():
    assert experiment_runs.reason_in(HANDLED) == (
        "in prepare: data/raw/t.csv: the split of 569 rows leaves none for training. Fix: "
        "change split.test_size."
    )


def test_an_unhandled_error_is_the_last_line_of_the_stages_traceback_not_dvcs():
    """DVC's "failed to reproduce" names the stage, not the cause: it is the reason only when
    the stage said nothing (killed, say)."""
    reason = experiment_runs.reason_in(RAISED)
    assert reason == (
        "in train: lightgbm.basic.LightGBMError: Check failed: (learning_rate) > (0.0) at "
        "config_auto.cpp, line 355 ."
    )
    killed = f"Running stage 'train':\n> python -m p stage train\n{DVC_WRAPPER}\n"
    assert experiment_runs.reason_in(killed) == DVC_WRAPPER
    assert experiment_runs.reason_in("\n  \n") == ""


def test_an_unreproducible_run_names_the_outputs_verify_found_different():
    reason = experiment_runs.reason_in(UNREPRODUCIBLE)
    assert reason.startswith("in verify: the rebuild does not match what the pipeline produced:")
    assert "models/model.pkl" in reason and "metrics/metrics.json" in reason


def revision(rev: str, seed: int, accuracy: float) -> dict:
    """What `dvc exp show --json` holds for one revision: its params and metrics files."""
    return {
        "rev": rev,
        "data": {
            "params": {"params.yaml": {"data": {"seed": seed, "paths": {"model": "m.pkl"}}}},
            "metrics": {"metrics/metrics.json": {"data": {"accuracy": accuracy}}},
        },
    }


def test_a_run_that_did_not_succeed_shows_no_scores_not_its_baselines(monkeypatch, tmp_path):
    """DVC shows a failed (or queued, or running) run's queued commit, whose metrics file is
    its baseline's: the table leaves its score cells empty and says why it failed."""
    rows = [
        experiment_table._row(revision("b" * 40, 1, 0.9789), "main", "baseline"),
        experiment_table._row(revision("c" * 40, 2, 0.9735), "s-1", "success"),
        experiment_table._row(revision("d" * 40, 3, 0.9789), "s-2", "failed"),
        experiment_table._row(revision("e" * 40, 4, 0.9789), "s-3", "running"),
    ]
    assert rows[2].metrics == {} and rows[3].metrics == {}
    monkeypatch.setattr(experiment_table, "collect", lambda root: rows)
    monkeypatch.setattr(experiment_table, "verify_reports", lambda root, rev: {})
    monkeypatch.setattr(experiment_table, "failure_reason", lambda name, root: "in train: Boom")
    table = experiment_table.compare(tmp_path).splitlines()
    assert table[0].split() == ["experiment", "verified", "seed", "accuracy"]
    cells = {line.split()[0]: line.split() for line in table[1:5]}
    assert cells["s-1"][-1] == "0.9735"
    assert cells["s-2"] == ["s-2", "FAILED", "3"], table
    assert cells["s-3"] == ["s-3", "running", "4"], table
    assert table[5:] == ["s-2 FAILED: in train: Boom"]


def test_a_ci_point_that_left_no_result_is_a_failed_row_with_its_reason(monkeypatch, tmp_path):
    baseline = experiment_table._row(revision("b" * 40, 1, 0.9789), "main", "baseline")
    monkeypatch.setattr(experiment_table, "collect", lambda root: [baseline])
    monkeypatch.setattr(experiment_table, "verify_reports", lambda root, rev: {})
    unpushed = experiment_table.Row("s-1", "failed", "", {"seed": 2}, {}, reason="its job failed")
    table = experiment_table.compare(tmp_path, only=[], failed=[unpushed]).splitlines()
    assert table[2].split() == ["s-1", "FAILED", "2"]
    assert table[3] == "s-1 FAILED: its job failed"


def test_a_sweep_points_paths_stay_in_the_project_and_its_data_in_data(tmp_path):
    """A sweep override that points a data path outside data/ (or any path outside the
    project) is refused before anything is queued."""
    import pytest

    errors = machinery("runtime.errors")
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    fine = {"raw_data": "data/raw/t.csv", "train": "data/prepared/train.parquet", "model": "m.pkl"}
    sweep.refuse_paths_outside(fine, fine, "the point", project)
    for key, value, where in (
        ("raw_data", "/home/you/.ssh/id_ed25519", "the data/ folder"),
        ("raw_data", "data/../../.git/config", "the data/ folder"),
        ("train", "models/train.parquet", "the data/ folder"),
        ("model", "../elsewhere.pkl", "the project"),
    ):
        with pytest.raises(errors.ConfigError, match=f"paths.{key}: .* is outside {where}"):
            sweep.refuse_paths_outside({**fine, key: value}, fine, "the point", project)


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A commit and, as a CI point leaves it, experiment ``p-1``'s commit on it as a bundle
    under build/sweep/ (the refs are then dropped: the collect job is another runner)."""
    for key, value in GIT_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "--initial-branch=main")
    (repo / "params.yaml").write_text("seed: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    head = git(repo, "rev-parse", "HEAD")

    def point(name: str, seed: int, on: str = "HEAD") -> None:
        (repo / "params.yaml").write_text(f"seed: {seed}\n")
        tree = git(repo, "write-tree") if not git(repo, "add", "-A") else ""
        commit = git(repo, "commit-tree", tree, "-p", git(repo, "rev-parse", on), "-m", name)
        ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
        git(repo, "update-ref", ref, commit)
        (repo / "build" / "sweep").mkdir(parents=True, exist_ok=True)
        git(repo, "bundle", "create", "-q", f"build/sweep/{name}.bundle", ref, "--not", "HEAD")
        git(repo, "update-ref", "-d", ref)
        git(repo, "checkout", "-q", "params.yaml")

    monkeypatch.setattr(
        ci_sweep, "planned_params", lambda overrides, root: {"seed": int(overrides[0][5:])}
    )
    return repo, point


def test_a_ci_points_result_comes_only_from_its_own_bundle_of_this_run(runner):
    repo, point = runner
    point("p-1", 1)
    assert (
        ci_sweep._import_result({"name": "p-1", "overrides": "seed=1"}, repo, ci_sweep.RESULTS_DIR)
        is None
    )
    assert git(repo, "for-each-ref", "--format=%(refname:lstrip=-1)", "refs/exps") == "p-1"
    missing = ci_sweep._import_result(
        {"name": "p-2", "overrides": "seed=2"}, repo, ci_sweep.RESULTS_DIR
    )
    assert missing.startswith("its job left no result in this run (build/sweep/p-2.bundle)")


def test_a_bundle_that_is_not_this_points_run_on_this_commit_is_ignored(runner):
    repo, point = runner
    point("p-2", 1)  # another point's parameters under this point's name
    (repo / "build" / "sweep" / "p-2.bundle").rename(repo / "build" / "sweep" / "p-3.bundle")
    point("p-2", 1)
    said = ci_sweep._import_result(
        {"name": "p-2", "overrides": "seed=2"}, repo, ci_sweep.RESULTS_DIR
    )
    assert said == "p-2.bundle did not run with seed=2: not this point's, ignored"
    said = ci_sweep._import_result(
        {"name": "p-3", "overrides": "seed=1"}, repo, ci_sweep.RESULTS_DIR
    )
    assert "p-3.bundle is not experiment p-3 of this commit" in said
    # A run on another commit (here: on the baseline's parent-to-be), under the right name.
    git(repo, "commit", "-q", "--allow-empty", "-m", "next")
    said = ci_sweep._import_result(
        {"name": "p-2", "overrides": "seed=1"}, repo, ci_sweep.RESULTS_DIR
    )
    assert "is not experiment p-2 of this commit" in said
    assert git(repo, "for-each-ref", "refs/exps") == ""  # nothing imported


def test_a_bundle_whose_commit_is_not_on_this_commit_is_ignored(runner):
    repo, _ = runner
    head = git(repo, "rev-parse", "HEAD")
    ref = f"refs/exps/{head[:2]}/{head[2:]}/p-1"
    orphan = git(repo, "commit-tree", git(repo, "write-tree"), "-m", "no parent")
    git(repo, "update-ref", ref, orphan)
    (repo / "build" / "sweep").mkdir(parents=True)
    git(repo, "bundle", "create", "-q", "build/sweep/p-1.bundle", ref)
    git(repo, "update-ref", "-d", ref)
    said = ci_sweep._import_result(
        {"name": "p-1", "overrides": "seed=1"}, repo, ci_sweep.RESULTS_DIR
    )
    assert said == "p-1.bundle is not a run on this commit: not from this run, ignored"
    assert git(repo, "for-each-ref", "refs/exps") == ""


def test_a_sealed_point_sees_no_credential_and_cannot_change_what_git_runs(runner, monkeypatch):
    """What `make remote-credentials` leaves in a CI point's project (.dvc/config.local and
    the key files under .git/) is empty inside the seal; git's config and hooks are
    read-only there."""
    sandbox = machinery("tools.sandbox")
    if sandbox.bubblewrap()[0] is None:
        pytest.skip(f"no sandbox here: {sandbox.bubblewrap()[1]}")
    repo, _ = runner
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config.local").write_text("secret_access_key = SECRET1\n")
    (repo / ".git" / "reproml-gcs-key.json").write_text('{"private_key": "SECRET2"}\n')
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET3")
    wrap, env = ci_sweep.sealed_point(repo)
    probe = (
        "cat .dvc/config.local .git/reproml-gcs-key.json; env; "
        "echo x >> .git/config || echo CONFIG-READ-ONLY; "
        "touch .git/hooks/post-checkout || echo HOOKS-READ-ONLY"
    )
    done = subprocess.run(
        wrap(["sh", "-c", probe]), cwd=repo, env=env, capture_output=True, text=True
    )
    said = done.stdout + done.stderr
    assert "SECRET" not in said and "CONFIG-READ-ONLY" in said and "HOOKS-READ-ONLY" in said, said
    assert "SECRET1" in (repo / ".dvc" / "config.local").read_text()  # left as it was


def test_starting_the_queue_returns_while_its_workers_run(tmp_path):
    """`dvc queue start` leaves its workers running; the sweep reads what it said and goes on
    to poll the queue, never waiting for a worker's end (one that hangs hung the sweep)."""
    import os
    import signal

    commands = machinery("tools.commands")
    pid_file = tmp_path / "worker.pid"
    script = f"sleep 300 & echo $! > {pid_file}; echo started"
    done = commands.run_leaving_daemons(["sh", "-c", script], cwd=tmp_path)
    worker = int(pid_file.read_text())
    try:
        assert done.returncode == 0 and done.stderr.strip() == "started"
        os.kill(worker, 0)  # still running: nothing waited for it
    finally:
        os.kill(worker, signal.SIGKILL)
