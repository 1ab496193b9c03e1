"""The pipeline's cost at demo size against what a user would write without the template,
measured side by side in one run (each pair in turn, medians):

- cold `dvc repro --force` / bench/plain_pipeline.py (pandas/pyarrow and scikit-learn in one
  script, the same model and columns, no verify): goal <= 1.5;
- the same, against that code as a plain three-stage dvc.yaml (one process per stage, run by
  `dvc repro --force`): the yardstick the issue measured (its 5.8 s), same goal;
- no-op `dvc repro` / starting the plain script's interpreter and imports;
- `make rebuild` of HEAD (warm uv and DVC caches) / cold `dvc repro --force`: goal <= 1.2;
- that rebuild sealed (bubblewrap) / the same rebuild unsealed (`REPRO_BWRAP=`): goal <= 1.1.

    python bench/repro_overhead.py [--repeat N] [--answers key=value ...]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
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


def goal_line(name: str, ratio: float, goal: float) -> str:
    verdict = "met" if ratio <= goal else "MISSED"
    return f"  {name:<52} {ratio:6.2f}  goal <= {goal:<4}  {verdict}"


def in_turn(*measures, repeat: int) -> list[list[float]]:
    """``repeat`` timings of each measure, taken in turn so all see the same machine."""
    times: list[list[float]] = [[] for _ in measures]
    for _ in range(repeat):
        for measure, found in zip(measures, times, strict=True):
            found.append(measure())
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--answers", nargs="*", default=[], help="cookiecutter key=value pairs")
    args = parser.parse_args(argv)
    answers = dict(pair.split("=", 1) for pair in args.answers)
    uv = os.environ.get("UV", "uv")
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(
            cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=scratch)
        )
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        env["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        subprocess.run(["make", "setup", f"UV={uv}"], cwd=project, check=True, capture_output=True)
        python = str(project / ".venv" / "bin" / "python")
        plain = [python, str(TEMPLATE / "bench" / "plain_pipeline.py"), "params.yaml"]
        plain_out = str(Path(scratch) / "plain")
        imports_only = [python, "-c", PLAIN_IMPORTS]
        repro = [python, "-m", "dvc", "repro", "--quiet"]
        plain_stages = plain_dvc_project(Path(scratch) / "plain-stages", project, python, env)
        # One untimed run of each, so both sides read warm bytecode and page cache.
        timed([*repro, "--force"], project, env)
        timed([*plain, plain_out], project, env)
        timed([*repro, "--force"], plain_stages, env)
        for command in (["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
        cold, plain_times, plain_stage_times = in_turn(
            lambda: timed([*repro, "--force"], project, env),
            lambda: timed([*plain, plain_out], project, env),
            lambda: timed([*repro, "--force"], plain_stages, env),
            repeat=args.repeat,
        )
        noop, imports = in_turn(
            lambda: timed(repro, project, env),
            lambda: timed(imports_only, project, env),
            repeat=args.repeat,
        )
        make_rebuild = ["make", "rebuild", f"UV={uv}", "REBUILD_ARGS=--no-record"]
        unsealed_env = {**env, "REPRO_BWRAP": ""}
        timed(make_rebuild, project, unsealed_env)  # uv's cache warm for both
        rebuild, unsealed = in_turn(
            lambda: timed([*make_rebuild, "SEALED=1"], project, env),
            lambda: timed(make_rebuild, project, unsealed_env),
            repeat=max(3, args.repeat),
        )

    def shown(times: list[float]) -> str:
        return f"median {statistics.median(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})"

    print(f"demo project ({answers or 'default answers'}), {args.repeat} runs of each, in turn")
    print(f"  dvc repro --force (cold, verify included)   {shown(cold)}")
    print(f"  plain pipeline, one script                  {shown(plain_times)}")
    print(f"  plain three-stage dvc.yaml, dvc repro -f    {shown(plain_stage_times)}")
    print(f"  dvc repro (nothing to do)                   {shown(noop)}")
    print(f"  the plain script's interpreter and imports  {shown(imports)}")
    print(f"  make rebuild HEAD (warm caches), sealed     {shown(rebuild)}")
    print(f"  the same rebuild, unsealed (REPRO_BWRAP=)   {shown(unsealed)}")
    median = statistics.median
    print(
        goal_line(
            "dvc repro -f / plain pipeline, demo size", median(cold) / median(plain_times), 1.5
        )
    )
    print(
        goal_line(
            "dvc repro -f / plain three-stage dvc.yaml",
            median(cold) / median(plain_stage_times),
            1.5,
        )
    )
    print(f"  {'no-op dvc repro / the plain imports':<52} {median(noop) / median(imports):6.2f}")
    print(goal_line("make rebuild / dvc repro -f", median(rebuild) / median(cold), 1.2))
    print(goal_line("sealed make rebuild / unsealed", median(rebuild) / median(unsealed), 1.1))
    return 0


def plain_dvc_project(where: Path, project: Path, python: str, env: dict) -> Path:
    """A git+DVC repository holding the baked project's params.yaml and raw table and a
    dvc.yaml of three stages, each one step of bench/plain_pipeline.py: the pipeline a DVC
    user would write without the template."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    raw = params["paths"]["raw_data"]
    (where / raw).parent.mkdir(parents=True)
    shutil.copy2(project / raw, where / raw)
    shutil.copy2(project / "params.yaml", where / "params.yaml")
    script = f"{python} {TEMPLATE / 'bench' / 'plain_pipeline.py'} params.yaml out --stage"
    stages = {
        "prepare": {
            "cmd": f"{script} prepare",
            "deps": [raw],
            "outs": ["out/train.parquet", "out/test.parquet"],
        },
        "train": {
            "cmd": f"{script} train",
            "deps": ["out/train.parquet"],
            "outs": ["out/model.pkl"],
        },
        "evaluate": {
            "cmd": f"{script} evaluate",
            "deps": ["out/model.pkl", "out/test.parquet"],
            "metrics": [{"out/metrics.json": {"cache": False}}],
        },
    }
    (where / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    for command in (["git", "init", "-q"], [python, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=where, env=env, check=True, capture_output=True)
    return where


# What the plain script pays before it does anything: the interpreter and its imports.
PLAIN_IMPORTS = (
    "import pyarrow.parquet, pyarrow.csv, yaml, sklearn.compose, sklearn.impute, "
    "sklearn.metrics, sklearn.model_selection, sklearn.pipeline, sklearn.preprocessing, "
    "sklearn.linear_model"
)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
