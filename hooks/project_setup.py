"""What the post-generation hook does to a freshly rendered project, as plain functions.

Two halves, so baking needs nothing beside cookiecutter but git and uv. ``bake`` runs in
cookiecutter's own Python with the standard library only: it puts the locks in place and
creates the project's locked environment (``uv sync --frozen``, offline from uv's cache when
it can). ``finish`` then runs in that environment (this file as a script): it composes
params.yaml with the project's own code while it initialises git and DVC. Nothing resolves
packages: the locks were resolved when the template was released (``make locks``); the DVC
remote is only configured, not contacted.
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

LOCKS_DIR = ".locks"
# The demo tables, written when the template is released (``make demo-tables``).
DEMO_TABLES_DIR = ".demo_tables"
LOCK_FILES = ("uv.lock", "runtime.lock", "requirements.lock")
# The project name the template's locks were resolved under; replaced by the real slug.
LOCK_PLACEHOLDER_SLUG = "reproml-lock-placeholder"
CI_FILES = {"github": (".github",), "gitlab": (".gitlab-ci.yml", ".gitlab")}
DEFAULT_REMOTE_URLS = {
    "s3": "s3://{slug}-dvc/store",
    "gcs": "gs://{slug}-dvc/store",
    "azure": "azure://{slug}-dvc/store",
    "ssh": "ssh://dvc.example.com/srv/dvc/{slug}",
}
REMOTE_NAME = "storage"


class BakeError(Exception):
    """A post-generation step failed; the message says which and why."""


# The model families whose library is not scikit-learn. Each has lock sets of its own, so
# only the chosen family's library is in the baked lock (and networks.py only with torch).
MODEL_LIBRARIES = {
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "catboost": "catboost",
    "torch_mlp": "torch",
}
NETWORKS_MODULE = "networks.py"


def network_files(answers: dict) -> list[str]:
    """The network's module and model file: only a torch_mlp bake has torch to import."""
    return [f"{answers['package_name']}/{NETWORKS_MODULE}", "conf/model/torch_mlp.yaml"]


def lock_set_name(python_version: str, remote: str, model: str = "logreg") -> str:
    library = MODEL_LIBRARIES.get(model)
    return f"py{python_version}-{remote}" + (f"-{library}" if library else "")


def install_locks(project: Path, answers: dict) -> None:
    """Move the pre-resolved locks for this Python and remote into place, renamed."""
    source = (
        project
        / LOCKS_DIR
        / lock_set_name(answers["python_version"], answers["dvc_remote"], answers["model"])
    )
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
    """Drop the dataset configs, CI files and the network files that the answers did not
    pick (networks.py imports torch, which only the torch_mlp lock has)."""
    for config in (project / "conf" / "data").glob("*.yaml"):
        if config.stem != answers["dataset"]:
            config.unlink()
    if MODEL_LIBRARIES.get(answers["model"]) != "torch":
        for path in network_files(answers):
            (project / path).unlink()
    for provider, names in CI_FILES.items():
        for name in names if provider != answers["ci"] else ():
            path = project / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def import_project_module(project: Path, package: str, module: str, team_package: str = ""):
    """Import ``package.module`` from the baked project (the team's package) or its .venv
    (reproml), so bake and pipeline share code. What an earlier bake in this process imported
    is forgotten first: the machinery finds its project from the working directory."""
    forget = {"reproml", package, team_package}
    for name in [name for name in sys.modules if name.split(".")[0] in forget]:
        del sys.modules[name]
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    return importlib.import_module(f"{package}.{module}")


def install_demo_table(project: Path, answers: dict) -> Path:
    """Move the chosen demo table into ``data/raw/`` and drop the others."""
    tables = project / DEMO_TABLES_DIR
    path = project / "data" / "raw" / f"{answers['dataset']}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(tables / path.name, path)
    shutil.rmtree(tables)
    return path


def write_params(project: Path, answers: dict) -> Path:
    """params.yaml, composed by the project's own code. The model's hyperparameters are not
    checked against its class here (that imports scikit-learn, the slowest part of a bake):
    the template's tests check every shipped model file, and the params stage checks it
    again before anything trains."""
    params = import_project_module(project, "reproml", "tools.params", answers["package_name"])
    return params.write(project / "conf", project / "params.yaml", check_model=False)


def remote_url(project: Path, answers: dict) -> str:
    """The remote the answers name; the default local one is a sibling of the project, by
    absolute path, so every clone on this machine finds it. (``.dvc/config`` is the team's,
    not the template's: cruft updates skip it, see pyproject.toml's ``[tool.cruft]``.)"""
    if answers["dvc_remote_url"]:
        return answers["dvc_remote_url"]
    slug = answers["project_slug"]
    if answers["dvc_remote"] == "local":
        return str((project.parent / f"{slug}-dvc-remote").resolve())
    return DEFAULT_REMOTE_URLS[answers["dvc_remote"]].format(slug=slug)


def _run(project: Path, *command: str, env: dict | None = None, stdin: str | None = None):
    result = subprocess.run(
        command, cwd=project, capture_output=True, text=True, env=env, input=stdin
    )
    if result.returncode != 0:
        raise BakeError(f"`{' '.join(command[:3])}` failed:\n{result.stdout}{result.stderr}")
    return result


def find_uv() -> str | None:
    return os.environ.get("UV") or shutil.which("uv")


def create_environment(project: Path) -> None:
    """The project's locked environment in ``.venv``: offline from uv's cache if it can,
    else downloading (hash-checked against uv.lock either way)."""
    uv = find_uv()
    if not uv:
        from answer_rules import BAKE_REQUIREMENTS

        raise BakeError(f"baking needs uv. Fix: {BAKE_REQUIREMENTS['uv']}")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["UV_NO_PROGRESS"] = "1"
    command = [uv, "sync", "--frozen", "--quiet"]
    offline = subprocess.run(
        [*command, "--offline"], cwd=project, capture_output=True, text=True, env=env
    )
    if offline.returncode != 0:
        _run(project, *command, env=env)


def finish_environment() -> dict:
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def remove_bytecode(project: Path) -> None:
    """The project's own ``__pycache__`` from the bake's imports (the environment keeps its
    own, which later commands reuse): a fresh tree, and one a regenerated project (cruft)
    matches file for file."""
    for top in project.iterdir():
        if top.is_dir() and top.name not in (".venv", ".git"):
            for cache in list(top.rglob("__pycache__")):
                shutil.rmtree(cache)


def _git_identity(project: Path, answers: dict) -> list[str]:
    """Commit as the configured git user, or as the author when git has no identity yet."""
    configured = subprocess.run(
        ["git", "config", "user.email"], cwd=project, capture_output=True, text=True
    )
    if configured.returncode == 0 and configured.stdout.strip():
        return []
    email = f"{answers['project_slug']}@users.noreply.invalid"
    return ["-c", f"user.name={answers['author']}", "-c", f"user.email={email}"]


def write_cruft_state(project: Path, answers: dict) -> None:
    """Under cruft (its context names the template commit), write ``.cruft.json`` as cruft
    will, so the first commit holds it and the tree stays clean when cruft rewrites it."""
    if "_commit" not in answers:
        return
    state = {
        "template": answers["_template"],
        "commit": answers["_commit"],
        "checkout": None,
        "context": {"cookiecutter": answers},
        "directory": None,
    }
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"
    (project / ".cruft.json").write_text(text, encoding="utf-8")


# What `dvc init` writes to .dvc/.gitignore, and where `dvc add` keeps a file's copy (DVC 3's
# cache layout: files/md5/<first two hex digits>/<the rest>, read-only).
DVC_DIR_GITIGNORE = "/config.local\n/tmp\n/cache\n"
DVC_CACHE_FILES = Path(".dvc") / "cache" / "files" / "md5"
# Cache settings a user's global or system DVC configuration may set (a shared cache
# elsewhere, group permissions, links): with any of them, DVC's own `add` tracks the table.
OWN_CACHE_SETTINGS = {"dir", "local", "shared", "type"}


def init_repositories(project: Path, answers: dict, params_written=lambda: None) -> list[str]:
    """git init, then what `dvc init`, the remote's configuration and `dvc add` of the raw
    table write; returns the files DVC needs tracked. DVC's own ``Config`` writes
    .dvc/config; the rest (two ignore files, the .dvc file and the cache's copy) is written
    here, because importing ``dvc.repo`` in the fresh environment took 1.2 s of a 2.8 s bake.
    A tier-2 test demands the bytes DVC's ``Repo.init`` and ``Repo.add`` write
    (tests/test_bake_matrix.py); a cache configured outside the default goes through DVC,
    whose ``add`` reads dvc.yaml and so the params.yaml its paths come from: it waits for
    ``params_written`` first (composed beside it, and sooner or later than DVC's import)."""
    from dvc.config import Config

    _run(project, "git", "init", "-q", "-b", "main")
    dvc_dir = project / ".dvc"
    dvc_dir.mkdir()
    config = Config.init(str(dvc_dir))
    with config.edit() as edited:
        edited["hydra"] = {"enabled": "true"}
        edited["core"]["remote"] = REMOTE_NAME
        edited["remote"][REMOTE_NAME] = {"url": remote_url(project, answers), "verify": "true"}
    (dvc_dir / ".gitignore").write_text(DVC_DIR_GITIGNORE, encoding="utf-8")
    raw = project / "data" / "raw" / f"{answers['dataset']}.csv"
    if OWN_CACHE_SETTINGS & set(config["cache"]):
        from dvc.repo import Repo

        params_written()
        with Repo(str(project)) as repo:
            repo.add(str(raw.relative_to(project)))
    else:
        track_raw_table(project, raw)
    dvc_files = [".dvc/config", ".dvc/.gitignore", f"{raw.relative_to(project)}.dvc"]
    return [*dvc_files, "data/raw/.gitignore"]


def track_raw_table(project: Path, raw: Path) -> None:
    """What `dvc add <raw>` writes for one new file: its .dvc file, its git-ignore line and
    its read-only copy in the cache (the md5 by the project's own hashing)."""
    hashing = import_project_module(project, "reproml", "runtime.hashing")
    md5 = hashing.file_digest(raw, "md5")
    size = raw.stat().st_size
    raw.with_name(f"{raw.name}.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {size}\n  hash: md5\n  path: {raw.name}\n",
        encoding="utf-8",
    )
    (raw.parent / ".gitignore").write_text(f"/{raw.name}\n", encoding="utf-8")
    cached = project / DVC_CACHE_FILES / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    shutil.copyfile(raw, cached)
    cached.chmod(0o444)


def commit_everything(project: Path, answers: dict, dvc_files: list[str]) -> None:
    """The first commit, which must hold DVC's files: a git-ignored one (a user's global
    excludes naming ``data/`` or ``*.dvc``) is refused, as `dvc add` would refuse it."""
    write_cruft_state(project, answers)
    _run(project, "git", "add", "-A")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *dvc_files],
        cwd=project,
        capture_output=True,
        text=True,
    ).stdout.split()
    if ignored:
        raise BakeError(
            f"git ignores {', '.join(ignored)}, which DVC needs committed. Fix: remove the "
            "pattern that matches them from your git excludes (`git check-ignore -v <file>` "
            "names it), then bake again."
        )
    message = f"Bake {answers['project_name']} from the reproducible-ML template"
    _run(project, "git", *_git_identity(project, answers), "commit", "-q", "-m", message)


def finish(project: Path, answers: dict) -> None:
    """The half that runs in the project's environment. Composing params.yaml (Hydra) runs
    in a second process while this one sets up git and DVC: each mostly compiles the modules
    it imports, so on two cores the bake takes the longer of the two, not their sum."""
    composer = subprocess.Popen(
        [sys.executable, __file__, "params"],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    composer.stdin.write(json.dumps(answers))
    composer.stdin.close()

    def params_written() -> None:
        if composer.returncode is None:
            said = composer.stdout.read()
            if composer.wait() != 0:
                raise BakeError(f"composing params.yaml failed:\n{said}")

    try:
        dvc_files = init_repositories(project, answers, params_written)
        params_written()
    finally:
        if composer.poll() is None:
            composer.kill()
            composer.wait()
    commit_everything(project, answers, dvc_files)


def bake(project: Path, answers: dict) -> None:
    install_locks(project, answers)
    remove_unchosen(project, answers)
    install_demo_table(project, answers)
    create_environment(project)
    python = project / ".venv" / "bin" / "python"
    _run(project, str(python), __file__, env=finish_environment(), stdin=json.dumps(answers))
    remove_bytecode(project)
    # On stderr: cruft regenerates the template for `cruft diff`, whose stdout is the patch.
    print(f"Baked {project}. Next: cd {project.name} && make repro", file=sys.stderr)


if __name__ == "__main__":
    step = finish if sys.argv[1:] != ["params"] else write_params
    try:
        step(Path.cwd(), json.loads(sys.stdin.read()))
    except BakeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
