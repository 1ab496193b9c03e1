"""The stages' pure functions: deterministic outputs, canonical model bytes, safe loading."""

import json
import pickle
import subprocess
import sys
from importlib import import_module

import numpy as np
import pytest
from conftest import PACKAGE, PROJECT_ROOT, project_module

models = project_module("models")
errors = project_module("errors")
stages = project_module("stages")


def run_stage(name, config):
    return import_module(f"{PACKAGE}.stages.{name}").run(config)


def run_pipeline(config):
    outputs = {}
    for name in stages.STAGES:
        outputs.update(run_stage(name, config))
    return outputs


@pytest.fixture(scope="module")
def two_runs(module_workspace):
    """The whole pipeline, verify included, run twice in the same scratch workspace."""
    config = project_module("config").load_params(module_workspace / "params.yaml")
    first = {label: path.read_bytes() for label, path in run_pipeline(config).items()}
    second = {label: path.read_bytes() for label, path in run_pipeline(config).items()}
    return first, second


def test_pipeline_outputs_are_byte_identical_across_runs(two_runs):
    first, second = two_runs
    assert first == second
    expected = {"train", "test", "model", "model_record", "metrics", "confusion", "verify_report"}
    assert set(first) == expected


def test_metrics_are_sorted_and_carry_no_volatile_fields(two_runs):
    text = two_runs[0]["metrics"].decode()
    metrics = json.loads(text)
    assert list(metrics) == sorted(metrics)
    assert set(metrics) == {"accuracy", "f1_macro", "precision_macro", "recall_macro", "n_test"}
    assert 0.5 < metrics["accuracy"] <= 1.0


def test_verify_report_matches_at_every_level_and_holds_no_paths(two_runs, module_workspace):
    report = json.loads(two_runs[0]["verify_report"])
    assert report["result"] == "match"
    assert [check["level"] for check in report["checks"]] == ["strict", "portable", "metrics"]
    assert all(check["result"] == "match" for check in report["checks"])
    assert str(module_workspace) not in two_runs[0]["verify_report"].decode()
    assert "/tmp" not in two_runs[0]["verify_report"].decode()


def test_split_is_stratified_disjoint_and_complete():
    prepare = import_module(f"{PACKAGE}.stages.prepare")
    target = np.repeat(np.arange(3), [50, 30, 20])
    train, test = prepare.stratified_split(target, 0.2, seed=7)
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).tolist() == list(range(100))
    assert np.bincount(target[test]).tolist() == [10, 6, 4]
    again, _ = prepare.stratified_split(target, 0.2, seed=7)
    assert again.tolist() == train.tolist()
    other, _ = prepare.stratified_split(target, 0.2, seed=8)
    assert other.tolist() != train.tolist()


def test_seed_flows_from_config(config, workspace):
    run_stage("prepare", config)
    first = run_stage("train", config)["model"].read_bytes()
    config.seed += 1
    run_stage("prepare", config)
    assert run_stage("train", config)["model"].read_bytes() != first


def test_thread_count_does_not_reach_model_bytes():
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, target = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(features, target)
    model._bin_mapper.n_threads = 1
    one = models.model_bytes(model)
    model._bin_mapper.n_threads = 8
    assert models.model_bytes(model) == one


VECTORIZER_BYTES = """
import sys
sys.path.insert(0, sys.argv[1])
from importlib import import_module
from sklearn.feature_extraction.text import CountVectorizer
models = import_module(sys.argv[2] + ".models")
vectorizer = CountVectorizer(stop_words="english").fit(["the cat sat", "a dog ran far"])
vectorizer.transform(["the cat"])
sys.stdout.write(models.model_bytes(vectorizer).hex())
"""


def test_vectorizer_bytes_do_not_depend_on_the_process():
    def dump():
        command = [sys.executable, "-c", VECTORIZER_BYTES, str(PROJECT_ROOT), PACKAGE]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    assert dump() == dump()


class Payload:
    """Unpickling this runs a command: the attack that hash-checked loading must stop."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, ([sys.executable, "-c", f"open({self.marker!r}, 'w')"],))


def test_a_tampered_model_is_refused_before_unpickling(tmp_path):
    good = tmp_path / "model.pkl"
    recorded = models.save_model({"weights": [1.0, 2.0]}, good)
    marker = tmp_path / "payload-ran"
    good.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(errors.ModelFileError, match="refusing to load"):
        models.load_model(good, expected_sha256=recorded)
    assert not marker.exists()


def test_a_model_from_another_scikit_learn_is_refused(tmp_path, monkeypatch):
    import sklearn.base
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    monkeypatch.setattr(sklearn.base, "__version__", "0.0.1")
    path = tmp_path / "old.pkl"
    recorded = models.save_model(model, path)
    monkeypatch.undo()
    with pytest.raises(errors.ModelFileError, match=r"scikit-learn 0\.0\.1"):
        models.load_model(path, expected_sha256=recorded)


def test_loading_a_missing_model_names_the_fix(tmp_path):
    with pytest.raises(errors.ModelFileError, match="dvc pull"):
        models.load_model(tmp_path / "absent.pkl", expected_sha256="0" * 64)


def test_the_record_is_what_loading_checks(config, workspace):
    run_stage("prepare", config)
    run_stage("train", config)
    record = models.read_record(config.paths.model_record)
    assert record["drift"] == []
    model_file = workspace / config.paths.model
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(errors.ModelFileError, match="refusing to load"):
        models.load_recorded_model(config.paths.model, config.paths.model_record)


def test_prediction_uses_the_verified_model_and_refuses_a_tampered_one(config, workspace):
    predict = project_module("predict")
    run_stage("prepare", config)
    run_stage("train", config)
    header, features, _ = project_module("dataio").read_table(config.paths.test)
    rows = workspace / "new.csv"
    rows.write_text(
        ",".join(header[:-1])
        + "\n"
        + "\n".join(",".join(repr(float(v)) for v in row) for row in features[:5])
        + "\n"
    )
    out = predict.predict(config, rows, workspace / "predictions.csv")
    assert len(out.read_text().splitlines()) == 6
    model_file = workspace / config.paths.model
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(errors.ModelFileError, match="refusing to load"):
        predict.predict(config, rows, workspace / "again.csv")
