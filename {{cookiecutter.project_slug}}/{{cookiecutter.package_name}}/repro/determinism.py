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

import os
from dataclasses import dataclass, field
from typing import Any

# The launcher pins OMP_NUM_THREADS; libraries that take a thread count get the same number.
THREADS_VARIABLE = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class LibrarySettings:
    """One library's needs: the names of its seed and thread parameters, and fixed values."""

    seed: str | None = "random_state"
    threads: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)


LIBRARIES = {
    "sklearn": LibrarySettings(),
    "lightgbm": LibrarySettings(
        threads="n_jobs", fixed={"deterministic": True, "force_row_wise": True}
    ),
    "xgboost": LibrarySettings(threads="n_jobs"),
    "catboost": LibrarySettings(
        seed="random_seed", threads="thread_count", fixed={"allow_writing_files": False}
    ),
}
# CatBoost accepts both names for a seed and for threads; a model file may use either.
ALIASES = {"random_seed": ("random_state",), "thread_count": ("n_jobs",)}
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
    library = LIBRARIES.get(library_of(cls), LibrarySettings())
    wanted = dict(library.fixed)
    if library.seed:
        wanted[library.seed] = seed
    if library.threads:
        wanted[library.threads] = pinned_threads()
    taken = set(given)
    for name in list(given):
        taken.update(ALIASES.get(name, ()))
        taken.update(key for key, aliases in ALIASES.items() if name in aliases)
    return {key: value for key, value in wanted.items() if key in names and key not in taken}


def keyword_parameters(cls: type) -> list[str]:
    """The parameters a class takes through ``**kwargs``, from its library's own list: all of
    LightGBM's parameters and their aliases. Empty where the library publishes no list."""
    if library_of(cls) == "lightgbm":
        from lightgbm.basic import _ConfigAliases

        # LightGBM's own list (LGBM_DumpParamAliases): every parameter with its aliases.
        every = _ConfigAliases._get_all_param_aliases()
        return sorted({name for names in every.values() for name in names})
    return []


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


def canonicalize(estimator: Any) -> None:
    """Remove, in place, the per-fit values a library stores in a fitted model."""
    get_metadata = getattr(estimator, "get_metadata", None)
    if get_metadata is not None and library_of(type(estimator)) == "catboost":
        metadata = get_metadata()
        for key in CATBOOST_VOLATILE_METADATA:
            if key in metadata:
                del metadata[key]


def torch_build() -> dict | None:
    """torch's version, the CUDA it was built with and whether a GPU was there, when the
    environment has torch: another build may compute other bits. Training runs on the CPU."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "device": "cpu",
        "cuda_available": torch.cuda.is_available(),
    }
