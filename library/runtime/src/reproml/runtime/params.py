"""params.yaml as the composition of conf/, and the freshness check that guards it.

``make params`` writes the composition (tools/params.py); DVC's ``params`` stage runs
:func:`check` whenever conf/ or params.yaml changes, so plain ``dvc repro`` never trains on a
stale params.yaml.
The YAML is rendered exactly as DVC's Hydra integration renders it (``OmegaConf.to_yaml`` of
the resolved composition), so ``dvc exp run`` and ``make params`` write the same bytes.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, StaleParamsError
from .io import structural_differences

PARAMS_FILE = "params.yaml"
# What a model can learn; verification compares the two kinds differently.
TASKS = ("classification", "regression")
CONF_DIR = "conf"
CONFIG_NAME = "config"
CHECK_STAMP_TEXT = "params.yaml matches the composition of conf/\n"
# `dvc exp run` composes conf/ with its -S overrides itself and sets this in the stage.
EXPERIMENT_VARIABLE = "DVC_EXP_NAME"


def compose(conf_dir: str | Path = CONF_DIR, overrides: list[str] | None = None) -> str:
    """Compose conf/ with Hydra and return it rendered as params.yaml text."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationKeyError

    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        composed = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides or []))
    task = OmegaConf.select(composed, "data.task", default=None, throw_on_missing=False)
    if task not in TASKS:
        name = OmegaConf.select(composed, "data.name", default="<name>", throw_on_missing=False)
        raise ConfigError(
            f"{conf_dir}/data/{name}.yaml: task: {'missing' if task is None else repr(task)}; "
            f"it must be one of {', '.join(TASKS)}. Fix: add `task: classification` or "
            "`task: regression` there (`make data` writes it), then run `make params`."
        )
    try:
        OmegaConf.resolve(composed)
    except InterpolationKeyError as error:
        raise ConfigError(_missing_class_for_task(composed, conf_dir, error)) from None
    return OmegaConf.to_yaml(composed)


def _missing_class_for_task(composed, conf_dir: str | Path, error: Exception) -> str:
    """Say which model file has no class for the dataset's task, and the families that do."""
    task = composed.data.get("task", "<unset>") if "data" in composed else "<unset>"
    if "_by_task_" not in str(error):
        return f"{conf_dir}/: {error}. Fix: correct the interpolation, then run `make params`."
    fitting = sorted(
        path.stem
        for path in Path(conf_dir, "model").glob("*.yaml")
        if task in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("_by_task_", {})
    )
    return (
        f"{conf_dir}/model: the chosen model file names no class for the task {task!r} "
        f"(conf/data: task) under _by_task_. Fix: pick a model for {task} in "
        f"{conf_dir}/config.yaml (defaults: model: one of {', '.join(fitting) or 'none'}), "
        f"or add a `{task}:` class under _by_task_, then run `make params`."
    )


def differences(expected: Any, actual: Any) -> list[str]:
    """Dotted keys at which two parsed configs differ, each with both values."""
    lines = []
    for name, what, want, have in structural_differences(expected, actual):
        if what == "missing":
            lines.append(f"{name}: missing from params.yaml (conf/ gives {want!r})")
        elif what == "extra":
            lines.append(f"{name}: in params.yaml ({have!r}) but not in conf/")
        else:
            lines.append(f"{name}: params.yaml has {have!r}, conf/ gives {want!r}")
    return lines


def check(
    load_config: Callable[[str | Path], Any],
    conf_dir: str | Path = CONF_DIR,
    params_file: str | Path = PARAMS_FILE,
    environ: dict[str, str] | None = None,
) -> None:
    """Raise StaleParamsError unless params.yaml equals the composition of conf/.

    Inside ``dvc exp run`` the composition includes the experiment's overrides, which only
    DVC knows, so there the check is the schema alone (``load_config``, the team's).
    """
    environ = os.environ if environ is None else environ
    load_config(params_file)
    if environ.get(EXPERIMENT_VARIABLE):
        return
    expected = yaml.safe_load(compose(conf_dir))
    actual = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
    lines = differences(expected, actual)
    if lines:
        detail = "\n".join(f"  {line}" for line in lines)
        raise StaleParamsError(
            f"{params_file} is stale: it does not match the composition of {conf_dir}/.\n"
            f"{detail}\n"
            f"Run `make params` to recompose {params_file} from {conf_dir}/, then `dvc repro`.\n"
            f"If the values in {params_file} are the ones you want (say, after `dvc exp apply`), "
            f"move them into {conf_dir}/ first: `make params` overwrites {params_file}."
        )


def check_and_stamp(
    load_config: Callable[[str | Path], Any], params_file: str | Path = PARAMS_FILE
) -> Path:
    """The ``params`` stage: check freshness, then write a constant stamp for later stages.

    The stamp's bytes never change, so stages that depend on it rerun only when their own
    params change, not on every edit of conf/.
    """
    check(load_config, params_file=params_file)
    stamp = Path(load_config(params_file).paths.params_check)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(CHECK_STAMP_TEXT, encoding="utf-8")
    return stamp
