"""What the post-generation hook does to a freshly rendered project, as plain functions.

Nothing here resolves packages or touches the network: the locks were resolved when the
template was released (``make locks``), the dataset comes from the installed scikit-learn
(or is generated),
and the DVC remote is only configured, not contacted.
"""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

LOCKS_DIR = ".locks"
LOCK_FILES = ("uv.lock", "runtime.lock", "requirements.lock")
# The project name the template's locks were resolved under; replaced by the real slug.
LOCK_PLACEHOLDER_SLUG = "reproml-lock-placeholder"
CI_FILES = {"github": ".github", "gitlab": ".gitlab-ci.yml"}
DEFAULT_REMOTE_URLS = {
    "s3": "s3://{slug}-dvc/store",
    "gcs": "gs://{slug}-dvc/store",
    "azure": "azure://{slug}-dvc/store",
    "ssh": "ssh://dvc.example.com/srv/dvc/{slug}",
}
REMOTE_NAME = "storage"


class BakeError(Exception):
    """A post-generation step failed; the message says which and why."""


def lock_set_name(python_version: str, remote: str) -> str:
    return f"py{python_version}-{remote}"


def install_locks(project: Path, answers: dict) -> None:
    """Move the pre-resolved locks for this Python and remote into place, renamed."""
    source = project / LOCKS_DIR / lock_set_name(answers["python_version"], answers["dvc_remote"])
    if not source.is_dir():
        raise BakeError(f"the template ships no locks for {source.name}: run `make locks` in it")
    for name in LOCK_FILES:
        text = (source / name).read_text(encoding="utf-8")
        if name == "uv.lock":
            old = f'name = "{LOCK_PLACEHOLDER_SLUG}"'
            if text.count(old) != 1:
                raise BakeError(f"{source / name}: expected the placeholder project entry once")
            text = text.replace(old, f'name = "{answers["project_slug"]}"')
        (project / name).write_text(text, encoding="utf-8")
    shutil.rmtree(project / LOCKS_DIR)


def remove_unchosen(project: Path, answers: dict) -> None:
    """Drop the dataset configs and CI files that the answers did not pick."""
    for config in (project / "conf" / "data").glob("*.yaml"):
        if config.stem != answers["dataset"]:
            config.unlink()
    for provider, name in CI_FILES.items():
        if provider != answers["ci"]:
            path = project / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def import_project_module(project: Path, package: str, module: str):
    """Import ``package.module`` from the baked project, so bake and pipeline share code."""
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    return importlib.import_module(f"{package}.{module}")


def write_dataset(project: Path, answers: dict) -> Path:
    """Write the chosen demo table (scikit-learn's bundled copy, or the generated mixed-type
    one) as the project's raw data, with the baked package's own code."""
    demo_data = import_project_module(project, answers["package_name"], "repro.demo_data")
    path = project / "data" / "raw" / f"{answers['dataset']}.csv"
    return demo_data.write_demo_table(path, answers["dataset"])


def write_params(project: Path, answers: dict) -> Path:
    params = import_project_module(project, answers["package_name"], "repro.params")
    return params.write(project / "conf", project / "params.yaml")


def remote_url(project: Path, answers: dict) -> str:
    if answers["dvc_remote_url"]:
        return answers["dvc_remote_url"]
    slug = answers["project_slug"]
    if answers["dvc_remote"] == "local":
        return str((project.parent / f"{slug}-dvc-remote").resolve())
    return DEFAULT_REMOTE_URLS[answers["dvc_remote"]].format(slug=slug)


def _run(project: Path, *command: str, env: dict | None = None) -> None:
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise BakeError(f"`{' '.join(command)}` failed:\n{result.stdout}{result.stderr}")


def _dvc(project: Path, *args: str) -> None:
    _run(project, sys.executable, "-m", "dvc", *args, env=bake_environment())


def bake_environment() -> dict:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _git_identity(project: Path, answers: dict) -> list[str]:
    """Commit as the configured git user, or as the author when git has no identity yet."""
    configured = subprocess.run(
        ["git", "config", "user.email"], cwd=project, capture_output=True, text=True
    )
    if configured.returncode == 0 and configured.stdout.strip():
        return []
    email = f"{answers['project_slug']}@users.noreply.invalid"
    return ["-c", f"user.name={answers['author']}", "-c", f"user.email={email}"]


def init_repositories(project: Path, answers: dict) -> None:
    """git init, dvc init with Hydra, the default remote, dvc add of the raw data, a commit."""
    _run(project, "git", "init", "-q", "-b", "main")
    _dvc(project, "init", "-q")
    _dvc(project, "config", "hydra.enabled", "true")
    _dvc(project, "remote", "add", "-d", REMOTE_NAME, remote_url(project, answers))
    _dvc(project, "remote", "modify", REMOTE_NAME, "verify", "true")
    _dvc(project, "add", "-q", f"data/raw/{answers['dataset']}.csv")
    _run(project, "git", "add", "-A")
    message = f"Bake {answers['project_name']} from the reproducible-ML template"
    _run(project, "git", *_git_identity(project, answers), "commit", "-q", "-m", message)


def bake(project: Path, answers: dict) -> None:
    install_locks(project, answers)
    remove_unchosen(project, answers)
    write_dataset(project, answers)
    write_params(project, answers)
    init_repositories(project, answers)
    print(f"Baked {project}. Next: cd {project.name} && make setup && make repro")
