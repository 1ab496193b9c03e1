"""``make params``: compose conf/ into params.yaml, then check it against the team's schema
and the model file against its class (the composition itself is runtime/params.py)."""

import argparse
from pathlib import Path

import yaml

from ..runtime.io import atomic_write_text
from ..runtime.model_config import check_hyperparameters, check_task
from ..runtime.params import CONF_DIR, PARAMS_FILE, compose
from .settings import team


def write(
    conf_dir: str | Path = CONF_DIR, out: str | Path = PARAMS_FILE, check_model: bool = True
) -> Path:
    """Compose conf/ into ``out`` and validate the result against the schema, and (unless
    ``check_model`` is off, as at bake time) the model's keys against its class."""
    out = Path(out)
    text = compose(conf_dir)
    source = f"{conf_dir}/ (composed)"
    config = team().validate(yaml.safe_load(text), source)
    if check_model:
        check_hyperparameters(config.model, source=f"{conf_dir}/model")
        check_task(config.model, config.data.task, config.data.name, f"{conf_dir}/model")
    return atomic_write_text(out, text)


def run_params(args: argparse.Namespace) -> int:
    """`make params` and `make check-params`."""
    from ..runtime.params import check

    if args.action == "compose":
        print(f"wrote {write(args.conf, args.params)} from {args.conf}/")
    elif args.action == "check":
        check(team().load_params, args.conf, args.params)
        print(f"{args.params} matches the composition of {args.conf}/")
    return 0
