"""params.yaml: composed from conf/, checked against the schema, guarded against staleness;
models from conf/model/*.yaml, checked against the estimator itself
(reproml.runtime.model_config)."""

import re
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, machinery, model_files_for, project_module

config_module = project_module("config")
models = project_module("models")
params = machinery("runtime.params")
composing = machinery("tools.params")
errors = machinery("runtime.errors")
model_config = machinery("runtime.model_config")
TASK = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["data"]["task"]


MODEL_FILES = model_files_for(TASK)
OTHER_TASK_FILES = [
    path
    for path in sorted((PROJECT_ROOT / "conf/model").glob("*.yaml"))
    if TASK not in yaml.safe_load(path.read_text()).get("_by_task_", {TASK: None})
]
# Classes of this project's task for the tests that write a model by hand: a linear model and
# its strength parameter, a meta-estimator, and a class with a parameter that takes a dict.
BY_HAND = {
    "classification": {
        "linear": "sklearn.linear_model.LogisticRegression",
        "strength": "C",
        "bagging": "sklearn.ensemble.BaggingClassifier",
        "dict_owner": "sklearn.linear_model.LogisticRegression",
        "dict_key": "class_weight",
    },
    "regression": {
        "linear": "sklearn.linear_model.Ridge",
        "strength": "alpha",
        "bagging": "sklearn.ensemble.BaggingRegressor",
        "dict_owner": "sklearn.ensemble.HistGradientBoostingRegressor",
        "dict_key": "monotonic_cst",
    },
}[TASK]
# The libraries' classes of this project's task: XGBClassifier or XGBRegressor, and so on.
KIND = {"classification": "Classifier", "regression": "Regressor"}[TASK]
LIBRARY_CLASSES = {
    "xgboost": f"xgboost.XGB{KIND}",
    "lightgbm": f"lightgbm.LGBM{KIND}",
    "catboost": f"catboost.CatBoost{KIND}",
}
# A misspelt key and the parameter meant, which the refusal must name first: LightGBM's alias
# verbose (num_thread) is closer to the typo than its parameter verbosity (num_threads).
TYPOS = [
    ("sklearn", BY_HAND["linear"], BY_HAND["strength"] + "x", BY_HAND["strength"]),
    ("xgboost", LIBRARY_CLASSES["xgboost"], "max_dept", "max_depth"),
    ("lightgbm", LIBRARY_CLASSES["lightgbm"], "verbos", "verbosity"),
    ("lightgbm", LIBRARY_CLASSES["lightgbm"], "num_thread_", "num_threads"),
    ("catboost", LIBRARY_CLASSES["catboost"], "depht", "depth"),
]


def composed(overrides=()) -> dict:
    return yaml.safe_load(params.compose(PROJECT_ROOT / "conf", list(overrides)))


def built_model(model: dict):
    """The estimator ``model`` builds (unwrapped from the machinery's adapter, which some
    libraries' classifiers get)."""
    raw = composed()
    raw["model"] = model
    built = models.build(config_module.validate(raw)).named_steps["model"]
    return built.estimator if type(built).__module__.startswith("reproml.") else built


def refusal(model: dict) -> str:
    """The message with which building ``model`` is refused."""
    raw = composed()
    raw["model"] = model
    with pytest.raises(errors.ConfigError) as raised:
        models.build(config_module.validate(raw))
    return str(raised.value)


def needs(library: str) -> None:
    """Skip unless this project's lock has ``library`` (a bake locks one family's library)."""
    pytest.importorskip(library, reason=f"{library} is not in this project's lock")


def numeric_key(model: dict) -> str:
    """A hyperparameter of the model whose value is a number."""
    return next(
        key
        for key, value in model.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    )


def test_committed_params_are_the_composition_of_conf():
    committed = (PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8")
    assert committed == params.compose(PROJECT_ROOT / "conf")
    params.check(
        config_module.load_params, PROJECT_ROOT / "conf", PROJECT_ROOT / "params.yaml", environ={}
    )


@pytest.mark.parametrize("model_file", MODEL_FILES, ids=[path.stem for path in MODEL_FILES])
def test_every_model_file_composes_validates_and_builds(model_file):
    config = config_module.validate(composed([f"model={model_file.stem}"]))
    pipeline = models.build(config)
    estimator = pipeline.named_steps["model"]
    if type(estimator).__name__ == "LibraryClassifier":  # XGBoost and CatBoost, adapted
        estimator = estimator.estimator
    assert type(estimator) is model_config.estimator_class(config.model)
    if "random_state" in estimator.get_params():
        assert estimator.get_params()["random_state"] == config.seed


@pytest.mark.parametrize("model_file", OTHER_TASK_FILES, ids=[p.stem for p in OTHER_TASK_FILES])
def test_a_model_without_a_class_for_the_task_is_refused_with_the_fix(model_file):
    with pytest.raises(errors.ConfigError, match=rf"no class for the task '{TASK}'.*Fix: pick"):
        params.compose(PROJECT_ROOT / "conf", [f"model={model_file.stem}"])


def test_a_classifier_on_a_regression_table_and_back_is_refused():
    raw = composed()
    other = {"classification": "sklearn.linear_model.Ridge"}.get(
        TASK, "sklearn.linear_model.LogisticRegression"
    )
    raw["model"] = {"_target_": other}
    with pytest.raises(errors.ConfigError, match=rf"but the dataset's task is {TASK}.*Fix"):
        models.build(config_module.validate(raw))


def test_wrong_type_names_the_key():
    raw = composed()
    key = numeric_key(raw["model"])
    raw["model"][key] = "abc"
    with pytest.raises(errors.ConfigError, match=rf"model\.{key}\b"):
        models.build(config_module.validate(raw))


def test_typo_in_a_key_names_the_key_and_the_closest_real_one():
    raw = composed()
    key = numeric_key(raw["model"])
    raw["model"][key + "x"] = raw["model"].pop(key)
    with pytest.raises(errors.ConfigError, match=rf"model\.{key}x: .*did you mean {key}\b"):
        models.build(config_module.validate(raw))
    raw = composed()
    raw["split"]["test_sise"] = 0.5
    with pytest.raises(errors.ConfigError, match=r"split\.test_sise"):
        config_module.validate(raw)


@pytest.mark.parametrize(
    ("library", "target", "typo", "meant"), TYPOS, ids=[f"{row[0]}-{row[2]}" for row in TYPOS]
)
def test_a_typo_is_refused_in_a_few_lines_naming_the_canonical_parameter_first(
    library, target, typo, meant
):
    needs(library)
    message = refusal({"_target_": target, typo: 1})
    assert re.match(
        rf"params\.yaml: model\.{typo}: \w+ has no parameter '{typo}'; did you mean {meant}\b",
        message,
    ), message
    # The key, the closest names and the fix; never the whole parameter list.
    names = model_config.parameter_names(model_config.estimator_class({"_target_": target}))
    named = [name for name in names if re.search(rf"(?<![\w.]){re.escape(name)}\b", message)]
    assert len(named) <= 3, named  # up to three suggestions
    assert len(message.splitlines()) <= 5 and len(message) < 600, message
    assert "\nFix: " in message


def test_xgboost_takes_its_documented_parameters_of_every_booster_and_objective():
    needs("xgboost")
    documented = {
        "eta": 0.2,  # the booster's name for learning_rate
        "booster": "dart",
        "rate_drop": 0.1,  # dart's
        "feature_selector": "cyclic",  # gblinear's
        "tweedie_variance_power": 1.5,  # reg:tweedie's
        "lambdarank_pair_method": "topk",  # the ranking objectives'
    }
    built = built_model({"_target_": LIBRARY_CLASSES["xgboost"], **documented})
    assert {key: built.get_params()[key] for key in documented} == documented


def test_a_lightgbm_alias_is_taken_as_it_is():
    needs("lightgbm")
    aliases = {"num_leaf": 7, "sub_row": 0.9, "verbose": -1}  # num_leaves, bagging_fraction
    built = built_model({"_target_": LIBRARY_CLASSES["lightgbm"], **aliases})
    assert {key: built.get_params()[key] for key in aliases} == aliases


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_key_the_model_file_passes_through_reaches_the_estimator_alone(library):
    needs(library)
    model = {"_target_": LIBRARY_CLASSES[library], "undocumented_key": 1}
    assert "_pass_through_: [undocumented_key]" in refusal(model)
    built = built_model({**model, "_pass_through_": ["undocumented_key"]})
    assert built.get_params()["undocumented_key"] == 1
    assert "_pass_through_" not in built.get_params()
    nested = {"_target_": BY_HAND["bagging"], "n_estimators": 2, "estimator": model}
    assert "_pass_through_: [estimator.undocumented_key]" in refusal(nested)
    built = built_model({**nested, "_pass_through_": ["estimator.undocumented_key"]})
    assert built.estimator.get_params()["undocumented_key"] == 1


def test_a_class_without_kwargs_cannot_be_given_a_key_to_pass_through():
    key = BY_HAND["strength"] + "x"
    message = refusal({"_target_": BY_HAND["linear"], key: 1.0, "_pass_through_": [key]})
    assert f"model._pass_through_: {key}: " in message and "takes no **kwargs" in message
    assert f"Fix: remove {key} from _pass_through_" in message


def test_unknown_estimator_and_out_of_range_split_are_refused():
    raw = composed()
    raw["model"] = {"_target_": "sklearn.svm.NoSuchClassifier"}
    with pytest.raises(errors.ConfigError, match=r"model\._target_: cannot import"):
        models.build(config_module.validate(raw))
    raw = composed()
    raw["split"]["test_size"] = 1.5
    with pytest.raises(errors.ConfigError, match=r"split\.test_size"):
        config_module.validate(raw)


def test_every_nested_target_is_checked_before_anything_is_built(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("kept\n")
    linear, strength, key = BY_HAND["linear"], BY_HAND["strength"], BY_HAND["dict_key"]
    raw = composed()
    raw["model"] = {
        "_target_": BY_HAND["dict_owner"],
        key: {"_target_": "builtins.open", "_args_": [str(victim), "w"]},
    }
    with pytest.raises(errors.ConfigError, match=rf"model\.{key}\._target_: 'builtins"):
        models.build(config_module.validate(raw))
    assert victim.read_text() == "kept\n"
    # A target Hydra builds from a positional argument, at any depth, is checked as well.
    payload = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    for where, model in (
        ("model._args_.0", {"_target_": linear, "_args_": [payload]}),
        (
            f"model.{key}._args_.0",
            {"_target_": BY_HAND["dict_owner"], key: {"_target_": linear, "_args_": [payload]}},
        ),
    ):
        raw["model"] = model
        with pytest.raises(errors.ConfigError, match=rf"{re.escape(where)}\._target_: 'builtins"):
            model_config.check_hyperparameters(config_module.validate(raw).model)
    assert victim.read_text() == "kept\n"
    bagging = {"_target_": BY_HAND["bagging"], "n_estimators": 3}
    raw["model"] = {**bagging, "estimator": {"_target_": linear, strength + "c": 1.0}}
    with pytest.raises(
        errors.ConfigError, match=rf"model\.estimator\.{strength}c: .*did you mean {strength}\b"
    ):
        models.build(config_module.validate(raw))
    raw["model"] = {**bagging, "estimator": {"_target_": linear, strength: -1.0}}
    with pytest.raises(errors.ConfigError, match=rf"model\.estimator\.{strength}: "):
        models.build(config_module.validate(raw))
    raw["model"] = {**bagging, "estimator": {"_target_": linear, strength: 2.0}}
    built = models.build(config_module.validate(raw)).named_steps["model"]
    assert type(built.estimator).__name__ == linear.rsplit(".", 1)[1]
    assert getattr(built.estimator, strength) == 2.0


def test_a_declared_target_is_built_and_the_declaration_is_not_a_parameter():
    raw = composed()
    key = BY_HAND["dict_key"]
    raw["model"] = {
        "_target_": BY_HAND["dict_owner"],
        key: {"_target_": "collections.OrderedDict"},
    }
    with pytest.raises(
        errors.ConfigError, match=r"not a scikit-learn estimator.*_allowed_targets_"
    ):
        models.build(config_module.validate(raw))
    raw["model"]["_allowed_targets_"] = ["collections.OrderedDict"]
    built = models.build(config_module.validate(raw)).named_steps["model"]
    assert getattr(built, key) == {} and "_allowed_targets_" not in built.get_params()


def test_a_column_declared_twice_or_an_undeclared_split_column_is_refused():
    raw = composed()
    first = (raw["data"]["features"]["numeric"] or raw["data"]["features"]["categorical"])[0]
    raw["data"]["drop"] = [*raw["data"]["drop"], first]
    with pytest.raises(errors.ConfigError, match=rf"column '{first}' is already declared"):
        config_module.validate(raw)
    raw = composed()
    raw["split"] = {"kind": "group", "test_size": 0.25, "column": "no_such_column"}
    with pytest.raises(errors.ConfigError, match=r"split\.column: a group split needs"):
        config_module.validate(raw)
    raw["split"].pop("column")
    with pytest.raises(errors.ConfigError, match=r"split\.column"):
        config_module.validate(raw)


def test_environment_interpolation_is_refused():
    raw = composed()
    raw["data"]["name"] = "${oc.env:HOME}"
    with pytest.raises(errors.ConfigError, match=r"data\.name: unresolved interpolation"):
        config_module.validate(raw)


@pytest.mark.parametrize(
    "name", ["../../.git/config", "/etc/passwd", "..", ".hidden.csv", "a\\b.csv"]
)
def test_the_data_file_is_a_file_name_in_data_raw_not_a_path(name):
    """`dvc exp run -S data.file=../../.git/config` or a sweep point would read any file."""
    raw = composed()
    raw["data"]["file"] = name
    with pytest.raises(errors.ConfigError, match=r"data\.file: .* is not a file name in data/raw"):
        config_module.validate(raw)


def default_model_file(conf: Path) -> Path:
    chosen = next(
        entry["model"]
        for entry in yaml.safe_load((conf / "config.yaml").read_text())["defaults"]
        if isinstance(entry, dict) and "model" in entry
    )
    return conf / "model" / f"{chosen}.yaml"


def test_conf_edit_makes_params_stale_with_the_fix_named(workspace):
    conf_file = default_model_file(workspace / "conf")
    key = numeric_key(yaml.safe_load(conf_file.read_text()))
    values = yaml.safe_load(conf_file.read_text())
    values[key] = values[key] * 2 + 1
    conf_file.write_text(yaml.safe_dump(values))
    with pytest.raises(errors.StaleParamsError) as raised:
        params.check(
            config_module.load_params, workspace / "conf", workspace / "params.yaml", environ={}
        )
    message = str(raised.value)
    assert f"model.{key}" in message
    assert "make params" in message
    composing.write(workspace / "conf", workspace / "params.yaml")
    params.check(
        config_module.load_params, workspace / "conf", workspace / "params.yaml", environ={}
    )


def test_experiment_overrides_pass_but_the_schema_still_applies(workspace):
    raw = composed()
    key = numeric_key(raw["model"])
    raw["model"][key] = raw["model"][key] + 1
    (workspace / "params.yaml").write_text(yaml.safe_dump(raw))
    experiment = {params.EXPERIMENT_VARIABLE: "exp-1"}
    params.check(
        config_module.load_params, workspace / "conf", workspace / "params.yaml", environ=experiment
    )
    with pytest.raises(errors.StaleParamsError):
        params.check(
            config_module.load_params, workspace / "conf", workspace / "params.yaml", environ={}
        )
    raw["split"]["test_size"] = "abc"
    (workspace / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(errors.ConfigError, match=r"split\.test_size"):
        params.check(
            config_module.load_params,
            workspace / "conf",
            workspace / "params.yaml",
            environ=experiment,
        )
