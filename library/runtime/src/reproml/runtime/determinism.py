"""What each model library needs to retrain to the same bytes, set by the template.

The launcher pins the process (thread pools, hash seed, locale) before Python starts; this
module sets, per library, the estimator parameters that the pins cannot reach: the seed from
``params.yaml``, the thread count from the pinned environment, the library's deterministic
mode, and no files written beside the model. A key the model file sets itself is left alone
(verify then catches a setting that breaks determinism). It also lists the parameters a class
takes through ``**kwargs`` (LightGBM's documented ones), and removes the per-fit values some
libraries store in the model (CatBoost's random model GUID and its training timestamp).

What was measured (demo tables, 1 and 2 threads): LightGBM, XGBoost and scikit-learn retrain
to the same bytes once seeded; CatBoost differs on every fit until its GUID and timestamp are
removed, and writes ``catboost_info/`` unless told not to; torch needs its seed and, for some
operations, deterministic algorithms.
"""

import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

# The launcher pins OMP_NUM_THREADS; libraries that take a thread count get the same number.
THREADS_VARIABLE = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class LibrarySettings:
    """One library's needs: the names of its seed and thread parameters, fixed values, and
    for each of these the other names that, set in a model file, make that setting the
    file's own (aliases, and options that exclude it)."""

    seed: str | None = "random_state"
    threads: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    taken_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The library takes class labels only as the codes 0..n-1 (LibraryClassifier adapts it).
    needs_label_codes: bool = False
    # Its classifier's predict may return an (n, 1) column (LibraryClassifier flattens it).
    column_predictions: bool = False


LIBRARIES = {
    "sklearn": LibrarySettings(),
    "lightgbm": LibrarySettings(
        threads="n_jobs",
        fixed={"deterministic": True, "force_row_wise": True},
        taken_by={
            "n_jobs": ("num_threads", "num_thread", "nthread", "nthreads"),
            "random_state": ("seed", "random_seed"),
            # LightGBM refuses both; its own log suggests force_col_wise.
            "force_row_wise": ("force_col_wise",),
        },
    ),
    "xgboost": LibrarySettings(
        threads="n_jobs",
        taken_by={"n_jobs": ("nthread",), "random_state": ("seed",)},
        needs_label_codes=True,
    ),
    "catboost": LibrarySettings(
        seed="random_seed",
        threads="thread_count",
        fixed={"allow_writing_files": False},
        taken_by={"random_seed": ("random_state",), "thread_count": ("n_jobs",)},
        column_predictions=True,
    ),
}
# Stored by CatBoost in every model: a random GUID and the time training finished.
CATBOOST_VOLATILE_METADATA = ("model_guid", "train_finish_time")


def library_of(cls: type) -> str:
    """The top-level package a class comes from (``lightgbm`` for lightgbm.LGBMClassifier)."""
    return cls.__module__.split(".")[0]


def pinned_threads(environ: dict[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        return max(1, int(environ.get(THREADS_VARIABLE, "1")))
    except ValueError:
        return 1


def settings(cls: type, names: list[str], given: dict[str, Any], seed: int) -> dict[str, Any]:
    """The parameters to add to ``given`` for ``cls``: only those it takes (``names``) and the
    model file did not set."""
    library = settings_for(cls)
    wanted = dict(library.fixed)
    if library.seed:
        wanted[library.seed] = seed
    if library.threads:
        wanted[library.threads] = pinned_threads()
    taken = {key for key, others in library.taken_by.items() if set(others) & set(given)}
    return {
        key: value
        for key, value in wanted.items()
        if key in names and key not in given and key not in taken
    }


def settings_for(cls: type) -> LibrarySettings:
    return LIBRARIES.get(library_of(cls), LibrarySettings())


def keyword_parameters(cls: type) -> dict[str, str]:
    """Every name a class takes through ``**kwargs``, from its library's own record, each
    mapped to the library's canonical name for it: LightGBM's parameter list with its aliases
    (``verbose`` -> ``verbosity``), and XGBoost's booster parameters. Empty for a library
    without such a record: its classes take only the names they declare."""
    library = library_of(cls)
    if library == "lightgbm":
        return _lightgbm_parameters()
    if library == "xgboost":
        return _xgboost_parameters()
    return {}


@functools.cache
def _lightgbm_parameters() -> dict[str, str]:
    try:  # LightGBM's own list (LGBM_DumpParamAliases): every parameter, every alias
        from lightgbm.basic import _ConfigAliases

        every = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # a LightGBM without it: the declared names only
        return {}
    return {
        alias: canonical for canonical, aliases in every.items() for alias in [canonical, *aliases]
    }


# XGBoost records a booster's parameters in its saved configuration, but only those of the
# booster, objective and tree method it is set to: these settings add the ones the default
# (gbtree, reg:squarederror, hist) leaves out, so that every parameter XGBoost documents is
# listed. A setting this XGBoost does not have is skipped.
XGBOOST_SETTINGS_WITH_OWN_PARAMETERS = (
    {},
    {"booster": "dart"},
    {"booster": "gblinear", "updater": "coord_descent"},
    {"tree_method": "exact"},
    {"objective": "reg:tweedie"},
    {"objective": "reg:pseudohubererror"},
    {"objective": "reg:quantileerror", "quantile_alpha": 0.5},
    {"objective": "survival:aft"},
    {"objective": "rank:ndcg"},
)


@functools.cache
def _xgboost_parameters() -> dict[str, str]:
    """The names XGBoost's own check (``validate_parameters``) takes: the global settings,
    ``eval_metric``, and every ``*_param`` section of a booster's configuration."""
    try:
        import xgboost
        from xgboost.core import XGBoostError
    except ImportError:
        return {}
    names = {"eval_metric", *xgboost.get_config()}
    with xgboost.config_context(verbosity=0):
        for setting in XGBOOST_SETTINGS_WITH_OWN_PARAMETERS:
            try:  # a booster with no feature has no configuration to save
                booster = xgboost.Booster({"num_feature": 1, **setting})
                names |= _parameter_sections(json.loads(booster.save_config()))
            except XGBoostError:
                continue
    return {name: name for name in sorted(names)}


def _parameter_sections(config: Any) -> set[str]:
    """The keys of every ``*_param`` section of XGBoost's saved configuration, however deep."""
    if isinstance(config, list):
        return set().union(*(_parameter_sections(item) for item in config))
    if not isinstance(config, dict):
        return set()
    names: set[str] = set()
    for key, value in config.items():
        if key.endswith("_param") and isinstance(value, dict):
            names |= set(value)
        else:
            names |= _parameter_sections(value)
    return names


def prepare_training(cls: type, seed: int) -> None:
    """Process-wide settings a library reads at fit time: torch's seed, its single thread and
    its deterministic algorithms (an operation without a deterministic version then fails
    instead of training differently)."""
    if library_of(cls) in ("torch", "skorch") or _uses_torch(cls):
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(pinned_threads())
        torch.use_deterministic_algorithms(True)


def _uses_torch(cls: type) -> bool:
    import sys

    module = sys.modules.get(cls.__module__)
    return getattr(module, "torch", None) is not None


class LibraryClassifier:
    """A library's classifier made to keep scikit-learn's classifier contract: it takes class
    labels of any type (XGBoost takes only the codes 0..n-1: ``encode_labels``), and its
    ``predict`` gives one label per row as a 1-D array (CatBoost's multiclass ``predict``
    returns an (n, 1) column, which compared with the labels broadcast into an n-by-n
    matrix: accuracy 0.38 and an F1 of 72). ``classes_`` are the labels. models.build wraps
    such a class in it, so a model file names the library's class as usual. A scikit-learn
    meta-estimator by protocol (``get_params`` with ``estimator__`` keys, tags of the wrapped
    class), defined without importing scikit-learn, so stages that never train import nothing
    heavy."""

    def __init__(self, estimator, encode_labels: bool = False):
        self.estimator = estimator
        self.encode_labels = encode_labels

    def __sklearn_tags__(self):
        return self.estimator.__sklearn_tags__()

    def get_params(self, deep: bool = True) -> dict:
        params = {"estimator": self.estimator, "encode_labels": self.encode_labels}
        if deep:
            params.update(
                (f"estimator__{key}", value) for key, value in self.estimator.get_params().items()
            )
        return params

    def set_params(self, **params):
        for own in ("estimator", "encode_labels"):
            if own in params:
                setattr(self, own, params.pop(own))
        inner = {key.removeprefix("estimator__"): value for key, value in params.items()}
        if inner:
            self.estimator.set_params(**inner)
        return self

    def fit(self, features, labels):
        import numpy as np

        if self.encode_labels:
            self.classes_, codes = np.unique(np.asarray(labels), return_inverse=True)
            self.estimator.fit(features, codes)
        else:
            self.estimator.fit(features, labels)
            self.classes_ = np.asarray(self.estimator.classes_)
        return self

    def predict(self, features):
        import numpy as np

        predicted = np.asarray(self.estimator.predict(features))
        if predicted.ndim == 2 and predicted.shape[1] == 1:
            predicted = predicted[:, 0]
        if self.encode_labels:
            return self.classes_[predicted.astype(int)]
        return predicted

    def predict_proba(self, features):
        return self.estimator.predict_proba(features)


def adapted(estimator: Any) -> Any:
    """``estimator``, wrapped when its library's classifier needs it (see LibraryClassifier)."""
    from sklearn.base import is_classifier

    library = settings_for(type(estimator))
    if (library.needs_label_codes or library.column_predictions) and is_classifier(estimator):
        return LibraryClassifier(estimator, encode_labels=library.needs_label_codes)
    return estimator


def library_problem(estimator: Any) -> tuple[str | None, str] | None:
    """The library's own check of an estimator's parameters, where it has one that needs no
    data (CatBoost's): (the key it names, its message), or None when they pass."""
    if library_of(type(estimator)) != "catboost":
        return None
    try:
        from catboost.core import _check_train_params
    except ImportError:  # a CatBoost without it: its errors come at fit time
        return None
    try:
        _check_train_params(dict(estimator.get_params()))
    except Exception as error:  # CatBoostError, raised from its C++ option parser
        found = re.search(r'parameter "(\w+)"', str(error))
        return (found.group(1) if found else None, str(error).rsplit(": ", 1)[-1])
    return None


def canonicalize(estimator: Any) -> None:
    """Remove, in place, the per-fit values a library stores in a fitted model."""
    get_metadata = getattr(estimator, "get_metadata", None)
    if get_metadata is not None and library_of(type(estimator)) == "catboost":
        metadata = get_metadata()
        for key in CATBOOST_VOLATILE_METADATA:
            if key in metadata:
                del metadata[key]


def torch_build() -> dict | None:
    """torch's version and the CUDA it was built with, when the environment has torch: another
    build may compute other bits. Training runs on the CPU (networks.py)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "device": "cpu",
    }
