"""Sweeps' failure reasons and the comparison table, as units (the queue and DVC are tested end
to end): a failed point is named with its stage's own message, never DVC's wrapper line, and
is shown with no scores, never its baseline's."""

from conftest import machinery

experiments = machinery("tools.experiments")

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
    assert experiments.reason_in(HANDLED) == (
        "in prepare: data/raw/t.csv: the split of 569 rows leaves none for training. Fix: "
        "change split.test_size."
    )


def test_an_unhandled_error_is_the_last_line_of_the_stages_traceback_not_dvcs():
    """DVC's "failed to reproduce" names the stage, not the cause: it is the reason only when
    the stage said nothing (killed, say)."""
    reason = experiments.reason_in(RAISED)
    assert reason == (
        "in train: lightgbm.basic.LightGBMError: Check failed: (learning_rate) > (0.0) at "
        "config_auto.cpp, line 355 ."
    )
    killed = f"Running stage 'train':\n> python -m p stage train\n{DVC_WRAPPER}\n"
    assert experiments.reason_in(killed) == DVC_WRAPPER
    assert experiments.reason_in("\n  \n") == ""


def test_an_unreproducible_run_names_the_outputs_verify_found_different():
    reason = experiments.reason_in(UNREPRODUCIBLE)
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
        experiments._row(revision("b" * 40, 1, 0.9789), "main", "baseline"),
        experiments._row(revision("c" * 40, 2, 0.9735), "s-1", "success"),
        experiments._row(revision("d" * 40, 3, 0.9789), "s-2", "failed"),
        experiments._row(revision("e" * 40, 4, 0.9789), "s-3", "running"),
    ]
    assert rows[2].metrics == {} and rows[3].metrics == {}
    monkeypatch.setattr(experiments, "collect", lambda root: rows)
    monkeypatch.setattr(experiments, "verify_reports", lambda root, rev: {})
    monkeypatch.setattr(experiments, "failure_reason", lambda name, root: "in train: Boom")
    table = experiments.compare(tmp_path).splitlines()
    assert table[0].split() == ["experiment", "verified", "seed", "accuracy"]
    cells = {line.split()[0]: line.split() for line in table[1:5]}
    assert cells["s-1"][-1] == "0.9735"
    assert cells["s-2"] == ["s-2", "FAILED", "3"], table
    assert cells["s-3"] == ["s-3", "running", "4"], table
    assert table[5:] == ["s-2 FAILED: in train: Boom"]


def test_a_ci_point_that_pushed_nothing_is_a_failed_row_with_its_reason(monkeypatch, tmp_path):
    baseline = experiments._row(revision("b" * 40, 1, 0.9789), "main", "baseline")
    monkeypatch.setattr(experiments, "collect", lambda root: [baseline])
    monkeypatch.setattr(experiments, "verify_reports", lambda root, rev: {})
    unpushed = experiments.Row("s-1", "failed", "", {"seed": 2}, {}, reason="its job failed")
    table = experiments.compare(tmp_path, only=[], failed=[unpushed]).splitlines()
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
    experiments.refuse_paths_outside(fine, fine, "the point", project)
    for key, value, where in (
        ("raw_data", "/home/you/.ssh/id_ed25519", "the data/ folder"),
        ("raw_data", "data/../../.git/config", "the data/ folder"),
        ("train", "models/train.parquet", "the data/ folder"),
        ("model", "../elsewhere.pkl", "the project"),
    ):
        with pytest.raises(errors.ConfigError, match=f"paths.{key}: .* is outside {where}"):
            experiments.refuse_paths_outside({**fine, key: value}, fine, "the point", project)
