"""Overhead of the pipeline runner: `dvc repro -f` of a baked project against the same stage
functions called back to back in one Python process, measured side by side in one run.

The ratio is what per-stage processes, DVC's own start-up and hashing cost on top of the
work itself. Later work drives it down; this script is how we will know.

    python bench/repro_overhead.py [--repeat N] [--answers key=value ...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]

IN_PROCESS = """
import sys
from importlib import import_module
package = sys.argv[1]
load_params = import_module(package + ".config").load_params
config = load_params()
import_module("reproml.runtime.params").check_and_stamp(load_params)
# The team's stages in dvc.yaml's order (params is the machinery's).
for stage in import_module("reproml.runtime.pipeline").read(".").stages[1:]:
    import_module(f"{package}.stages.{stage.name}").run(config)
"""


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--answers", nargs="*", default=[], help="cookiecutter key=value pairs")
    args = parser.parse_args(argv)
    answers = dict(pair.split("=", 1) for pair in args.answers)
    uv = os.environ.get("UV", "uv")
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(
            cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=scratch)
        )
        subprocess.run(["make", "setup", f"UV={uv}"], cwd=project, check=True, capture_output=True)
        venv_bin = project / ".venv" / "bin"
        package = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["reproml"][
            "package"
        ]
        env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"}
        env["DVC_NO_ANALYTICS"] = "1"
        # The in-process side runs under the same pinned environment the stages get.
        print_pinned = (
            "import json, os; from reproml.runtime.launcher import pinned_environment; "
            "print(json.dumps(pinned_environment(dict(os.environ))))"
        )
        in_process_env = json.loads(
            subprocess.run(
                [str(venv_bin / "python"), "-c", print_pinned],
                cwd=project,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )

        # One untimed run of each, so both sides read warm bytecode and page cache.
        repro = [str(venv_bin / "dvc"), "repro", "--force", "--quiet"]
        direct = [str(venv_bin / "python"), "-c", IN_PROCESS, package]
        timed(repro, project, env)
        timed(direct, project, in_process_env)
        repro_times, direct_times = [], []
        for _ in range(args.repeat):
            repro_times.append(timed(repro, project, env))
            direct_times.append(timed(direct, project, in_process_env))

    repro_median = statistics.median(repro_times)
    direct_median = statistics.median(direct_times)
    print(f"project: {project.name} ({answers or 'default answers'}), {args.repeat} runs each")
    print(
        f"  dvc repro --force (one process per stage): median {repro_median:6.2f} s  "
        f"runs {', '.join(f'{t:.2f}' for t in repro_times)}"
    )
    print(
        f"  same stages in one process:               median {direct_median:6.2f} s  "
        f"runs {', '.join(f'{t:.2f}' for t in direct_times)}"
    )
    print(f"ratio dvc repro / in-process: {repro_median / direct_median:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
