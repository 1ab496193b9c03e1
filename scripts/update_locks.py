"""Resolve the lock set of every (Python minor, DVC remote, model library) the template offers.

Baked projects install from these files and never resolve, so this is the only place the
template talks to the package index. Run it (``make locks``) after changing the baked
pyproject.toml; the template's tests fail until the shipped locks agree with it again.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "hooks"))

import answer_rules  # noqa: E402  (needs the hooks directory on the path)
import project_setup  # noqa: E402
from interpreters import find_interpreter  # noqa: E402

LOCKS = TEMPLATE / "{{cookiecutter.project_slug}}" / project_setup.LOCKS_DIR


def render_without_hooks(output: Path, python_version: str, remote: str, model: str) -> Path:
    """The project's files, rendered for one lock set, before any hook has run."""
    context = {
        "project_slug": project_setup.LOCK_PLACEHOLDER_SLUG,
        "package_name": "lock_placeholder",
        "python_version": python_version,
        "dvc_remote": remote,
        "model": model,
    }
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=context,
            output_dir=str(output),
            accept_hooks=False,
        )
    )


def update_set(python_version: str, remote: str, model: str) -> Path:
    from reproml.tools import locking

    target = LOCKS / project_setup.lock_set_name(python_version, remote, model)
    with tempfile.TemporaryDirectory() as scratch:
        project = render_without_hooks(Path(scratch), python_version, remote, model)
        # The shipped lock is where uv starts from: what pyproject.toml did not change keeps
        # its version (`make locks` re-hashes the wheels without upgrading anything else).
        if (target / "uv.lock").is_file():
            shutil.copyfile(target / "uv.lock", project / "uv.lock")
        try:
            found = find_interpreter(python_version, os.environ.get("UV", "uv"))
            if found:
                os.environ["UV_PYTHON"] = found
            locking.update(project)
        finally:
            os.environ.pop("UV_PYTHON", None)
        target.mkdir(parents=True, exist_ok=True)
        for name in project_setup.LOCK_FILES:
            shutil.copyfile(project / name, target / name)
        return target


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", nargs="*", default=answer_rules.CHOICES["python_version"])
    parser.add_argument("--remote", nargs="*", default=answer_rules.CHOICES["dvc_remote"])
    parser.add_argument("--model", nargs="*", default=lock_models())
    args = parser.parse_args(argv)
    for python_version in args.python:
        for remote in args.remote:
            for model in args.model:
                target = update_set(python_version, remote, model)
                print(f"locked {target.relative_to(TEMPLATE)}", flush=True)
    return 0


def lock_models() -> list[str]:
    """One model family per distinct lock set: the scikit-learn ones share one."""
    models = answer_rules.CHOICES["model"]
    return [models[0], *project_setup.MODEL_LIBRARIES]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
