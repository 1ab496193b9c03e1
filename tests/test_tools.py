"""Tier 3: the tools teams already run, for real. A cookiecutter with nothing beside it but
git and uv (a bare virtualenv, and `uvx`), cruft's whole cycle against a real template
commit, and pre-commit's hooks on real commits."""

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LIBRARY_WHEELS, TEMPLATE, UV, bake, chosen_model, project_package, run
from test_end_to_end import Project

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tools")]
COOKIECUTTER = "cookiecutter==2.7.1"
TEMPLATE_SOURCES = "{{cookiecutter.project_slug}}"


def bare_cookiecutter(root: Path) -> Path:
    """A virtualenv holding cookiecutter and what it needs, nothing else."""
    venv = root / "only-cookiecutter"
    run(
        [
            UV,
            "venv",
            "-q",
            "--python",
            f"{sys.version_info.major}.{sys.version_info.minor}",
            str(venv),
        ],
        cwd=root,
    )
    run(
        [UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), COOKIECUTTER],
        cwd=root,
    )
    for module in ("sklearn", "dvc", "hydra", "pandas"):
        missing = run(
            [str(venv / "bin" / "python"), "-c", f"import {module}"], cwd=root, check=False
        )
        assert missing.returncode != 0, f"{module} is importable beside cookiecutter"
    return venv / "bin" / "cookiecutter"


def assert_freshly_baked(project: Path) -> None:
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""
    assert (project / ".venv" / "bin" / "python").is_file()
    # The project's own folders hold no bytecode; its .venv keeps what the bake compiled.
    caches = project.glob("*/**/__pycache__")
    assert not [cache for cache in caches if cache.relative_to(project).parts[0] != ".venv"]
    Project(project).make("check-params", "check-lock", "check-env")


def test_bake_with_a_cookiecutter_that_has_nothing_beside_it(tmp_path):
    cookiecutter = bare_cookiecutter(tmp_path)
    out = tmp_path / "out"
    run([str(cookiecutter), "--no-input", str(TEMPLATE), "-o", str(out)], cwd=tmp_path)
    assert_freshly_baked(out / "my-ml-project")


def test_bake_with_uvx(tmp_path):
    out = tmp_path / "out"
    command = [UV, "tool", "run", "--from", COOKIECUTTER, "cookiecutter", "--no-input"]
    run([*command, str(TEMPLATE), "-o", str(out), "dataset=churn"], cwd=tmp_path)
    assert_freshly_baked(out / "my-ml-project")


def test_bake_with_pipx_run(tmp_path):
    out = tmp_path / "out"
    pipx = {"PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "pipx-bin")}
    command = [UV, "tool", "run", "--from", "pipx==1.18.4", "pipx", "run", "--spec"]
    command += [COOKIECUTTER, "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(out)]
    run(command, cwd=tmp_path, env=pipx)
    assert_freshly_baked(out / "my-ml-project")


def test_without_uv_the_bake_names_the_install_command_and_writes_nothing(tmp_path):
    cookiecutter = bare_cookiecutter(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    without_uv = {"UV": "", "PATH": "/usr/bin:/bin"}
    assert shutil.which("uv", path=without_uv["PATH"]) is None
    refused = run(
        [str(cookiecutter), "--no-input", str(TEMPLATE), "-o", str(out)],
        cwd=tmp_path,
        env=without_uv,
        check=False,
    )
    assert refused.returncode != 0
    assert "uv (install it: python3 -m pip install uv)" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert list(out.iterdir()) == []


# ---- cruft ---------------------------------------------------------------------------------


def git_commit_all(repo: Path, message: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    run(["git", "add", "-A"], cwd=repo)
    run(["git", *identity, "commit", "-qm", message], cwd=repo)


def template_repository(root: Path) -> Path:
    """The template's files as they are now, committed to a git repository of their own."""
    listed = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=TEMPLATE
    ).stdout
    repo = root / "template"
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE / name
        if source.is_file() and not name.startswith((".venv/", ".bootstrap/", "build/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    git_commit_all(repo, "Template v1")
    return repo


def cruft(*args: str, cwd: Path, check: bool = True):
    return run([str(Path(sys.executable).parent / "cruft"), *args], cwd=cwd, check=check)


def test_cruft_create_check_diff_and_an_update_that_retrains_nothing(tmp_path):
    template = template_repository(tmp_path)
    cruft("create", "--no-input", str(template), "--output-dir", str(tmp_path), cwd=tmp_path)
    project = Project(tmp_path / "my-ml-project")

    # .cruft.json is in the first commit, and names no temporary path.
    assert run(["git", "status", "--porcelain"], cwd=project.path).stdout == ""
    committed = run(["git", "show", "HEAD:.cruft.json"], cwd=project.path).stdout
    state = json.loads(committed)
    paths = [v for v in state["context"]["cookiecutter"].values() if str(v).startswith("/")]
    assert paths == [str(template)], paths
    assert cruft("check", cwd=project.path).returncode == 0
    diff = cruft("diff", "--exit-code", cwd=project.path)
    assert diff.stdout.strip() == ""

    project.make("setup", "repro")
    project.git("add", "-A")
    project.git("commit", "-qm", "First model")
    model = hashlib.sha256((project.path / "models" / "model.pkl").read_bytes()).hexdigest()

    # The template moves on: its README, a conf file and a stage's code (not its computation).
    sources = template / TEMPLATE_SOURCES
    (sources / "README.md").write_text((sources / "README.md").read_text() + "\nTemplate v2.\n")
    conf = sources / "conf" / "model" / f"{chosen_model(project.path)}.yaml"
    conf.write_text("# Template v2: a note on this model family.\n" + conf.read_text())
    stage = sources / "{{cookiecutter.package_name}}" / "stages" / "evaluate.py"
    stage.write_text(stage.read_text().replace('"""', '"""Template v2. ', 1))
    git_commit_all(template, "Template v2")

    cruft("update", "-y", cwd=project.path)
    assert not list(project.path.rglob("*.rej"))
    changed = run(["git", "status", "--porcelain"], cwd=project.path).stdout.split("\n")
    package = project_package(project.path)
    assert sorted(line[3:] for line in changed if line) == sorted(
        [
            ".cruft.json",
            "README.md",
            str(conf.relative_to(sources)),
            f"{package}/stages/evaluate.py",
        ]
    )
    assert "Template v2." in (project.path / "README.md").read_text()
    project.git("add", "-A")
    project.git("commit", "-qm", "Template v2")
    assert cruft("check", cwd=project.path).returncode == 0

    project.make("params")
    rerun = project.make("repro").stdout
    # evaluate's code changed, so it reruns; what it writes did not, so verify (which depends
    # on the outputs it compares) has nothing new to compare.
    for stage_name in ("prepare", "train", "verify"):
        assert f"Stage '{stage_name}' didn't change" in rerun, rerun
    assert "Running stage 'evaluate'" in rerun, rerun
    after = hashlib.sha256((project.path / "models" / "model.pkl").read_bytes()).hexdigest()
    assert after == model


# The template commit projects were last baked from (the previous release of the template,
# whose machinery was a folder, reproml/, beside the team's package): a project baked there
# must take this version with `cruft update`, with no .rej file.
PREVIOUS_TEMPLATE_COMMIT = "9fdce0bfcbbf00ecdd0dadbfe4fb61637d11b4be"


def previous_template(root: Path) -> Path:
    """The template at PREVIOUS_TEMPLATE_COMMIT, committed to a repository of its own."""
    template = root / "template"
    template.mkdir()
    tarball = root / "previous.tar"
    tarball.write_bytes(
        subprocess.run(
            ["git", "archive", "--format=tar", PREVIOUS_TEMPLATE_COMMIT],
            cwd=TEMPLATE,
            capture_output=True,
            check=True,
        ).stdout
    )
    run(["tar", "-xf", str(tarball), "-C", str(template)], cwd=root)
    run(["git", "init", "-q", "-b", "main"], cwd=template)
    git_commit_all(template, "The previous template")
    return template


def move_to_this_template(template: Path, root: Path) -> None:
    """The template repository moves to this version: every file as it is now."""
    current = template_repository(root / "current")
    run(["git", "rm", "-rq", "."], cwd=template)
    for path in current.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(current).parts:
            target = template / path.relative_to(current)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    git_commit_all(template, "This template")


def rebuilt_wheel(project: Project, root: Path, part: str, edit, setup: bool = True) -> None:
    """A new wheel of one part of the library (``runtime`` or ``tools``), its source edited by
    ``edit``, put in the project's wheels/ under the same name, as a template update brings
    one; then the project's locks follow (`make lock`) and, with ``setup``, its .venv."""
    source = root / f"library-{part}"
    shutil.copytree(TEMPLATE / "library" / part, source)
    edit(source / "src" / "reproml" / part)
    built = run(
        [
            UV,
            "build",
            "--quiet",
            "--wheel",
            "--offline",
            "--out-dir",
            str(root / part),
            str(source),
        ],
        cwd=root,
    )
    assert built.returncode == 0
    (wheel,) = (root / part).glob("*.whl")
    shutil.copyfile(wheel, project.path / "wheels" / wheel.name)
    project.make("lock", *(["setup"] if setup else []))


def test_cruft_update_moves_a_project_onto_the_library_and_its_models_rebuild_the_same(
    tmp_path,
):
    """A project baked with the machinery as a folder (reproml/) and released takes this
    version: the folder goes, the wheels come, the pipeline reruns to the same model (the
    runtime is a new dependency of every stage) and verify matches; the release made before
    still rebuilds MATCH with its own machinery. Then a new tools wheel retrains nothing, and
    a new runtime wheel reruns every stage, to the same bytes."""
    from test_registry import set_up_signing

    template = previous_template(tmp_path)
    cruft("create", "--no-input", str(template), "--output-dir", str(tmp_path), cwd=tmp_path)
    project = Project(tmp_path / "my-ml-project")
    project.make("setup")
    set_up_signing(project, tmp_path / "keys")
    project.make("repro")
    project.git("add", "-A")
    project.git("commit", "-qm", "First model, on the previous template")
    project.dvc("push")
    project.make("release", "VERSION=v1.0.0")
    model = (project.path / "models" / "model.pkl").read_bytes()
    assert (project.path / "reproml" / "runtime" / "verification.py").is_file()

    move_to_this_template(template, tmp_path)
    cruft("update", "-y", cwd=project.path)
    assert not list(project.path.rglob("*.rej"))
    # The folder's files are gone; what Python left there (ignored bytecode) is not the
    # template's to delete.
    assert not list((project.path / "reproml").rglob("*.py"))
    project.git("add", "-A")
    project.git("commit", "-qm", "Update from the template")
    python = run(["git", "ls-files", "*.py"], cwd=project.path).stdout.split()
    package = project_package(project.path)
    assert python and all(path.startswith((f"{package}/", "tests/")) for path in python)
    assert sorted(path.name for path in (project.path / "wheels").iterdir()) == sorted(
        LIBRARY_WHEELS.values()
    )
    project.make("setup", "params", "repro")
    assert (project.path / "models" / "model.pkl").read_bytes() == model
    report = json.loads((project.path / "reports" / "verify.json").read_text())
    assert report["result"] == "match" and "train" in report["rerun"]
    project.git("add", "-A")
    project.git("commit", "-qm", "Retrained on the library: the same model")
    assert project.status_is_clean()

    # The release made before the update rebuilds with its own machinery (its reproml/).
    rebuilt = project.make("rebuild", "REV=v1.0.0")
    assert "MISMATCH" not in rebuilt.stdout and "MATCH" in rebuilt.stdout, rebuilt.stdout

    # A new tools wheel (a new line in `make report`) retrains nothing.
    def new_report_line(tools: Path) -> None:
        report = tools / "report.py"
        report.write_text(
            report.read_text()
            + "\n\n_first = format_report\n\n\n"
            + "def format_report(data: dict) -> str:\n"
            + "    return _first(data) + 'tools v2: a new line\\n'\n"
        )

    rebuilt_wheel(project, tmp_path, "tools", new_report_line)
    assert "tools v2: a new line" in project.make("report").stdout
    assert run(["git", "diff", "--quiet", "runtime.lock"], cwd=project.path).returncode == 0
    status = project.dvc("status")
    assert "changed" not in status.stdout, status.stdout

    # A new runtime wheel reruns every stage, to the same bytes, and verify matches.
    def runtime_comment(runtime: Path) -> None:
        (runtime / "hashing.py").write_text("# runtime v2\n" + (runtime / "hashing.py").read_text())

    rebuilt_wheel(project, tmp_path, "runtime", runtime_comment, setup=False)
    assert run(["git", "diff", "--quiet", "runtime.lock"], cwd=project.path, check=False).returncode
    # The same version, other bytes: until `make setup` installs it, the stages refuse to run
    # on the old one (the drift check compares the installed files with the wheel's).
    refused = project.make("repro", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "- reproml-runtime as in ./wheels/" in said, said
    project.make("setup")
    first_line = "import reproml.runtime.hashing as h; print(open(h.__file__).readline())"
    installed = run([".venv/bin/python", "-c", first_line], cwd=project.path).stdout
    assert installed.startswith("# runtime v2")
    rerun = project.make("repro").stdout
    assert "Running stage 'train'" in rerun and "Running stage 'verify'" in rerun, rerun
    assert (project.path / "models" / "model.pkl").read_bytes() == model
    report = json.loads((project.path / "reports" / "verify.json").read_text())
    assert report["result"] == "match"


# ---- pre-commit ----------------------------------------------------------------------------


def commit_refused(project: Project, *paths: str, env: dict) -> str:
    run(["git", "add", "-f", *paths], cwd=project.path)
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    refused = run(
        ["git", *identity, "commit", "-qm", "try"], cwd=project.path, env=env, check=False
    )
    run(["git", "reset", "-q"], cwd=project.path)
    assert refused.returncode != 0
    return refused.stdout + refused.stderr


def test_pre_commit_hooks_run_clean_and_refuse_what_breaks_reproducibility(tmp_path):
    project = Project(bake(tmp_path))
    env = {**project.env, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    project.make("setup", "HOOKS=1", env=env)
    assert (project.path / ".git" / "hooks" / "pre-commit").is_file()
    pre_commit = str(project.path / ".venv" / "bin" / "pre-commit")
    clean = run([pre_commit, "run", "--all-files"], cwd=project.path, env=env)
    assert "Failed" not in clean.stdout

    data = next((project.path / "data" / "raw").glob("*.csv")).relative_to(project.path)
    said = commit_refused(project, str(data), env=env)
    assert f"{data} is tracked by DVC" in said and "git rm --cached" in said

    big = project.path / "notes" / "dump.bin"
    big.parent.mkdir()
    big.write_bytes(b"\0" * 600 * 1024)
    said = commit_refused(project, "notes/dump.bin", env=env)
    assert re.search(r"notes/dump\.bin is 600 KB, over the 500 KB limit", said)
    shutil.rmtree(big.parent)

    conf = project.path / "conf" / "config.yaml"
    conf.write_text(conf.read_text().replace("seed: 42", "seed: 43"))
    assert "seed: 43" in conf.read_text()
    said = commit_refused(project, "conf/config.yaml", env=env)
    assert "params.yaml is stale" in said


# ---- plots and experiments -----------------------------------------------------------------

PLOT_FILES = ("confusion", "roc", "precision_recall", "calibration", "importance")


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
def test_plots_are_byte_identical_in_verifys_rerun_and_drawn_offline(dataset, tmp_path):
    project = Project(bake(tmp_path, dataset=dataset))
    project.make("setup", "repro")
    plots = project.path / "plots" / "tables"
    # verify reran the pipeline in isolation: every plot table came out byte-identical.
    report = json.loads((project.path / "reports" / "verify.json").read_text())
    checks = {check["output"]: check for check in report["checks"]}
    for name in PLOT_FILES:
        check = checks[f"plots/tables/{name}.csv"]
        assert check["level"] == "strict" and check["result"] == "match", check
    # Each class's curve is named for the legend with its AUC, to three decimals.
    roc_rows = list(csv.DictReader(io.StringIO((plots / "roc.csv").read_text())))
    curves = {row["curve"] for row in roc_rows}
    assert len(curves) == len({row["class"] for row in roc_rows})
    assert len(curves) == (1 if dataset == "breast_cancer" else 3)
    assert all(re.fullmatch(r".+ \(AUC [01]\.\d{3}\)", curve) for curve in curves), curves

    drawn = project.make("plots").stdout
    index = project.path / "build" / "plots" / "index.html"
    assert str(index.relative_to(project.path)) in drawn or str(index) in drawn
    page = index.read_text()
    assert "<script" not in page and "http" not in page
    svgs = sorted((project.path / "build" / "plots").glob("*.svg"))
    assert len(svgs) == len(PLOT_FILES)
    svg_of = {svg.name.removeprefix("plots_tables_").partition(".csv")[0]: svg for svg in svgs}
    roc = svg_of["roc"].read_text()
    assert all(f">{curve}<" in roc for curve in curves), curves
    # The layers the templates add: the diagonals, and the count in each confusion cell.
    assert "role-mark diagonal_marks" in roc and ">chance (AUC 0.500)<" in roc
    assert "role-mark diagonal_marks" in svg_of["calibration"].read_text()
    assert "role-mark counts_marks" in svg_of["confusion"].read_text()

    table = project.make("experiments", env={"COLUMNS": "400", "ALL": "1"}).stdout
    for column in ("accuracy", "roc_auc_macro", "data.name", "model._target_", "seed"):
        assert column in table, table
    for dropped in ("paths.", "per_class.", "config.py", "runtime.lock"):
        assert dropped not in table, table
