"""Tier 3: sweeps. The baked README's sweep runs every point through the whole pipeline on two
DVC workers, each verified; `make experiments` compares them; `make adopt` makes one a
commit that `make rebuild` reproduces. A point that fails at fit, and one whose training is
not reproducible (real unseeded randomness), are each named with the reason from their own
log (the stage's error, not DVC's) and shown without scores, while the others run on; a
sweep over a key conf/ does not have is refused before anything is queued."""

import os
import re

import pytest
import readme
import yaml
from conftest import UV, bake
from test_end_to_end import Project, committed_first_run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sweep")]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return committed_first_run(bake(tmp_path_factory.mktemp("sweep")))


def shell(project: Project) -> dict:
    return {**os.environ, **project.env, "UV": UV}


def queue_names(project: Project) -> list[tuple[str, str]]:
    """Each queued or run experiment's name and status (not its creation time, which DVC
    writes as a time of day today and as a date after midnight)."""
    listed = project.dvc("queue", "status").stdout.splitlines()
    return [(line.split()[1], line.split()[-1]) for line in listed[1:] if len(line.split()) > 3]


def test_the_readme_sweep_runs_verified_points_compares_them_and_adopts_one(project):
    blocks = readme.blocks(project.path)["Run experiments"]
    swept = readme.run_block(project.path, blocks[0], shell(project))
    said = swept.stdout + swept.stderr
    assert swept.returncode == 0, said
    for number in range(1, 5):
        assert re.search(rf"first-{number} \(.*\): ran, and verify's isolated rebuild", said)
    # The comparison: every point, verify's result, only the parameters that vary, the scores.
    table = said[said.index("experiment  ") :]
    header = table.splitlines()[0].split()
    assert header[:4] == ["experiment", "verified", "seed", "split.test_size"], header
    assert "accuracy" in header and "model._target_" not in header
    rows = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
    assert {f"first-{n}" for n in range(1, 5)} <= set(rows)
    assert all("match (" in rows[f"first-{n}"] for n in range(1, 5)), table
    assert re.search(r"first-3\s+match \(\d+ outputs\)\s+2\s+0\.2\s", rows["first-3"])

    adopted = readme.run_block(project.path, blocks[1], shell(project))
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert project.git("branch", "--show-current").stdout.strip() == "tuned"
    experiment = yaml.safe_load((project.path / "conf/experiment/first-3.yaml").read_text())
    assert experiment == {"seed": 2, "split": {"test_size": 0.2}}, experiment
    assert "experiment: first-3" in (project.path / "conf/config.yaml").read_text()
    assert project.git("status", "--porcelain").stdout == ""
    # Adopting reran every stage and got the run's dvc.lock; the commit is like any other.
    project.make("check-params")
    assert project.status_is_clean()
    project.git("switch", "-q", "main")
    project.dvc("checkout", "--force")


def add_unseeded_noise(project_path, condition: str) -> tuple:
    """Real unseeded randomness in the train stage, only where ``condition`` (Python over
    ``config``) holds: verify must catch that configuration alone. Returns (file, original)."""
    train = next(project_path.glob("*/stages/train.py"))
    original = train.read_text()
    train.write_text(
        original.replace(
            "    model.fit(features, target)",
            f"    if {condition}:\n"
            "        import numpy as np\n\n"
            "        noise = np.random.default_rng().normal(0, 1e-3, features.shape)\n"
            "        features = features + noise\n"
            "    model.fit(features, target)",
        )
    )
    assert train.read_text() != original
    return train, original


def refuse_at_fit(train, condition: str) -> None:
    """Where ``condition`` holds, a fit that scikit-learn refuses (lbfgs takes no dual=True;
    the schema's checks pass it, as they pass any value the estimator's constraints accept):
    the train stage fails with a traceback that ends in scikit-learn's ValueError."""
    text = train.read_text()
    train.write_text(
        text.replace(
            "    model.fit(features, target)",
            f"    if {condition}:\n"
            "        model.set_params(model__dual=True)\n"
            "    model.fit(features, target)",
        )
    )
    assert train.read_text() != text


def test_an_unreproducible_point_and_a_refused_fit_are_named_and_the_others_run_verified(
    project,
):
    train, original = add_unseeded_noise(project.path, "config.seed == 4 and config.model['C'] < 1")
    refuse_at_fit(train, "config.seed == 3 and config.model['C'] >= 1")
    project.git("commit", "-qam", "Noise in one configuration, a refused fit in another")
    try:
        result = project.make(
            "sweep", check=False, env={"ARGS": "model.C=0.5,1.0 seed=3,4", "NAME": "faults"}
        )
        said = result.stdout + result.stderr
        assert result.returncode != 0, said
        assert re.search(r"faults-1 \(model.C=0.5 seed=3\): ran, and verify", said), said
        assert re.search(r"faults-4 \(model.C=1.0 seed=4\): ran, and verify", said), said
        unreproducible = re.search(r"faults-2 \(model.C=0.5 seed=4\): FAILED: (.*)", said)
        assert unreproducible and "MISMATCH" in unreproducible.group(1), said
        # The stage's own error, from the point's log: the traceback's last line, not DVC's
        # "failed to reproduce 'train'".
        refused = re.search(r"faults-3 \(model.C=1.0 seed=3\): FAILED: (.*)", said)
        assert refused, said
        assert re.fullmatch(r"in train: ValueError: .*dual=True.*", refused.group(1)), said
        assert (
            "2 of 4 points failed: faults-2 (model.C=0.5 seed=4); faults-3 (model.C=1.0 seed=3)"
        ) in result.stderr
        table = project.make("experiments").stdout
        # A failed point's row has its parameters and no scores (never its baseline's), in
        # the sweep's own summary as in `make experiments`.
        for shown in (said, table):
            rows = {
                cells[0]: cells
                for cells in (line.split() for line in shown.splitlines() if line[:1].strip())
                if cells[1:2] in (["FAILED"], ["match"])
            }
            assert rows["faults-2"] == ["faults-2", "FAILED", "0.5", "4"], shown
            assert rows["faults-3"] == ["faults-3", "FAILED", "1", "3"], shown
            assert len(rows["faults-1"]) > 4, shown  # a verified point has its scores
        assert re.search(r"^faults-2 FAILED: .*models/model\.pkl .*MISMATCH", table, re.M), table
        assert re.search(r"^faults-3 FAILED: in train: ValueError: .*dual", table, re.M), table
    finally:
        train.write_text(original)
        project.git("commit", "-qam", "No noise")


def test_a_sweep_with_a_bad_key_or_value_is_refused_before_anything_is_queued(project):
    before = queue_names(project)
    for overrides, named in (
        ("model.Cee=1,2", "model.Cee"),
        ("model.C=1.0,-1", "model.C"),
        ("seed=1,,2", "Hydra override syntax"),
        ("model.C=${seed}", "names code or an interpolation"),
        ("+model._allowed_targets_=[builtins.exec]", "names code or an interpolation"),
    ):
        result = project.make("sweep", check=False, env={"ARGS": overrides, "NAME": "bad"})
        assert result.returncode != 0, result.stdout
        assert named in result.stderr and "Fix:" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert queue_names(project) == before


def test_adopting_a_point_that_changed_the_model_family_selects_it_in_conf(project):
    project.make("sweep", env={"ARGS": "model=random_forest model.n_estimators=20", "NAME": "rf"})
    project.make("adopt", env={"EXP": "rf", "BRANCH": "forest"})
    text = (project.path / "conf/experiment/rf.yaml").read_text()
    assert "- override /model: random_forest" in text
    assert yaml.safe_load(text)["model"] == {"n_estimators": 20}
    params = yaml.safe_load((project.path / "params.yaml").read_text())
    assert params["model"]["_target_"].endswith("RandomForestClassifier")
    project.make("check-params")
    assert project.status_is_clean()
    refused = project.make("adopt", check=False, env={"EXP": "rf", "BRANCH": "forest"})
    assert refused.returncode != 0 and "exists already" in refused.stderr
    assert "Traceback" not in refused.stderr
    project.git("switch", "-q", "main")
    project.dvc("checkout", "--force")


FORGERIES = {
    # a stage that would write a marker file when it runs
    "code": "changes more than results",
    # params.yaml that allows itself a target and names it
    "params naming code": "names code or a path",
    # a model pickle committed to git under the model's path
    "a pickle in git": "changes more than results",
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_an_experiment_ref_that_brings_code_is_refused_and_nothing_runs(project, forgery):
    """Anyone who can push can push refs/exps/: adopting one that brings code, names code in
    its parameters or carries a model file in git is refused before anything runs."""
    marker = project.path.parent / "ran"
    params = project.path / "params.yaml"
    text = params.read_text().replace("seed: 42", "seed: 43")
    if forgery == "code":
        train = next(project.path.glob("*/stages/train.py"))
        train.write_text(f"open({str(marker)!r}, 'w').close()\n" + train.read_text())
    elif forgery == "params naming code":
        text = text.replace(
            "model:\n",
            "model:\n  _allowed_targets_:\n  - builtins.exec\n",
            1,
        )
    else:
        (project.path / "models" / "model.pkl").write_bytes(b"not a model")
    params.write_text(text)
    project.git("add", "-A")
    if forgery == "a pickle in git":
        project.git("add", "--force", "models/model.pkl")
    tree = project.git("write-tree").stdout.strip()
    head = project.git("rev-parse", "HEAD").stdout.strip()
    forged = project.git("commit-tree", tree, "-p", head, "-m", "forged").stdout.strip()
    project.git("reset", "-q", "--hard", "HEAD")
    project.dvc("checkout", "--force")
    name = "forged-" + forgery.replace(" ", "-")
    project.git("update-ref", f"refs/exps/{head[:2]}/{head[2:]}/{name}", forged)
    refused = project.make("adopt", check=False, env={"EXP": name, "BRANCH": name})
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and FORGERIES[forgery] in said, said
    assert "Traceback" not in said
    assert not marker.exists()
    assert project.git("branch", "--list", name).stdout == ""
    assert project.git("status", "--porcelain").stdout == ""
