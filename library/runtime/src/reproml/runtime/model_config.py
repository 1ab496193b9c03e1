"""conf/model/*.yaml checked against the estimator's own classes and built through Hydra's
``_target_`` convention: the library side of the team's models.build().

Any scikit-learn-compatible classifier or regressor works, a class of this package included:
a new model is one YAML file naming the class and its hyperparameters. A family that has both
kinds names each under ``_by_task_`` and picks one with ``_target_: ${._by_task_.${data.task}}``,
so params.yaml always holds the one class that trains. They are checked against the
estimator's own parameters (names) and its own constraints (types and ranges), so a typo in
``dvc exp run -S model.x=...`` names the key instead of failing deep inside ``fit``.

A parameter may itself be an estimator (``estimator: {_target_: ..., C: 1.0}`` under a
meta-estimator such as BaggingClassifier). Every ``_target_``, nested ones included, is
imported and checked before anything is instantiated, because Hydra calls whatever a nested
``_target_`` names: ``{_target_: builtins.open, _args_: [file, w]}`` would truncate a file.
A ``_target_`` must be a scikit-learn estimator class (it has ``get_params`` and ``fit``).
Anything else, a function or another class, is refused unless the model file lists it under
the top-level key ``_allowed_targets_`` (e.g. ``_allowed_targets_: [mypkg.module.Net]``),
which is never passed to the estimator.

A key no class and no library record names is refused, naming the closest real ones, for
every library: LightGBM's and XGBoost's classes take their library's parameters through
``**kwargs``, and the library's own list (determinism.keyword_parameters) is what they are
checked against. A key such a class takes that no list names goes under the top-level key
``_pass_through_`` (e.g. ``_pass_through_: [my_key]``, ``[estimator.my_key]`` for a nested
estimator's), which is never passed to the estimator either.

What makes each library retrain to the same bytes (seeds, thread counts, deterministic modes)
is set by reproml.runtime.determinism, for the keys the model file leaves unset.
"""

import contextlib
import difflib
import importlib.util
import inspect
import logging
import re
from typing import Any

from . import determinism
from .errors import ConfigError

TARGET_KEY = "_target_"
ALLOWED_TARGETS_KEY = "_allowed_targets_"
TASK_CLASSES_KEY = "_by_task_"
PASS_THROUGH_KEY = "_pass_through_"
# The model file's own keys, never passed to the estimator.
MODEL_FILE_KEYS = (ALLOWED_TARGETS_KEY, TASK_CLASSES_KEY, PASS_THROUGH_KEY)
# Hydra's instantiate keys: read by Hydra, not passed as parameters.
HYDRA_KEYS = ("_partial_", "_args_", "_recursive_", "_convert_")
TASK_KINDS = {"classification": "classifier", "regression": "regressor"}
# Where a library documents the parameters its classes take through **kwargs; for any other
# class, its own documentation lists them (`python -m pydoc <its _target_>`).
PARAMETER_DOCUMENTATION = {
    "lightgbm": "LightGBM's parameters: https://lightgbm.readthedocs.io/en/stable/Parameters.html",
    "xgboost": "XGBoost's parameters: https://xgboost.readthedocs.io/en/stable/parameter.html",
    "catboost": "CatBoost's parameters: https://catboost.ai/docs/en/references/training-parameters/",
}
# A refused key's message offers up to CLOSEST_NAMES real names: those at least CLOSE_ENOUGH
# to it (difflib's ratio; difflib's own default cutoff), and at most AS_CLOSE_AS_THE_CLOSEST
# less close than the closest one, so a clear typo gets one answer, not three.
CLOSEST_NAMES = 3
CLOSE_ENOUGH = 0.6
AS_CLOSE_AS_THE_CLOSEST = 0.1
_CONSTRAINT_KEY = re.compile(r"The '(\w+)' parameter")


def allowed_targets(model: dict[str, Any], source: str = "params.yaml") -> set[str]:
    """The dotted names the model file declares beyond scikit-learn estimator classes."""
    allowed = model.get(ALLOWED_TARGETS_KEY, [])
    if not isinstance(allowed, list) or not all(isinstance(name, str) for name in allowed):
        raise ConfigError(
            f"{source}: model.{ALLOWED_TARGETS_KEY}: expected a list of dotted names "
            f"(module.Class), got {allowed!r}."
        )
    return set(allowed)


def _resolve(target: Any, where: str, source: str, allowed: set[str]):
    """Import what ``target`` names; refuse anything but an estimator class unless declared."""
    from hydra.utils import get_object

    if not isinstance(target, str):
        raise ConfigError(f"{source}: {where}: expected a dotted name, got {target!r}.")
    log = logging.getLogger("hydra.utils")  # it logs the error we are about to report
    was_disabled = log.disabled
    log.disabled = True
    try:
        found = get_object(target)
    except Exception as error:  # Hydra wraps import and attribute errors alike
        library = target.split(".")[0]
        if importlib.util.find_spec(library) is None:
            raise ConfigError(
                f"{source}: {where}: {target!r} needs the library {library!r}, which this "
                f"project's lock does not have. Fix: `make add-library LIBRARY={library}` "
                "(uv add, re-lock, install), or pick a model whose library is installed."
            ) from None
        raise ConfigError(
            f"{source}: {where}: cannot import {target!r} ({error}). Fix: name a class "
            "as module.Class, e.g. sklearn.ensemble.RandomForestClassifier."
        ) from None
    finally:
        log.disabled = was_disabled
    if target in allowed and callable(found):
        return found
    if not inspect.isclass(found):
        problem = f"is a {type(found).__name__}, not a class"
    elif not (hasattr(found, "get_params") and hasattr(found, "fit")):
        problem = "is not a scikit-learn estimator (it has no get_params and fit)"
    else:
        return found
    raise ConfigError(
        f"{source}: {where}: {target!r} {problem}; nothing was run. Fix: name an estimator "
        f"class, or, if you trust {target!r}, list it in the model file under "
        f"{ALLOWED_TARGETS_KEY}: [{target}]."
    )


def estimator_class(model: dict[str, Any], source: str = "params.yaml") -> type:
    """The class ``model._target_`` names, imported."""
    target = model[TARGET_KEY]
    return _resolve(target, f"model.{TARGET_KEY}", source, allowed_targets(model, source))


def parameter_names(cls: type) -> list[str]:
    """The parameters a class takes: those it names, plus those its library records for
    ``**kwargs`` (LightGBM's parameters and aliases, XGBoost's booster parameters)."""
    names = _declared_names(cls)
    return names + [name for name in determinism.keyword_parameters(cls) if name not in names]


def _declared_names(cls: type) -> list[str]:
    """The names a class gives its parameters itself: the ones its documentation shows."""
    getter = getattr(cls, "_get_param_names", None)
    if getter is not None:
        names = list(getter())
    else:
        signature = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
        names = [
            name
            for name, parameter in signature.parameters.items()
            if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
        ]
    if takes_any_keyword(cls) and inspect.isclass(cls) and hasattr(cls, "get_params"):
        # XGBoost's classes name their parameters in a base class, behind **kwargs; a class
        # that needs arguments to be built has only its signature.
        with contextlib.suppress(Exception):
            names += [name for name in cls().get_params(deep=False) if name not in names]
    return names


def takes_any_keyword(cls: type) -> bool:
    """A class with ``**kwargs`` (LightGBM's, XGBoost's): the only kind that can take a key
    listed under ``_pass_through_``; any other class refuses it when it is built."""
    init = cls.__init__ if inspect.isclass(cls) else cls
    try:
        parameters = inspect.signature(init).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)


def closest_names(key: str, cls: type) -> list[str]:
    """Up to CLOSEST_NAMES canonical names for ``key``: the names the class takes that are
    about as close to it as the closest one, each as the name the documentation gives it (a
    library alias becomes its parameter: LightGBM's ``verbose`` is ``verbosity``); one reached
    only through its alias says so (``num_iterations (alias num_tree)``)."""
    canonical = dict(determinism.keyword_parameters(cls))
    canonical.update((name, name) for name in _declared_names(cls))
    scored = sorted(
        ((_similarity(key, name), name) for name in canonical), key=lambda pair: -pair[0]
    )
    if not scored or scored[0][0] < CLOSE_ENOUGH:
        return []
    suggestions: dict[str, str] = {}
    for score, name in scored:
        if score < max(CLOSE_ENOUGH, scored[0][0] - AS_CLOSE_AS_THE_CLOSEST):
            break
        real = canonical[name]
        far = real != name and _similarity(key, real) < CLOSE_ENOUGH
        suggestions.setdefault(real, f"{real} (alias {name})" if far else real)
    return list(suggestions.values())[:CLOSEST_NAMES]


def _similarity(key: str, name: str) -> float:
    return difflib.SequenceMatcher(None, key, name).ratio()


def pass_through_keys(model: dict[str, Any], source: str = "params.yaml") -> set[str]:
    """The keys the model file lets through unchecked (``_pass_through_``), as dotted paths
    from ``model`` (``my_key``, or ``estimator.my_key`` for a nested estimator's)."""
    keys = model.get(PASS_THROUGH_KEY, [])
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ConfigError(
            f"{source}: model.{PASS_THROUGH_KEY}: expected a list of keys of the model (a "
            f"nested estimator's as estimator.key), got {keys!r}."
        )
    return {f"model.{key}" for key in keys}


def check_task(model: dict[str, Any], task: str, dataset: str, source: str = "params.yaml") -> None:
    """Refuse a model whose class does not fit the dataset's task (a classifier on a
    regression table), naming the fix; ``dataset`` names conf/data/<dataset>.yaml."""
    from sklearn.base import is_classifier, is_regressor

    cls = estimator_class(model, source)
    if not inspect.isclass(cls):  # an allowed function: calling it here could do anything
        return
    try:
        estimator = cls()
    except Exception:  # a class that needs arguments: its kind cannot be read here
        return
    kinds = {"classifier": is_classifier(estimator), "regressor": is_regressor(estimator)}
    kind = next((name for name, found in kinds.items() if found), None)
    if kind is not None and kind != TASK_KINDS[task]:
        raise ConfigError(
            f"{source}: model._target_: {cls.__name__} is a {kind}, but the dataset's task is "
            f"{task} (conf/data/{dataset}.yaml: task). Fix: pick a model file of "
            f"conf/model/ whose _by_task_ names a {task} class in conf/config.yaml "
            "(defaults: model), or change the task, then run `make params`."
        )


def check_hyperparameters(model: dict[str, Any], source: str = "params.yaml") -> type:
    """Import every ``_target_`` of the model, nested ones included, and refuse keys their
    classes do not take (naming the key and the closest real ones), before anything runs."""
    passed = pass_through_keys(model, source)
    return _check_node(model, "model", source, allowed_targets(model, source), passed)


def _check_node(node: dict[str, Any], where: str, source: str, allowed: set[str], passed: set[str]):
    cls = _resolve(node.get(TARGET_KEY), f"{where}.{TARGET_KEY}", source, allowed)
    known = set(parameter_names(cls))
    for key, value in node.items():
        if key == TARGET_KEY or (where == "model" and key in MODEL_FILE_KEYS):
            continue
        if key in HYDRA_KEYS:  # Hydra builds what _args_ holds as well: check it alike
            _check_value(value, f"{where}.{key}", source, allowed, passed)
            continue
        if key not in known:
            _check_unknown_key(cls, node[TARGET_KEY], str(key), f"{where}.{key}", source, passed)
        _check_value(value, f"{where}.{key}", source, allowed, passed)
    return cls


def _check_unknown_key(
    cls: type, target: str, key: str, path: str, source: str, passed: set[str]
) -> None:
    """Refuse a key the class does not take, in a few lines: the key, the closest real names
    and the fix; never the whole list (LightGBM's has some 300 names). A key the model file
    lets through passes if the class has ``**kwargs`` to take it."""
    name = getattr(cls, "__name__", target)
    close = closest_names(key, cls)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    entry = path.removeprefix("model.")
    if path in passed:
        if takes_any_keyword(cls):
            return
        raise ConfigError(
            f"{source}: model.{PASS_THROUGH_KEY}: {entry}: {name} takes no **kwargs, so it "
            f"would refuse {key!r} when built{hint}\n"
            f"Fix: remove {entry} from {PASS_THROUGH_KEY} and correct the key."
        )
    documentation = PARAMETER_DOCUMENTATION.get(
        determinism.library_of(cls), f"its parameters: `.venv/bin/python -m pydoc {target}`"
    )
    message = f"{source}: {path}: {name} has no parameter {key!r}{hint}\n"
    message += f"Fix: correct the key ({documentation})."
    if takes_any_keyword(cls):
        message += (
            f"\nOr, if {name} takes {key!r} through **kwargs all the same, add it to the "
            f"model file's {PASS_THROUGH_KEY}: [{entry}] (passed on unchecked)."
        )
    raise ConfigError(message)


def _check_value(value: Any, where: str, source: str, allowed: set[str], passed: set[str]) -> None:
    """Find the ``_target_`` mappings Hydra would call, however deep (lists included)."""
    if isinstance(value, dict):
        if TARGET_KEY in value:
            _check_node(value, where, source, allowed, passed)
            return
        for key, item in value.items():
            _check_value(item, f"{where}.{key}", source, allowed, passed)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}.{index}", source, allowed, passed)


def instantiate(
    model: dict[str, Any], task: str, dataset: str, seed: int, source: str = "params.yaml"
) -> Any:
    """The unfitted estimator ``model`` describes, checked first (every ``_target_``, its keys,
    the task), built through Hydra with the library's determinism settings and ``seed``, its
    values checked against the class's own constraints, and adapted to scikit-learn's
    classifier contract where a library needs it (reproml.runtime.determinism)."""
    from hydra.utils import instantiate as hydra_instantiate

    cls = check_hyperparameters(model, source)
    check_task(model, task, dataset, source)
    plain = {key: value for key, value in model.items() if key not in MODEL_FILE_KEYS}
    extra = determinism.settings(cls, parameter_names(cls), plain, seed)
    determinism.prepare_training(cls, seed)
    # "all": lists and mappings reach the estimator as plain Python, not OmegaConf nodes
    # (which would end up in the pickle).
    estimator = _plain_partials(hydra_instantiate(plain, _convert_="all", **extra))
    _check_constraints(estimator, plain, "model", source)
    return determinism.adapted(estimator)


def _plain_partials(estimator: Any) -> Any:
    """Hydra's ``_partial_`` results are a subclass of functools.partial from Hydra's own
    internals, so a model pickled with one would need that Hydra to load. Each becomes a plain
    functools.partial of the same call (its target was checked before anything was built)."""
    import functools

    if not hasattr(estimator, "get_params"):
        return estimator
    changes = {
        key: functools.partial(value.func, *value.args, **value.keywords)
        for key, value in estimator.get_params(deep=True).items()
        if isinstance(value, functools.partial) and type(value) is not functools.partial
    }
    if changes:
        estimator.set_params(**changes)
    return estimator


def _check_constraints(estimator: Any, node: dict[str, Any], where: str, source: str) -> None:
    """scikit-learn's own constraints (types, ranges) of ``estimator`` and of the estimators
    nested in it, named by their key; for a class without them (LightGBM, XGBoost), the types
    its signature declares; and the library's own check where it has one (CatBoost)."""
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None and hasattr(estimator, "_parameter_constraints"):
        from sklearn.utils._param_validation import InvalidParameterError

        try:
            validate()
        except InvalidParameterError as error:
            found = _CONSTRAINT_KEY.search(str(error))
            key = f"{where}.{found.group(1)}" if found else where
            raise ConfigError(f"{source}: {key}: {error}") from None
    else:
        _check_declared_types(type(estimator), node, where, source)
    problem = determinism.library_problem(estimator)
    if problem is not None:
        key, message = problem
        raise ConfigError(
            f"{source}: {where}.{key or '?'}: {message}. Fix: give a value its library takes."
        )
    for key, value in node.items():
        if key != TARGET_KEY and key not in HYDRA_KEYS:
            _nested_constraints(getattr(estimator, str(key), None), value, f"{where}.{key}", source)


def _check_declared_types(cls: type, node: dict[str, Any], where: str, source: str) -> None:
    """A value against the type its class declares: the annotation of ``__init__`` (XGBoost),
    else the type of a non-None default (LightGBM). Richer types are the library's to check."""
    import typing

    declared: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            for name, parameter in inspect.signature(init).parameters.items():
                if parameter.default is not parameter.empty and parameter.default is not None:
                    declared[name] = type(parameter.default)
            declared.update(typing.get_type_hints(init))
        except Exception:  # a signature or annotation Python cannot read: nothing declared
            continue
    for key, value in node.items():
        expected = declared.get(key)
        if str(key).startswith("_") or isinstance(value, dict) or expected is None:
            continue
        if not _fits(value, expected):
            raise ConfigError(
                f"{source}: {where}.{key}: {value!r} is not what {cls.__name__} takes "
                f"({_type_name(expected)}). Fix: give a value of that type."
            )


def _fits(value: Any, expected: Any) -> bool:
    import types
    import typing

    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(expected))
    simple = {
        type(None): value is None,
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }
    return simple.get(expected, True)


def _type_name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")


def _nested_constraints(built: Any, value: Any, where: str, source: str) -> None:
    if isinstance(value, dict) and TARGET_KEY in value:
        _check_constraints(built, value, where, source)
    elif isinstance(value, dict) and isinstance(built, dict):
        for key, item in value.items():
            _nested_constraints(built.get(key), item, f"{where}.{key}", source)
    elif isinstance(value, list) and isinstance(built, list | tuple) and len(value) == len(built):
        for index, (item, made) in enumerate(zip(value, built, strict=True)):
            _nested_constraints(made, item, f"{where}.{index}", source)
