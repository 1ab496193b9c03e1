"""`make demo`: bake the default project, set it up, run its pipeline, show what it produced.

The demo directory belongs to this script: a previous demo in it is replaced.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]


def step(title: str, command: list[str], cwd: Path) -> None:
    print(f"\n==> {title}: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def main(argv: list[str]) -> int:
    demo_dir = Path(argv[0] if argv else TEMPLATE / "build" / "demo").resolve()
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)
    print(f"==> Baking the default project into {demo_dir}", flush=True)
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(demo_dir)))
    step("Setting up its locked environment", ["make", "setup"], project)
    step("Running its pipeline", ["make", "repro"], project)

    sys.path.insert(0, str(project))
    from reproml.runtime.hashing import file_digest

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    print(f"\nProject: {project}\n\nWhat each stage produced (sha256):")
    for name, stage in lock["stages"].items():
        for out in stage.get("outs", []):
            path = project / out["path"]
            if path.is_dir():  # the plot tables: one line for the folder
                files = sorted(file for file in path.iterdir() if file.is_file())
                print(f"  {name:<9} {out['path'] + '/':<26} {len(files):>8} files")
                continue
            print(f"  {name:<9} {out['path']:<26} {path.stat().st_size:>8} B  {file_digest(path)}")
    print(f"\nmetrics/metrics.json:\n{(project / 'metrics' / 'metrics.json').read_text()}")
    print(
        f"Next: cd {project} && source .venv/bin/activate, then follow its README.md\n"
        "(change a parameter, run experiments, rebuild an old version)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
