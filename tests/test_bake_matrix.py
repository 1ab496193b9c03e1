"""Tier 2: bake every Python x remote pair (the pairs that change the locks), cycling the
options that do not interact, and check what each bake contains."""

import configparser
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import (
    ACTIONLINT,
    CHOICES,
    LIBRARY_VERSION,
    LIBRARY_WHEELS,
    TEMPLATE,
    bake,
    baked_module,
    dataset_task,
    default_answers,
    matrix,
    model_target,
    project_package,
    row_id,
    run,
)
from project_setup import MODEL_LIBRARIES, lock_set_name, network_files

# Every family but the network, whose torch build is a download of several GB per Python:
# test_model_families.py bakes it once, and test_lock_sets checks every lock set it has.
BAKED_MODELS = [name for name in CHOICES["model"] if name != "torch_mlp"]
ROWS = matrix(
    ("python_version", "dvc_remote"),
    ("dataset", "model", "ci", "license"),
    {"model": BAKED_MODELS},
)
DATASET_ROWS = {"breast_cancer": 569, "wine": 178, "digits": 1797, "churn": 2000, "diabetes": 442}
EXTRAS = {"local": "", "s3": "[s3]", "gcs": "[gs]", "azure": "[azure]", "ssh": "[ssh]"}
RENDERED_FILES = {
    ".allowed_signers",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "LICENSE",
    "Makefile",
    "README.md",
    "docs/ci.md",
    "docs/environment.md",
    "docs/experiments.md",
    "docs/own-data.md",
    "docs/own-model.md",
    "docs/plots.md",
    "docs/releases.md",
    "docs/trust-model.md",
    "docs/verify-and-rebuild.md",
    "conf/config.yaml",
    "dvc.yaml",
    "params.yaml",
    "plots/templates/calibration.json",
    "plots/templates/class_curves.json",
    "plots/templates/confusion.json",
    "plots/templates/predicted_actual.json",
    "plots/templates/roc.json",
    "pyproject.toml",
    "requirements.lock",
    "runtime.lock",
    "ruff.toml",
    "uv.lock",
    "data/raw/.gitignore",
}
CI_FILES = {
    "github": {
        ".github/workflows/ci.yml",
        ".github/workflows/field-rebuild.yml",
        ".github/workflows/sweep.yml",
    },
    "gitlab": {".gitlab-ci.yml", ".gitlab/sweep.yml"},
    "none": set(),
}


def copied_tree(prefix: str, rename: str) -> set[str]:
    """The unconditional files of one template directory, under their baked name."""
    source = TEMPLATE / "{{cookiecutter.project_slug}}" / prefix
    return {
        f"{rename}/{path.relative_to(source)}"
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def expected_tree(answers: dict) -> set[str]:
    dataset = answers["dataset"]
    return (
        RENDERED_FILES
        | CI_FILES[answers["ci"]]
        | {f"conf/data/{dataset}.yaml", f"data/raw/{dataset}.csv.dvc"}
        | {
            f"conf/{group}/{name}"
            for group in ("model", "paths", "preprocess", "release", "split")
            for name in (
                path.name
                for path in (TEMPLATE / "{{cookiecutter.project_slug}}/conf" / group).iterdir()
            )
        }
        | copied_tree("{{cookiecutter.package_name}}", answers["package_name"])
        | copied_tree("wheels", "wheels")
        | copied_tree("tests", "tests")
    ) - unchosen_network(answers)


def unchosen_network(answers: dict) -> set[str]:
    """networks.py imports torch, so only a torch_mlp bake has it and its model file."""
    if MODEL_LIBRARIES.get(answers["model"]) == "torch":
        return set()
    return set(network_files(answers))


@pytest.fixture(scope="module", params=ROWS, ids=[row_id(row) for row in ROWS])
def baked(request, tmp_path_factory):
    answers = {**default_answers(), **request.param}
    slug = "proj-" + row_id(request.param).replace(".", "").replace("_", "-")
    answers["project_slug"] = slug.lower()
    answers["package_name"] = answers["project_slug"].replace("-", "_")
    project = bake(tmp_path_factory.mktemp("bake"), **answers)
    return project, answers


def tracked_files(project: Path) -> set[str]:
    listing = run(["git", "ls-files"], cwd=project).stdout
    return set(listing.splitlines())


def test_exact_file_tree(baked):
    project, answers = baked
    assert tracked_files(project) == expected_tree(answers)
    untracked = run(["git", "status", "--porcelain", "--ignored"], cwd=project).stdout
    assert untracked.splitlines() == [
        "!! .dvc/cache/",
        "!! .venv/",
        f"!! data/raw/{answers['dataset']}.csv",
    ]


def test_plain_files_are_copied_byte_for_byte(baked):
    """Files under _copy_without_render must reach the project unrendered (they may hold
    `{{` legitimately, e.g. in an f-string)."""
    project, answers = baked
    source = TEMPLATE / "{{cookiecutter.project_slug}}"
    copied = copied_tree("{{cookiecutter.package_name}}", answers["package_name"])
    for name in copied - unchosen_network(answers):
        original = source / "{{cookiecutter.package_name}}" / name.split("/", 1)[1]
        assert (project / name).read_bytes() == original.read_bytes(), name


def test_nothing_is_left_unrendered(baked):
    project, _ = baked
    for name in tracked_files(project):
        if name.endswith(".whl"):
            continue  # the machinery's wheels, copied as built (cookiecutter.json)
        text = (project / name).read_text(encoding="utf-8")
        # `${{ ... }}` is a GitHub Actions expression, not a template leftover.
        assert not re.search(r"(?<!\$)\{\{|\{%", text), name


def test_every_data_file_parses(baked):
    project, _ = baked
    parsed = 0
    for name in tracked_files(project):
        path = project / name
        if path.suffix in (".yaml", ".yml", ".dvc"):
            yaml.safe_load(path.read_text())
        elif path.suffix in (".toml", ".lock") and name.endswith(("toml", "uv.lock")):
            tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            continue
        parsed += 1
    assert parsed >= 12
    config = configparser.ConfigParser()
    config.read(project / ".dvc" / "config")
    assert config.sections()


def test_hydra_composes_to_the_committed_params(baked):
    project, answers = baked
    params = baked_module(project, "reproml.runtime.params")
    committed = (project / "params.yaml").read_text()
    assert params.compose(project / "conf") == committed
    composed = yaml.safe_load(committed)
    assert composed["data"]["name"] == answers["dataset"]
    assert composed["model"]["_target_"] == model_target(
        answers["model"], dataset_task(answers["dataset"])
    )
    baked_module(project, "config").validate(composed)


def test_dvc_composes_the_same_bytes_as_make_params(baked, tmp_path):
    from dvc.utils.hydra import compose_and_dump

    project, _ = baked
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(project / "conf"), None, "config", str(project), [])
    assert out.read_bytes() == (project / "params.yaml").read_bytes()


@pytest.mark.parametrize("model", ["logreg", *MODEL_LIBRARIES])
def test_every_lock_set_holds_its_familys_library_and_no_other(model):
    """Every (Python, remote) pair has a lock set per library, torch's included (the bakes
    above install all but torch's), each with the chosen library alone."""
    libraries = {"lightgbm", "xgboost-cpu", "catboost", "torch", "skorch"}
    wanted = {"lightgbm": {"lightgbm"}, "xgboost": {"xgboost-cpu"}, "catboost": {"catboost"}}
    wanted["torch_mlp"] = {"torch", "skorch"}
    for python_version in CHOICES["python_version"]:
        for remote in CHOICES["dvc_remote"]:
            name = lock_set_name(python_version, remote, model)
            runtime = TEMPLATE / "{{cookiecutter.project_slug}}/.locks" / name / "runtime.lock"
            pinned = set(re.findall(r"^([a-z0-9-]+)==", runtime.read_text(), re.MULTILINE))
            assert pinned & libraries == wanted.get(model, set()), name


def test_locks_agree_with_pyproject(baked):
    project, answers = baked
    baked_module(project, "reproml.tools.locking").check(project)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f"=={answers['python_version']}.*"
    assert (project / ".python-version").read_text().strip() == answers["python_version"]
    extra = EXTRAS[answers["dvc_remote"]]
    assert pyproject["dependency-groups"]["pipeline"] == [
        f"reproml=={LIBRARY_VERSION}",
        f"dvc{extra}==3.67.1",
    ]
    lock = tomllib.loads((project / "uv.lock").read_text())
    names = {package["name"] for package in lock["package"]}
    assert answers["project_slug"] in names
    assert "numpy" in names and "dvc" in names
    runtime = (project / "runtime.lock").read_text()
    assert "scikit-learn==" in runtime and "dvc==" not in runtime
    # The machinery's runtime is a dependency of every stage through runtime.lock; its tools
    # are not.
    assert f"wheels/{LIBRARY_WHEELS['runtime']}" in runtime
    assert f"wheels/{LIBRARY_WHEELS['tools']}" not in runtime


def test_repositories_are_initialised_without_secrets(baked):
    project, answers = baked
    assert run(["git", "log", "--format=%s"], cwd=project).stdout.count("\n") == 1
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""
    config = configparser.ConfigParser()
    config.read(project / ".dvc" / "config")
    assert config["hydra"]["enabled"] == "true"
    assert config["core"]["remote"] == "storage"
    remote = config["'remote \"storage\"'"]
    assert remote["verify"] == "true"
    scheme = {"local": "/", "s3": "s3://", "gcs": "gs://", "azure": "azure://", "ssh": "ssh://"}
    assert remote["url"].startswith(scheme[answers["dvc_remote"]])
    assert not (project / ".dvc" / "config.local").exists()
    assert set(remote) == {"url", "verify"}


# What the hook once ran, and what it now writes itself: DVC's own `dvc init`, remote
# configuration and `dvc add`, through DVC's Python API.
DVC_INIT_AND_ADD = """
import sys
from dvc.repo import Repo

root, table, url = sys.argv[1:]
repo = Repo.init(root)
with repo.config.edit() as config:
    config["hydra"] = {"enabled": "true"}
    config["core"]["remote"] = "storage"
    config["remote"]["storage"] = {"url": url, "verify": "true"}
repo.add(table)
repo.close()
"""


def dvc_written(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under .dvc (its scratch tmp/ aside) and data/raw: its mode, and
    a file's sha256. What DVC's init and add leave, or what the bake wrote in their place."""
    found = {}
    for top in (root / ".dvc", root / "data" / "raw"):
        for path in sorted(top.rglob("*")):
            name = path.relative_to(root).as_posix()
            if name == ".dvc/tmp" or name.startswith(".dvc/tmp/"):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            found[name] = (path.stat().st_mode, digest)
    return found


def test_the_bakes_dvc_files_are_the_bytes_dvc_itself_writes(baked, tmp_path):
    """The hook writes what `dvc init` and `dvc add` of the raw table write (importing DVC's
    repository took 1.2 s of a 2.8 s bake). DVC itself, from the project's environment,
    writes the same files, bytes and modes into a fresh repository holding the same table."""
    project, answers = baked
    table = f"data/raw/{answers['dataset']}.csv"
    reference = tmp_path / "reference"
    (reference / "data" / "raw").mkdir(parents=True)
    shutil.copyfile(project / table, reference / table)
    shutil.copyfile(project / ".dvcignore", reference / ".dvcignore")
    run(["git", "init", "-q"], cwd=reference)
    config = configparser.ConfigParser()
    config.read(project / ".dvc" / "config")
    url = config["'remote \"storage\"'"]["url"]
    python = str(project / ".venv" / "bin" / "python")
    run([python, "-c", DVC_INIT_AND_ADD, str(reference), table, url], cwd=reference)
    for name in (".dvc/config", ".dvc/.gitignore", f"{table}.dvc", "data/raw/.gitignore"):
        assert (project / name).read_text() == (reference / name).read_text(), name
    assert dvc_written(project) == dvc_written(reference)


def test_a_git_ignored_dvc_file_fails_the_bake_naming_the_file(tmp_path):
    """`dvc add` refuses to write a .dvc file git ignores; so does the bake, which writes it
    itself (a global excludes file naming *.dvc), and it leaves no project behind."""
    excludes = tmp_path / "excludes"
    excludes.write_text("*.dvc\n")
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[core]\n\texcludesFile = {excludes}\n")
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(out)]
    result = run(command, cwd=tmp_path, check=False, env={"GIT_CONFIG_GLOBAL": str(gitconfig)})
    message = result.stdout + result.stderr
    assert result.returncode != 0
    # *.dvc also matches the .dvc folder; cookiecutter itself then logs its hook exception.
    assert "git ignores .dvc/config, .dvc/.gitignore, data/raw/breast_cancer.csv.dvc" in message
    assert "git check-ignore -v" in message
    assert list(out.iterdir()) == []


def test_a_cache_the_user_configured_elsewhere_receives_the_raw_table(tmp_path):
    """A shared cache set in the user's global DVC configuration is where DVC's own `dvc add`
    puts the raw table: the bake hands such a cache to DVC instead of writing .dvc/cache."""
    shared = tmp_path / "shared-cache"
    (tmp_path / "xdg" / "dvc").mkdir(parents=True)
    (tmp_path / "xdg" / "dvc" / "config").write_text(f"[cache]\n    dir = {shared}\n")
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(out)]
    run(command, cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    project = out / "my-ml-project"
    dvc_file = yaml.safe_load((project / "data/raw/breast_cancer.csv.dvc").read_text())
    md5 = dvc_file["outs"][0]["md5"]
    assert (shared / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert not (project / ".dvc" / "cache" / "files").exists()
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""


def test_raw_data_is_written_and_fits_its_shipped_schema(baked):
    project, answers = baked
    raw = project / "data" / "raw" / f"{answers['dataset']}.csv"
    config = baked_module(project, "config").load_params(project / "params.yaml")
    table = baked_module(project, "data").read_raw(raw, config.data)
    assert table.num_rows == DATASET_ROWS[answers["dataset"]]
    dvc_file = yaml.safe_load((project / "data/raw" / f"{answers['dataset']}.csv.dvc").read_text())
    md5 = baked_module(project, "reproml.runtime.hashing").file_digest(raw, "md5")
    assert dvc_file["outs"][0]["md5"] == md5


def test_shipped_numeric_schemas_are_what_make_data_infers(baked):
    """conf/data/*.yaml for scikit-learn's tables are exactly the inferred starting schema
    (the mixed demo's differs on purpose: its household column is moved to drop)."""
    project, answers = baked
    if answers["dataset"] == "churn":
        pytest.skip("the churn schema is hand-edited from the inferred one")
    name = answers["dataset"]
    inferred = baked_module(project, "reproml.tools.ingest").infer_schema(
        project / "data" / "raw" / f"{name}.csv", "target", name, f"{name}.csv"
    )
    assert yaml.safe_load((project / "conf" / "data" / f"{name}.yaml").read_text()) == inferred


def test_model_choices_are_the_shipped_model_files():
    model_files = TEMPLATE / "{{cookiecutter.project_slug}}" / "conf" / "model"
    assert set(CHOICES["model"]) == {path.stem for path in model_files.glob("*.yaml")}
    data_files = TEMPLATE / "{{cookiecutter.project_slug}}" / "conf" / "data"
    assert set(CHOICES["dataset"]) == {path.stem for path in data_files.glob("*.yaml")}


def test_package_name_is_used_throughout(baked):
    project, answers = baked
    assert project_package(project) == answers["package_name"]
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["cmd"] == f"python -m {answers['package_name']} stage train"
    makefile = (project / "Makefile").read_text()
    assert "TOOLS := $(PYTHON) -m reproml.tools" in makefile
    assert answers["package_name"] not in makefile  # the tools read it from pyproject.toml


# ---- bad answers through the real cookiecutter command line: nothing is written anywhere


BAD_CLI_ANSWERS = [
    ("project_slug=../escaped", "'..'"),
    ("project_slug=/tmp/reproml-absolute-escape", "absolute path"),
    ("package_name=os", "standard library"),
    ('project_name=Bad "quote"', "quote character"),
    ("author=\u202eevil", "U+202E"),
    ("description=", "must not be empty"),
]


@pytest.mark.parametrize(("answer", "rule"), BAD_CLI_ANSWERS)
def test_bad_answer_on_the_command_line_writes_nothing(answer, rule, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), answer]
    result = run([*command, "-o", str(out)], cwd=tmp_path, check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert rule in message and "nothing was written" in message, message
    assert "Traceback" not in message
    assert list(out.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    assert not Path("/tmp/reproml-absolute-escape").exists()


def test_a_choice_outside_the_list_is_refused_by_cookiecutter_itself(tmp_path):
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "dataset=iris"]
    result = run([*command, "-o", str(tmp_path)], cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "iris provided for choice variable dataset" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_interactive_prompts_bake_the_chosen_options(tmp_path):
    answers = "\n".join(["Fancy Model", "", "", "", "", "", "2", "3", "", "", "2", "3", ""])
    command = [sys.executable, "-m", "cookiecutter", str(TEMPLATE), "-o", str(tmp_path)]
    run(command, cwd=tmp_path, input=answers, timeout=120)
    project = tmp_path / "fancy-model"
    composed = yaml.safe_load((project / "params.yaml").read_text())
    assert composed["data"]["name"] == "wine"
    assert composed["model"]["_target_"] == model_target("hist_gb")
    assert (project / ".gitlab-ci.yml").is_file() and not (project / ".github").exists()
    assert (project / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert project_package(project) == "fancy_model"


def test_baking_twice_into_the_same_place_is_refused_and_keeps_the_first(output_dir):
    project = bake(output_dir)
    marker = project / "my-notes.txt"
    marker.write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(output_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "already exists" in result.stdout + result.stderr
    assert marker.read_text() == "keep me"


# ---- generated CI: actionlint, pinned actions, minimal permissions, only make targets

SETUP_COMMANDS = {"python -m pip install uv==0.13.9", "make setup"}
WORKFLOW_ROWS = [row for row in ROWS if row["ci"] != "none"]
# The one command that is not a bare make call: a matrix job's list read from a make target,
# assigned on a line of its own, so that a failing target fails the step (`echo "x=$(make
# ...)"` would pass with an empty list).
MATRIX_OUTPUT = re.compile(
    r'(\w+)="\$\((make --no-print-directory [\w-]+)\)"\necho "\1=\$\1" >> "\$GITHUB_OUTPUT"\n?'
)
# GitLab's sweep plan: a child pipeline written by a make target, kept as an artifact.
CHILD_PIPELINE_OUTPUT = re.compile(r"(make --no-print-directory [\w-]+) > [\w.-]+\.yml")
# What installs git and make on an image that lacks them (python:*-slim).
PLATFORM_SETUP = re.compile(r"command -v git make >/dev/null \|\| \{ apt-get .* \}")
# The jobs that write (each pushes only its rebuild records, a git note), and the ones that
# read notes without writing (the releases' list checks the claims' chain, which names
# records). A sweep's points push nothing: their results are artifacts.
WRITING_JOBS = {"reproduce", "rebuild"}
NOTES_READERS = {"report", "releases"}


def workflows(project: Path) -> dict[str, dict]:
    folder = project / ".github" / "workflows"
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yml"))}


def ci_commands(project: Path, ci: str) -> list[str]:
    """Every shell command the generated CI runs, in order."""
    if ci == "github":
        return [
            step["run"]
            for workflow in workflows(project).values()
            for job in workflow["jobs"].values()
            for step in job["steps"]
            if "run" in step
        ]
    commands = []
    for file in (".gitlab-ci.yml", ".gitlab/sweep.yml"):
        pipeline = yaml.safe_load((project / file).read_text())
        commands += pipeline["default"]["before_script"]
        for name, job in pipeline.items():
            if name not in ("default", "variables"):
                commands += job.get("script", []) + job.get("after_script", [])
    return commands


def test_ci_runs_only_make_targets_the_end_to_end_tests_run(baked):
    project, answers = baked
    if answers["ci"] == "none":
        assert not (project / ".github").exists() and not (project / ".gitlab-ci.yml").exists()
        return
    commands = ci_commands(project, answers["ci"])
    matrix = {
        c: MATRIX_OUTPUT.fullmatch(c).group(2) for c in commands if MATRIX_OUTPUT.fullmatch(c)
    }
    matrix |= {
        c: CHILD_PIPELINE_OUTPUT.fullmatch(c).group(1)
        for c in commands
        if CHILD_PIPELINE_OUTPUT.fullmatch(c)
    }
    targets = {c for c in commands if c.startswith("make ") and c not in matrix}
    targets |= {call.replace(" --no-print-directory", "") for call in matrix.values()}
    platform_setup = {c for c in commands if PLATFORM_SETUP.fullmatch(c)}
    assert set(commands) - targets - platform_setup - set(matrix) == SETUP_COMMANDS - targets
    from test_end_to_end import TARGETS_RUN_END_TO_END

    assert {target.split()[1] for target in targets} <= TARGETS_RUN_END_TO_END
    assert {"make rebuild", "make status", "make check-params", "make check-lock"} <= targets
    assert "make field-rebuild" in targets


def test_github_workflows_pass_actionlint_with_pinned_actions_and_read_only_tokens(baked):
    project, answers = baked
    if answers["ci"] != "github":
        pytest.skip("this row bakes no GitHub workflow")
    folder = project / ".github" / "workflows"
    result = run([ACTIONLINT, *map(str, sorted(folder.glob("*.yml")))], cwd=project, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for file, workflow in workflows(project).items():
        assert workflow["permissions"] == {"contents": "read"}, file
        for name, job in workflow["jobs"].items():
            writes = name in WRITING_JOBS
            assert job.get("permissions") == ({"contents": "write"} if writes else None), name
            checkout = job["steps"][0]
            fetches_notes = writes or name in NOTES_READERS
            assert checkout["with"]["persist-credentials"] is fetches_notes, name
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_every_job_that_reads_history_or_tags_checks_out_all_of_it(baked):
    """A gate that reads releases in a shallow, tagless checkout would pass on nothing."""
    project, answers = baked
    if answers["ci"] == "github":
        for file, workflow in workflows(project).items():
            for name, job in workflow["jobs"].items():
                runs = " ".join(step.get("run", "") for step in job["steps"])
                if re.search(r"check-releases|rebuild|release-list|report", runs):
                    options = job["steps"][0]["with"]
                    assert options.get("fetch-depth") == 0, (file, name)
                    assert options.get("fetch-tags") is True, (file, name)
    elif answers["ci"] == "gitlab":
        pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        for name, job in pipeline.items():
            if isinstance(job, dict) and "script" in job:
                runs = " ".join(job["script"])
                if re.search(r"check-releases|rebuild|report", runs):
                    extends = job.get("extends")
                    assert extends == ".with-remote" or (
                        pipeline[extends]["extends"] == ".with-remote"
                    ), name
        assert pipeline[".with-remote"]["variables"]["GIT_DEPTH"] == "0"


KEY_SECRET = "REPROML_SIGNING_KEY"
KEY_ENVIRONMENT = "reproml-records"


def test_the_signing_key_reaches_no_pull_request_or_tag_push_job(baked):
    """The key goes only to jobs of the protected environment that run on the default branch
    or on a schedule: never to code under review (pull requests) or on any pushed tag."""
    project, answers = baked
    if answers["ci"] == "github":
        for file, workflow in workflows(project).items():
            triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
            for name, job in workflow["jobs"].items():
                text = yaml.safe_dump(job)
                if f"secrets.{KEY_SECRET}" not in text:
                    continue
                assert job.get("environment") == KEY_ENVIRONMENT, (file, name)
                assert "make signing-key" not in text, (file, name)  # no key left on disk
                if "pull_request" in triggers or "push" in triggers:
                    condition = job["if"]
                    assert "github.event_name == 'push'" in condition, (file, name)
                    assert "github.ref == 'refs/heads/main'" in condition, (file, name)
                else:
                    assert set(triggers) <= {"schedule", "workflow_dispatch"}, (file, name)
                for step in job["steps"]:  # the key is given to the signing steps only
                    if KEY_SECRET in str(step.get("env", {})):
                        assert re.fullmatch(r"make (field-)?rebuild", step["run"]), step
                assert KEY_SECRET not in str(job.get("env", {})), (file, name)
    elif answers["ci"] == "gitlab":
        pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        assert KEY_SECRET not in str(pipeline.get("variables", {}))
        signing_jobs = {
            name
            for name, job in pipeline.items()
            if isinstance(job, dict) and "script" in job and job.get("extends") == ".with-key"
        }
        assert signing_jobs == {"reproduce", "field-rebuild"}
        assert pipeline[".with-key"]["environment"]["name"] == KEY_ENVIRONMENT
        for name in signing_jobs:
            rules = " ".join(rule["if"] for rule in pipeline[name]["rules"])
            assert (
                "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rules
                or '$CI_PIPELINE_SOURCE == "schedule"' in rules
            ), name
        for name, job in pipeline.items():
            if isinstance(job, dict) and "script" in job and name not in signing_jobs:
                assert "PUSH_RECORDS" not in str(job.get("variables", {})), name
                assert "make signing-key" not in job["script"], name


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter the template relies on really lints: a bad expression fails."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.nonexistent_context }}\n"
    )
    result = run([ACTIONLINT, str(broken)], cwd=tmp_path, check=False)
    assert result.returncode != 0


def test_shipped_demo_tables_are_what_demo_data_writes_today(tmp_path):
    """Baking only moves a shipped table into place, and a project's tests read a shipped
    fixture: each must be what tests/demo_data.py writes."""
    from update_demo_tables import DEMO_TABLES, MIXED_FIXTURE, write_fixture, write_tables

    fresh = write_tables(tmp_path)
    assert sorted(path.name for path in DEMO_TABLES.iterdir()) == sorted(p.name for p in fresh)
    pairs = [(DEMO_TABLES / path.name, path) for path in fresh]
    pairs.append((MIXED_FIXTURE, write_fixture(tmp_path / "fixture" / "mixed.csv")))
    for shipped, path in pairs:
        assert shipped.read_bytes() == path.read_bytes(), f"{shipped}: run `make demo-tables`"
