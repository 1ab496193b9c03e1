"""Scale: the real pipeline of a baked project on mixed-type tables of growing size.

For each row count it generates a ~30-column table (categories, missing values, dates, ids,
string labels) with the project's own generator, brings it in with `dvc add`, and measures,
side by side in the same run:

- each stage run as DVC runs it (its own process): wall time and peak memory;
- prepare / pyarrow's own CSV read and Parquet write of the same table (goal <= 1.5);
- peak memory of each stage / the in-memory size of the table it reads (goal <= 3);
- the project's own hashing (the model record's data version, the model's sha256 that loading
  checks) / DVC's hashing of the same files (goal <= 1.05);
- cold `dvc repro --force` / the same stage functions in one process (goal <= 1.5 at 10^6);
- cold `dvc repro --force` / the plain pipeline a user would write (bench/plain_pipeline.py)
  training twice, the least verify must add (goal <= 1.2 at 10^6);
- verify / train, each as DVC runs it (goal <= 1.2 at 10^6).

It prints a table and the ratios, and writes build/bench/scale.csv and scale.svg.

    python bench/scale.py [--rows 10000 100000 1000000]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter
from repro_overhead import IN_PROCESS  # the pipeline in one process, as a user would run it

TEMPLATE = Path(__file__).resolve().parents[1]
OUT_DIR = TEMPLATE / "build" / "bench"
STAGES = ("params", "prepare", "train", "evaluate", "verify")
EXTRA_NUMERIC, EXTRA_CATEGORICAL = 12, 4

# Run in the project's environment: write the table and return its schema additions.
GENERATE = """
import json, sys
import pyarrow as pa
from pyarrow import csv as arrow_csv
from importlib import import_module
sys.path.insert(0, sys.argv[1])  # the template's tests/, which holds demo_data.py
import demo_data
names, columns = demo_data.churn_columns(int(sys.argv[2]), seed=0,
                                         extra_numeric=int(sys.argv[4]),
                                         extra_categorical=int(sys.argv[5]))
table = pa.table({name: pa.array(columns[name], from_pandas=True) for name in names})
arrow_csv.write_csv(table, sys.argv[3])
print(json.dumps(names))
"""

# Run in the project's environment: the in-process sides of the ratios.
MEASURE = """
import json, os, sys, tempfile, time
from importlib import import_module
import pyarrow.parquet as pq
from pyarrow import csv as arrow_csv
package = sys.argv[1]
config = import_module(package + ".config").load_params()
data = import_module(package + ".data")
artifacts = import_module("reproml.runtime.model_file")
hashing = import_module("reproml.runtime.hashing")
from dvc_data.hashfile.hash import file_md5
result = {}
raw = config.paths.raw_data
arrow_csv.read_csv(raw)  # warm the page cache for both sides
start = time.perf_counter()
import_module(package + ".stages.prepare").run(config)
result["prepare_s"] = time.perf_counter() - start
start = time.perf_counter()
table = arrow_csv.read_csv(raw)
with tempfile.TemporaryDirectory() as scratch:
    pq.write_table(table, os.path.join(scratch, "t.parquet"))
result["pyarrow_read_write_s"] = time.perf_counter() - start
result["raw_table_bytes"] = data.read_raw(raw, config.data).nbytes
result["train_table_bytes"] = data.read_prepared(config.paths.train).nbytes
result["test_table_bytes"] = data.read_prepared(config.paths.test).nbytes
start = time.perf_counter()
artifacts.data_version(raw)
hashing.file_digest(config.paths.model)
result["own_hashing_s"] = time.perf_counter() - start
start = time.perf_counter()
file_md5(raw)
file_md5(config.paths.model)
result["dvc_hashing_s"] = time.perf_counter() - start
print(json.dumps(result))
"""


def run_measured(command: list[str], cwd: Path, env: dict) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of a process and its children."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output.decode(errors='replace')}")
    return elapsed, usage.ru_maxrss * 1024


def python_output(project: Path, env: dict, script: str, *args: str) -> dict | list:
    command = [str(project / ".venv/bin/python"), "-c", script, *args]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout)


def bake(scratch: Path, uv: str) -> tuple[Path, str, dict]:
    answers = {"dataset": "churn", "model": "hist_gb", "project_slug": "scale"}
    project = Path(
        cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(scratch))
    )
    subprocess.run(["make", "setup", f"UV={uv}"], cwd=project, check=True, capture_output=True)
    package = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["reproml"]["package"]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{project / '.venv/bin'}{os.pathsep}{env['PATH']}"
    # A tree ensemble: categories as ordinal codes, numerics unscaled (conf/preprocess's knobs).
    preprocess = project / "conf/preprocess/default.yaml"
    text = preprocess.read_text().replace("onehot  #", "ordinal #")
    preprocess.write_text(text.replace("scale_numeric: true ", "scale_numeric: false"))
    return project, package, env


def set_table(project: Path, package: str, env: dict, rows: int) -> None:
    raw = project / "data/raw/churn.csv"
    names = python_output(
        project,
        env,
        GENERATE,
        str(TEMPLATE / "tests"),
        str(rows),
        str(raw),
        str(EXTRA_NUMERIC),
        str(EXTRA_CATEGORICAL),
    )
    schema_file = project / "conf/data/churn.yaml"
    schema = yaml.safe_load(schema_file.read_text())
    schema["features"]["numeric"] += [n for n in names if n.startswith("sensor_")]
    schema["features"]["categorical"] += [n for n in names if n.startswith("segment_")]
    schema["features"]["numeric"] = list(dict.fromkeys(schema["features"]["numeric"]))
    schema["features"]["categorical"] = list(dict.fromkeys(schema["features"]["categorical"]))
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))
    subprocess.run(["make", "params"], cwd=project, env=env, check=True, capture_output=True)
    subprocess.run(
        [str(project / ".venv/bin/dvc"), "add", "-q", str(raw)],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )


def measure(project: Path, package: str, env: dict, rows: int) -> dict:
    set_table(project, package, env, rows)
    python = str(project / ".venv/bin/python")
    dvc = str(project / ".venv/bin/dvc")
    repro_s, _ = run_measured([dvc, "repro", "--force", "--quiet"], project, env)
    pinned = python_output(
        project,
        env,
        (
            "import json, os; from reproml.runtime.launcher import pinned_environment; "
            "print(json.dumps(pinned_environment(dict(os.environ))))"
        ),
    )
    in_process_s, _ = run_measured([python, "-c", IN_PROCESS, package], project, pinned)
    # The yardstick: the plain script, training twice (the least verify must add).
    plain = [python, str(TEMPLATE / "bench" / "plain_pipeline.py"), "params.yaml"]
    with tempfile.TemporaryDirectory() as plain_out:
        plain_s, plain_peak = run_measured([*plain, plain_out, "--trains", "2"], project, env)
    stages = {}
    for name in STAGES:
        stages[name] = run_measured([python, "-m", package, "stage", name], project, env)
    sizes = python_output(project, pinned, MEASURE, package)
    table_of = {
        "prepare": sizes["raw_table_bytes"],
        "train": sizes["train_table_bytes"],
        "evaluate": sizes["test_table_bytes"],
        "verify": sizes["train_table_bytes"],
    }
    return {
        "rows": rows,
        "repro_s": repro_s,
        "in_process_s": in_process_s,
        "plain_two_trains_s": plain_s,
        "plain_peak_bytes": plain_peak,
        "stages": stages,
        "table_of": table_of,
        **sizes,
        "csv_bytes": (project / "data/raw/churn.csv").stat().st_size,
    }


def report(results: list[dict]) -> list[str]:
    header = f"{'rows':>9} {'stage':<9} {'time s':>8} {'peak MB':>8} {'table MB':>9}"
    lines = [f"{header} {'peak/table':>10} {'marginal':>9}"]
    smallest = results[0]
    for result in results:
        for name, (seconds, peak) in result["stages"].items():
            table = result["table_of"].get(name)
            ratio = f"{peak / table:10.2f}" if table else f"{'':>10}"
            size = f"{table / 1e6:9.1f}" if table else f"{'':>9}"
            # What the rows add: peak growth over table growth since the smallest table,
            # which leaves out the fixed cost of the interpreter and its imports.
            marginal = f"{'':>9}"
            if table and result is not smallest:
                grown = table - smallest["table_of"][name]
                marginal = f"{(peak - smallest['stages'][name][1]) / grown:9.2f}"
            lines.append(
                f"{result['rows']:>9} {name:<9} {seconds:8.2f} {peak / 1e6:8.0f} {size} "
                f"{ratio} {marginal}"
            )
    lines.append("")
    lines.append(
        f"{'rows':>9} {'CSV MB':>7} {'prepare/pyarrow':>16} {'max peak/table':>15} "
        f"{'own/DVC hashing':>16} {'repro/in-process':>17}"
    )
    for result in results:
        peaks = [
            peak / result["table_of"][name]
            for name, (_, peak) in result["stages"].items()
            if name in result["table_of"]
        ]
        lines.append(
            f"{result['rows']:>9} {result['csv_bytes'] / 1e6:7.1f} "
            f"{result['prepare_s'] / result['pyarrow_read_write_s']:16.2f} "
            f"{max(peaks):15.2f} "
            f"{result['own_hashing_s'] / result['dvc_hashing_s']:16.3f} "
            f"{result['repro_s'] / result['in_process_s']:17.2f}"
        )
    lines.append(
        "goals: prepare/pyarrow <= 1.5, peak/table <= 3, own/DVC hashing <= 1.05, "
        "repro/in-process <= 1.5 at 10^6 rows"
    )
    lines.append("")
    lines.append("against the plain pipeline (bench/plain_pipeline.py), per row count:")
    for result in results:
        stages = result["stages"]
        peaks = [
            peak / result["table_of"][name]
            for name, (_, peak) in stages.items()
            if name in result["table_of"]
        ]
        worst = max(
            (name for name in stages if name in result["table_of"]),
            key=lambda name: stages[name][1] / result["table_of"][name],
        )
        checks = [
            (
                "dvc repro -f / (plain + one more train)",
                result["repro_s"] / result["plain_two_trains_s"],
                1.2,
            ),
            ("verify / train", stages["verify"][0] / stages["train"][0], 1.2),
            (f"worst stage's peak / its table ({worst})", max(peaks), 3.0),
        ]
        for name, ratio, goal in checks:
            verdict = "met" if ratio <= goal else "MISSED"
            lines.append(
                f"  {result['rows']:>9} rows  {name:<44} {ratio:6.2f}  goal <= {goal:<4} {verdict}"
            )
    lines.append("(the goals are set at 10^6 rows; smaller tables show how the ratios trend)")
    return lines


def write_outputs(results: list[dict]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with (OUT_DIR / "scale.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rows", "stage", "seconds", "peak_bytes", "table_bytes"])
        for result in results:
            for name, (seconds, peak) in result["stages"].items():
                writer.writerow(
                    [result["rows"], name, f"{seconds:.3f}", peak, result["table_of"].get(name, "")]
                )
    (OUT_DIR / "scale.svg").write_text(svg(results))


def svg(results: list[dict]) -> str:
    """Two panels, time and peak memory per stage against rows (log-log), one line a stage."""
    import math

    width, height, pad = 360, 240, 40
    colours = dict(zip(STAGES, ["#888", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"], strict=True))
    rows = [r["rows"] for r in results]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width + 20}" '
        f'height="{height + 30}" font-family="sans-serif" font-size="10">'
    ]
    for panel, (title, index, unit) in enumerate(
        [("time per stage (s)", 0, 1.0), ("peak memory per stage (MB)", 1, 1e6)]
    ):
        left = panel * (width + 20)
        values = [r["stages"][s][index] / unit for r in results for s in STAGES]
        low, high = math.log10(max(min(values), 1e-3)), math.log10(max(values))
        span_y = (high - low) or 1.0
        span_x = (math.log10(max(rows)) - math.log10(min(rows))) or 1.0

        def point(n, v, left=left, low=low, span_y=span_y, span_x=span_x):
            x = left + pad + (math.log10(n) - math.log10(min(rows))) / span_x * (width - 2 * pad)
            y = height - pad - (math.log10(max(v, 1e-3)) - low) / span_y * (height - 2 * pad)
            return f"{x:.1f},{y:.1f}"

        parts.append(f'<text x="{left + pad}" y="15">{title} vs rows (log-log)</text>')
        parts.append(
            f'<rect x="{left + pad}" y="{pad}" width="{width - 2 * pad}" '
            f'height="{height - 2 * pad}" fill="none" stroke="#ccc"/>'
        )
        for stage in STAGES:
            line = " ".join(point(r["rows"], r["stages"][stage][index] / unit) for r in results)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colours[stage]}"/>')
        for n in rows:
            x = point(n, 10**low).split(",")[0]
            parts.append(f'<text x="{x}" y="{height - pad + 14}" text-anchor="middle">{n:g}</text>')
        for number, stage in enumerate(STAGES):
            parts.append(
                f'<text x="{left + pad + 4}" y="{pad + 12 + 11 * number}" '
                f'fill="{colours[stage]}">{stage}</text>'
            )
        parts.append(f'<text x="{left + 4}" y="{pad}">{10**high:.3g}</text>')
        parts.append(f'<text x="{left + 4}" y="{height - pad}">{10**low:.3g}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args(argv)
    uv = os.environ.get("UV", "uv")
    with tempfile.TemporaryDirectory() as scratch:
        project, package, env = bake(Path(scratch), uv)
        results = [measure(project, package, env, rows) for rows in args.rows]
    lines = report(results)
    print("\n".join(lines))
    write_outputs(results)
    print(f"wrote {OUT_DIR / 'scale.csv'} and {OUT_DIR / 'scale.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
