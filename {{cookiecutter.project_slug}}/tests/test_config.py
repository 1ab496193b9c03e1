"""params.yaml: composed from conf/, checked against the schema, guarded against staleness."""

import dataclasses

import pytest
import yaml
from conftest import PROJECT_ROOT, project_module

config_module = project_module("config")
params = project_module("params")
errors = project_module("errors")


def composed() -> dict:
    return yaml.safe_load(params.compose(PROJECT_ROOT / "conf"))


def numeric_field(family: str) -> str:
    schema = config_module.MODEL_SCHEMAS[family]
    return next(f.name for f in dataclasses.fields(schema) if f.type in (int, float))


def test_committed_params_are_the_composition_of_conf():
    committed = (PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8")
    assert committed == params.compose(PROJECT_ROOT / "conf")
    params.check(PROJECT_ROOT / "conf", PROJECT_ROOT / "params.yaml", environ={})


def test_every_model_family_composes_and_validates():
    for family in config_module.MODEL_SCHEMAS:
        raw = yaml.safe_load(params.compose(PROJECT_ROOT / "conf", [f"model={family}"]))
        assert config_module.validate(raw).model.family == family


def test_wrong_type_names_the_key():
    raw = composed()
    key = numeric_field(raw["model"]["family"])
    raw["model"][key] = "abc"
    with pytest.raises(errors.ConfigError, match=rf"model\.{key}\b"):
        config_module.validate(raw)


def test_typo_in_a_key_names_the_key():
    raw = composed()
    raw["model"]["typo_key"] = 2
    with pytest.raises(errors.ConfigError, match=r"model\.typo_key"):
        config_module.validate(raw)
    raw = composed()
    raw["split"]["test_sise"] = 0.5
    with pytest.raises(errors.ConfigError, match=r"split\.test_sise"):
        config_module.validate(raw)


def test_unknown_family_and_out_of_range_split_are_refused():
    raw = composed()
    raw["model"]["family"] = "svm"
    with pytest.raises(errors.ConfigError, match=r"model\.family: 'svm'"):
        config_module.validate(raw)
    raw = composed()
    raw["split"]["test_size"] = 1.5
    with pytest.raises(errors.ConfigError, match=r"split\.test_size"):
        config_module.validate(raw)


def test_environment_interpolation_is_refused():
    raw = composed()
    raw["data"]["name"] = "${oc.env:HOME}"
    with pytest.raises(errors.ConfigError, match=r"data\.name: unresolved interpolation"):
        config_module.validate(raw)


def test_conf_edit_makes_params_stale_with_the_fix_named(workspace):
    family = composed()["model"]["family"]
    key = numeric_field(family)
    conf_file = workspace / "conf" / "model" / f"{family}.yaml"
    values = yaml.safe_load(conf_file.read_text())
    values[key] = values[key] * 2 + 1
    conf_file.write_text(yaml.safe_dump(values))
    with pytest.raises(errors.StaleParamsError) as raised:
        params.check(workspace / "conf", workspace / "params.yaml", environ={})
    message = str(raised.value)
    assert f"model.{key}" in message
    assert "make params" in message
    params.write(workspace / "conf", workspace / "params.yaml")
    params.check(workspace / "conf", workspace / "params.yaml", environ={})


def test_experiment_overrides_pass_but_the_schema_still_applies(workspace):
    raw = composed()
    key = numeric_field(raw["model"]["family"])
    raw["model"][key] = raw["model"][key] + 1
    (workspace / "params.yaml").write_text(yaml.safe_dump(raw))
    experiment = {params.EXPERIMENT_VARIABLE: "exp-1"}
    params.check(workspace / "conf", workspace / "params.yaml", environ=experiment)
    with pytest.raises(errors.StaleParamsError):
        params.check(workspace / "conf", workspace / "params.yaml", environ={})
    raw["model"][key] = "abc"
    (workspace / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(errors.ConfigError):
        params.check(workspace / "conf", workspace / "params.yaml", environ=experiment)
