"""``python -m <package> stage <name>...``: the stages dvc.yaml runs. The team's entry point
hands over its config loader and its stages package, so this module names no stage and
imports nothing of the team's; ``params`` is the machinery's own stage (conf/ freshness)."""

import argparse
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .errors import ConfigError, ProjectError

PARAMS_STAGE = "params"


def _stage_module(stages: str, name: str):
    """``<stages>.<name>``, which must exist and define ``run(config)``."""
    try:
        found = name.isidentifier() and find_spec(f"{stages}.{name}") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        where = stages.replace(".", "/")
        raise ConfigError(
            f"no stage {name!r}: {where}/{name}.py does not exist. Fix: add that module with "
            f"`def run(config) -> dict` and a `{name}:` block in dvc.yaml (README: add a stage)."
        )
    module = import_module(f"{stages}.{name}")
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"{module.__file__}: defines no run(config). Fix: add it.")
    return module


def main(argv: list[str], load_config: Callable[[str | Path], Any], stages: str) -> int:
    """Run each named stage with the config ``load_config`` reads; errors as one message."""
    parser = argparse.ArgumentParser(prog=f"python -m {stages.rsplit('.', 1)[0]} stage")
    parser.add_argument("stage", choices=("stage",))
    parser.add_argument("names", nargs="+", metavar="name")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            if name == PARAMS_STAGE:
                from .params import check_and_stamp

                print(f"{name}: stamp -> {check_and_stamp(load_config, args.params)}")
                continue
            outputs = _stage_module(stages, name).run(load_config(args.params))
            for label, path in outputs.items():
                print(f"{name}: {label} -> {path}")
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
