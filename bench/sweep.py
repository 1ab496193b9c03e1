"""A sweep of 8 experiments on 2 local workers against the same 8 run one after another
(`make sweep JOBS=1`), on the demo project, measured in one run. Each point runs the whole
pipeline, verify included; the two sweeps use different seeds, so neither is served from
DVC's run cache. Goal: parallel / sequential < 0.6.

    python bench/sweep.py [--points 8] [--jobs 2]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
GOAL = 0.6


def timed_sweep(project: Path, env: dict, seeds: list[int], jobs: int, name: str) -> float:
    arguments = f"seed={','.join(str(seed) for seed in seeds)}"
    start = time.perf_counter()
    done = subprocess.run(
        ["make", "sweep", f"ARGS={arguments}", f"JOBS={jobs}", f"NAME={name}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the {name} sweep failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    uv = os.environ.get("UV", "uv")
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=scratch))
        env = {**os.environ, "DVC_NO_ANALYTICS": "1", "UV": uv}
        env["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        for command in (
            ["make", "setup", f"UV={uv}"],
            ["make", "repro"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "b"],
        ):
            subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
        serial_seeds = list(range(1, args.points + 1))
        parallel_seeds = [100 + seed for seed in serial_seeds]
        serial = timed_sweep(project, env, serial_seeds, 1, "serial")
        parallel = timed_sweep(project, env, parallel_seeds, args.jobs, "parallel")
    ratio = parallel / serial
    verdict = "met" if ratio < GOAL else "MISSED"
    print(f"{args.points} experiments (whole pipeline, verify included), demo project")
    print(f"  one after another (JOBS=1)  {serial:7.1f} s")
    print(f"  on {args.jobs} workers (JOBS={args.jobs})     {parallel:7.1f} s")
    print(f"  {'sweep on workers / one after another':<52} {ratio:6.2f}  goal < {GOAL}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
