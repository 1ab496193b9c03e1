"""verify: retrain and re-evaluate in an isolated process, then compare with the pipeline.

The rebuild runs in a fresh scratch directory as its working directory, with another time
zone, locale, hash seed and umask than the pipeline, and with the entry point told to keep
them. Its report holds no time, path or duration, so dvc.lock stays byte-identical.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import yaml

from ..config import PARAMS_FILE, ProjectConfig
from ..dataio import read_table, write_json
from ..determinism import (
    OPT_OUT_VARIABLE,
    PROJECT_ROOT,
    VARIED_ENV,
    VARIED_UMASK,
    varied_environment,
)
from ..environment import require_locked_environment
from ..errors import VerificationError
from ..models import load_recorded_model
from ..verification import compare_metrics, compare_model_files, compare_predictions, format_table

PACKAGE = __package__.rsplit(".", 1)[0]
REBUILT_PATHS = ("model", "model_record", "metrics", "confusion")


def _isolated_params(config: ProjectConfig, scratch: Path) -> Path:
    """params.yaml for the rebuild: inputs from the project, every output into scratch."""
    raw = asdict(config)
    for key in ("raw_data", "train", "test"):
        raw["paths"][key] = str(Path(getattr(config.paths, key)).resolve())
    for key in REBUILT_PATHS:
        raw["paths"][key] = str(scratch / Path(getattr(config.paths, key)).name)
    path = scratch / PARAMS_FILE
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _rebuild(params_file: Path, scratch: Path) -> None:
    env = varied_environment(dict(os.environ))
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", PACKAGE, "stage", "train", "evaluate"]
    result = subprocess.run(
        [*command, "--params", str(params_file)],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        umask=VARIED_UMASK if os.name == "posix" else -1,
    )
    if result.returncode != 0:
        raise VerificationError(f"the isolated rebuild failed:\n{result.stdout}{result.stderr}")


def run(config: ProjectConfig) -> dict[str, Path]:
    drift = require_locked_environment(what="verification")
    scratch = Path(tempfile.mkdtemp(prefix="verify-"))
    try:
        _rebuild(_isolated_params(config, scratch), scratch)
        paths = config.paths
        expected = load_recorded_model(paths.model, paths.model_record)
        rebuilt_model = scratch / Path(paths.model).name
        rebuilt = load_recorded_model(rebuilt_model, scratch / Path(paths.model_record).name)
        _, probe, _ = read_table(paths.test, config.data.target)
        checks = [
            compare_model_files(paths.model, Path(paths.model), rebuilt_model, expected, rebuilt),
            compare_predictions(expected, rebuilt, probe),
            compare_metrics(
                paths.metrics,
                json.loads(Path(paths.metrics).read_text(encoding="utf-8")),
                json.loads((scratch / Path(paths.metrics).name).read_text(encoding="utf-8")),
            ),
        ]
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    result = "match" if all(check["result"] == "match" for check in checks) else "mismatch"
    report = {
        "result": result,
        "varied": {
            **{
                key: value
                for key, value in VARIED_ENV.items()
                if key != OPT_OUT_VARIABLE and not key.endswith("_THREADS")
            },
            "umask": f"{VARIED_UMASK:03o}",
            "working_directory": "a fresh scratch directory",
        },
        "checks": checks,
        "environment_drift": drift,
    }
    write_json(paths.verify_report, report)
    table = format_table(checks)
    if result != "match":
        raise VerificationError(
            f"the rebuild does not match what the pipeline produced:\n{table}\n"
            f"The rebuilt files are kept in {scratch} for inspection; the full report is "
            f"{paths.verify_report}. Look for unseeded randomness or state outside the inputs."
        )
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"verify: the isolated rebuild matches\n{table}")
    return {"verify_report": Path(paths.verify_report)}
