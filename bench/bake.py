"""How long a bake takes with a warm uv cache, against its floor, measured side by side.

The floor is what any bake of this template must do: render the files (cookiecutter without
hooks) and create the locked environment (`uv sync --frozen --offline`). The rest is the
hook's own work (DVC and git repositories, params.yaml). The goal is a bake of 2 s or less.

    python bench/bake.py [--repeat N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TEMPLATE / "hooks"), str(TEMPLATE / "tests")]

import project_setup  # noqa: E402  (the hook's own lock installer)
from conftest import default_answers  # noqa: E402

COOKIECUTTER = str(Path(sys.executable).parent / "cookiecutter")
UV = os.environ.get("UV", "uv")
GOAL_SECONDS = 2.0


def timed(command: list[str], cwd: Path) -> float:
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def bake(scratch: Path) -> float:
    return timed([COOKIECUTTER, "--no-input", str(TEMPLATE), "-o", str(scratch)], scratch)


def floor(scratch: Path) -> float:
    render = [COOKIECUTTER, "--no-input", "--accept-hooks", "no", str(TEMPLATE)]
    seconds = timed([*render, "-o", str(scratch)], scratch)
    project = scratch / "my-ml-project"
    project_setup.install_locks(project, {**default_answers(), "project_slug": project.name})
    return seconds + timed([UV, "sync", "--frozen", "--offline", "--quiet"], project)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bake(Path(scratch) / "warm-up")  # fills uv's cache if it is cold
        bakes, floors = [], []
        for index in range(args.repeat):
            bakes.append(bake(Path(scratch) / f"bake-{index}"))
            floors.append(floor(Path(scratch) / f"floor-{index}"))
    median_bake, median_floor = statistics.median(bakes), statistics.median(floors)
    verdict = "met" if median_bake <= GOAL_SECONDS else "MISSED"
    print(
        f"bake (warm uv cache), median of {args.repeat}: {median_bake:.2f} s  "
        f"goal <= {GOAL_SECONDS} s  {verdict}"
    )
    print(f"floor (render + uv sync --offline):   {median_floor:.2f} s")
    print(f"bake / floor: {median_bake / median_floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
