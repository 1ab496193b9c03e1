"""The model file (reproml.runtime.model_file) and atomic writes, as units: a model's bytes
are canonical whatever the process did before, and loading checks the recorded hash before
anything is unpickled."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from support import machinery

models = machinery("runtime.model_file")
errors = machinery("runtime.errors")


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
from importlib import import_module
from sklearn.feature_extraction.text import CountVectorizer
models = import_module("reproml.runtime.model_file")
vectorizer = CountVectorizer(stop_words="english").fit(["the cat sat", "a dog ran far"])
vectorizer.transform(["the cat"])
sys.stdout.write(models.model_bytes(vectorizer).hex())
"""


def test_vectorizer_bytes_do_not_depend_on_the_process():
    def dump():
        command = [sys.executable, "-c", VECTORIZER_BYTES]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    assert dump() == dump()


# argv: a file, and what to do: "save" a fitted estimator there, or "load"
# it first and then train; either way, print the sha256 of a pipeline trained in the process.
BYTES_AFTER_AN_UNPICKLE = """
import hashlib, pickle, sys
from pathlib import Path
if sys.argv[2] == "load":  # before any estimator of the class exists in this process
    pickle.loads(Path(sys.argv[1]).read_bytes())
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from reproml.runtime.model_file import model_bytes
x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
if sys.argv[2] == "save":
    Path(sys.argv[1]).write_bytes(pickle.dumps(LogisticRegression().fit(x, y)))
model = Pipeline([("prepare", ColumnTransformer([("n", StandardScaler(), [0, 1])])),
                  ("model", LogisticRegression())]).fit(x, y)
print(hashlib.sha256(model_bytes(model)).hexdigest())
"""


def test_model_bytes_do_not_depend_on_an_estimator_unpickled_before(tmp_path):
    """scikit-learn's ``__setstate__`` keeps the pickle stream's attribute-name strings, and a
    class's instances share one key table: once a model was loaded first in a process
    (predict, evaluate), a model trained there later pickled to other bytes, until the model
    file interned the names."""

    def digest(action: str) -> str:
        script = [BYTES_AFTER_AN_UNPICKLE, str(tmp_path / "lr.pkl"), action]
        command = [sys.executable, "-c", *script]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    assert digest("save") == digest("load")


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


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    io = machinery("runtime.io")
    taken = tmp_path / "taken"
    (taken / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        io.atomic_write_text(taken, "text")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]
