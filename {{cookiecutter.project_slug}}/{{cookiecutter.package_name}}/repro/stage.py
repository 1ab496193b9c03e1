"""``python -m <package> stage <name>...``: what dvc.yaml runs. It imports only the stage's
own code, never the tool commands, so editing those retrains nothing."""

import argparse
import sys
from importlib import import_module

from .errors import ProjectError
from .launcher import PACKAGE

PARAMS_STAGE = "params"


def main(argv: list[str]) -> int:
    from ..stages import STAGES

    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE} stage")
    parser.add_argument("stage", choices=("stage",))
    parser.add_argument("names", nargs="+", choices=(PARAMS_STAGE, *STAGES), metavar="name")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            if name == PARAMS_STAGE:
                from .params import check_and_stamp

                print(f"{name}: stamp -> {check_and_stamp(params_file=args.params)}")
                continue
            from ..config import load_params

            outputs = import_module(f"{PACKAGE}.stages.{name}").run(load_params(args.params))
            for label, path in outputs.items():
                print(f"{name}: {label} -> {path}")
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
