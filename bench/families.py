"""The demo-size cost of each model family: `dvc repro -f` of a baked project (every stage,
verify's retraining included) beside logreg's, and beside the plain script a user would write
without the template (pandas reads the table, scikit-learn splits it, the same estimator
class with the same parameters fits, predicts and is pickled), measured side by side in one
run, in the same environment.

    python bench/families.py [--repeat N] [--families logreg lightgbm ...]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "hooks"))

import answer_rules  # noqa: E402  (needs the hooks directory on the path)

# What a user writes without the template, from the same params.yaml.
PLAIN = """
import pickle, sys, yaml, pandas as pd
from hydra.utils import instantiate
from sklearn.model_selection import train_test_split
params = yaml.safe_load(open("params.yaml"))
data = params["data"]
table = pd.read_csv("data/raw/" + data["file"])
features = table.drop(columns=[data["target"], *data["drop"]])
train, test, y_train, y_test = train_test_split(
    features, table[data["target"]], test_size=params["split"]["test_size"], random_state=42)
model = {k: v for k, v in params["model"].items() if not k.startswith("_") or k == "_target_"}
estimator = instantiate(model, _convert_="all")
estimator.fit(train, y_train)
estimator.predict(test)
pickle.dumps(estimator)
"""


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(family: str, scratch: Path, repeat: int) -> dict:
    dataset = (
        "breast_cancer" if "classification" in answer_rules.model_tasks(family) else "diabetes"
    )
    project = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(scratch),
            extra_context={
                "model": family,
                "dataset": dataset,
                "project_slug": "b-" + family.replace("_", "-"),
            },
        )
    )
    venv = project / ".venv" / "bin"
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}"}
    dvc = [str(venv / "dvc"), "repro", "--force"]
    plain = [str(venv / "python"), "-c", PLAIN]
    timed(dvc, project, env)  # warm: bytecode, caches
    repro = [timed(dvc, project, env) for _ in range(repeat)]
    by_hand = [timed(plain, project, env) for _ in range(repeat)]
    return {
        "family": family,
        "dataset": dataset,
        "repro": statistics.median(repro),
        "plain": statistics.median(by_hand),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--families", nargs="*", default=list(answer_rules.CHOICES["model"]))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure(family, Path(scratch), args.repeat) for family in args.families]
    baseline = next((row["repro"] for row in rows if row["family"] == "logreg"), rows[0]["repro"])
    print(f"dvc repro -f per family, demo tables, median of {args.repeat} (verify retrains once)")
    print(
        f"{'family':<14}{'dataset':<15}{'repro s':>9}{'x logreg':>10}{'plain s':>9}{'x plain':>9}"
    )
    for row in rows:
        print(
            f"{row['family']:<14}{row['dataset']:<15}{row['repro']:>9.1f}"
            f"{row['repro'] / baseline:>10.2f}{row['plain']:>9.1f}"
            f"{row['repro'] / row['plain']:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
