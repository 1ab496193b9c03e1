"""Tier 3: the generated CI, run for real on a project with two signed releases, a local DVC
remote and a bare git origin.

GitLab's pipeline runs under gitlab-ci-local (npm, pinned) with the shell executor, each job
in its own copy of the checkout (``--shell-isolation``, as a runner's fresh build directory).
GitHub's workflows run step by step in clones made as actions/checkout makes them
(tests/workflow_runner.py): no Docker-free GitHub runner exists. Each job gets one injected
fault, through the files and the remote a user would break, and must fail naming it.

The jobs' ``UV_CACHE_DIR`` is this machine's warm uv cache, so no job downloads packages;
``bench/ci_cache.py`` measures the pipeline's own caches, cold and warm.
"""

import contextlib
import json
import re
import shutil
from pathlib import Path

import pytest
import servers
import yaml
from conftest import UV, bake, project_package, run
from test_end_to_end import Project, model_override
from test_registry import change_parameter, commit_all, set_up_signing
from test_sweep import add_unseeded_noise
from workflow_runner import run_workflow, step_environment

# 4.74 and later need Node 22 (Set.prototype.union); this machine has Node 20.
GITLAB_CI_LOCAL = "gitlab-ci-local@4.73.0"
TEMPLATE = Path(__file__).resolve().parents[1]
BOOTSTRAP_BIN = Path(UV).parent  # the pinned uv and the Python it was installed with

pytestmark = pytest.mark.slow


def two_releases(root: Path, ci: str) -> dict:
    """bake -> release v1.0.0 -> change a parameter -> release v2.0.0, all pushed to a bare
    origin (main, tags) and a local DVC remote; signed with a key CI is given as a secret."""
    origin = root / "origin.git"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(origin)], cwd=root)
    project = Project(bake(root, ci=ci))
    project.make("setup")
    project.git("remote", "add", "origin", str(origin))
    key = set_up_signing(project, root / "keys")
    for version in ("v1.0.0", "v2.0.0"):
        if version != "v1.0.0":
            change_parameter(project)
        project.make("repro")
        commit_all(project, f"Model {version}")
        project.dvc("push")
        project.make("release", f"VERSION={version}")
    project.git("push", "-q", "origin", "main", "--tags")
    home = root / "home"  # the runners' HOME: no global git config, no ~/.ssh
    home.mkdir()
    uv_cache = run([UV, "cache", "dir"], cwd=root).stdout.strip()
    return {
        "project": project,
        "origin": origin,
        "root": root,
        "key": key,
        "remote": Path(project.dvc("remote", "list").stdout.split()[1]),
        "env": step_environment(home, BOOTSTRAP_BIN, uv_cache),
    }


def object_path(remote: Path, md5: str) -> Path:
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def released_model_md5(project: Project, tag: str) -> str:
    import yaml

    lock = yaml.safe_load(run(["git", "show", f"{tag}:dvc.lock"], cwd=project.path).stdout)
    outs = lock["stages"]["train"]["outs"]
    return next(out["md5"] for out in outs if out["path"] == "models/model.pkl")


class MovedAside:
    """An object taken off the DVC remote for one test, and put back afterwards."""

    def __init__(self, path: Path):
        self.path, self.aside = path, path.with_name(path.name + ".aside")

    def __enter__(self):
        self.path.rename(self.aside)

    def __exit__(self, *exc):
        self.aside.rename(self.path)


def report_figures(text: str) -> tuple[int, int, int]:
    """(field successes, field checked, rebuilds timed) from `make report`."""
    field = re.search(r"reproduction success, field:\s+(\d+)/(\d+)", text)
    timed = re.search(r"time to reproduce:\s+mean [\d.]+ s, p95 [\d.]+ s over (\d+) rebuilds", text)
    assert field and timed, text
    return int(field.group(1)), int(field.group(2)), int(timed.group(1))


def fresh_report(releases: dict, path: Path) -> str:
    """`make report` in a new clone of origin: only what CI pushed can count there."""
    clone = Project(path)
    run(["git", "clone", "-q", str(releases["origin"]), str(path)], cwd=path.parent)
    clone.make("setup")
    return clone.make("report").stdout


# ---- GitLab: gitlab-ci-local ------------------------------------------------------------


@pytest.fixture(scope="module")
def gitlab_ci_local():
    if not shutil.which("rsync"):
        pytest.skip(
            "gitlab-ci-local's shell executor copies each job's checkout with rsync, "
            "which is not installed (Debian package rsync; .ci/run installs it)"
        )
    try:
        runner = servers.npm_tool(GITLAB_CI_LOCAL, "gitlab-ci-local")
    except servers.Unavailable as why:
        pytest.skip(f"gitlab-ci-local cannot run here: {why}")
    version = run([str(runner), "--version"], cwd=TEMPLATE, check=False)
    if version.returncode != 0:  # an older Node, say: name what it printed
        said = (version.stderr or version.stdout).strip().splitlines()[-3:]
        pytest.skip(f"{GITLAB_CI_LOCAL} does not start here: {' / '.join(said)}")
    return runner


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory, gitlab_ci_local):
    releases = two_releases(tmp_path_factory.mktemp("gitlab"), "gitlab")
    return {**releases, "runner": gitlab_ci_local}


def gitlab_checkout(releases: dict, path: Path, own_origin: bool = False) -> Project:
    """What a GitLab runner checks out: a full clone of origin (GIT_DEPTH 0), tags included.
    With ``own_origin``, of a copy of origin, so the records a faulty run pushes stay there."""
    origin = releases["origin"]
    if own_origin:
        copy = path.parent / "origin.git"
        run(["git", "clone", "-q", "--bare", str(origin), str(copy)], cwd=path.parent)
        origin = copy
    run(["git", "clone", "-q", str(origin), str(path)], cwd=path.parent)
    return Project(path)


def pipeline(
    releases: dict,
    checkout: Project,
    *jobs: str,
    schedule: bool = False,
    variables: dict | None = None,
    file: str | None = None,
):
    """gitlab-ci-local in ``checkout``: the push pipeline, or the scheduled one (or the
    pipeline in ``file``, as a child pipeline GitLab would trigger)."""
    variables = {
        **(variables or {}),
        "DVC_REMOTE_IN_CI": "true",
        "REPROML_SIGNING_KEY": str(releases["key"]),  # a "File" variable: its path
        "UV_CACHE_DIR": releases["env"]["UV_CACHE_DIR"],
        # GitLab predefines it; gitlab-ci-local does not. The key's jobs run only there.
        "CI_DEFAULT_BRANCH": "main",
    }
    if schedule:
        variables["CI_PIPELINE_SOURCE"] = "schedule"
    command = [
        str(releases["runner"]),
        "--force-shell-executor",
        "--shell-isolation",
        "--no-color",
        "--concurrency=1",
        *([f"--file={file}"] if file else []),
        *[f"--variable={key}={value}" for key, value in variables.items()],
        *jobs,
    ]
    env = {**releases["env"], "GCL_IGNORE_PREDEFINED_VARS": "CI_PIPELINE_SOURCE"}
    return run(command, cwd=checkout.path, check=False, env=env, timeout=1800)


def job_status(output: str) -> dict[str, str]:
    return dict(
        (job, verdict) for verdict, job in re.findall(r"^ (PASS|FAIL) +(\S+)", output, re.M)
    )


@pytest.mark.xdist_group("gitlab-ci")
def test_gitlab_push_pipeline_runs_check_consistency_and_reproduce(gitlab, tmp_path):
    checkout = gitlab_checkout(gitlab, tmp_path / "checkout")
    ran = pipeline(gitlab, checkout)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output
    assert job_status(output) == {"check": "PASS", "consistency": "PASS", "reproduce": "PASS"}
    assert "json schema validated" in output
    assert "model@v1.0.0: complete" in output and "model@v2.0.0: complete" in output
    assert re.search(r"rebuild of HEAD \(\w+\): MATCH", output)
    assert "pushed the records to origin" in output


@pytest.mark.xdist_group("gitlab-ci")
def test_gitlab_scheduled_field_rebuild_feeds_the_report_and_a_warm_cache_hides_no_loss(
    gitlab, tmp_path
):
    checkout = gitlab_checkout(gitlab, tmp_path / "checkout")
    ran = pipeline(gitlab, checkout, schedule=True)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output
    assert job_status(output) == {"field-rebuild": "PASS"}  # a schedule runs nothing else
    assert re.search(r"model@v1\.0\.0 +MATCH", output) and re.search(
        r"model@v2\.0\.0 +MATCH", output
    )
    assert re.search(r"time to reproduce: .*\), sealed$", output, re.M), output  # SEALED=1
    successes, checked, timed = report_figures(fresh_report(gitlab, tmp_path / "fresh"))
    assert successes == checked >= 2 and timed >= 2

    # The fault: v1's model gone from the remote. The next scheduled run restores the DVC
    # cache the first one saved, which holds that model, and must still fail naming it.
    v1_model = object_path(gitlab["remote"], released_model_md5(checkout, "model@v1.0.0"))
    with MovedAside(v1_model):
        ran = pipeline(gitlab, checkout, schedule=True)
    output = ran.stdout + ran.stderr
    assert ran.returncode != 0 and job_status(output) == {"field-rebuild": "FAIL"}, output
    assert re.search(r"imported cache '\d+_dvc-", output), "the DVC cache was not restored"
    assert re.search(
        r"error: 1 of 2 releases no longer rebuild: model@v1\.0\.0 \(ERROR: "
        r"the DVC remote lacks what this release needs: models/model\.pkl",
        output,
    ), output
    assert re.search(r"model@v2\.0\.0 +MATCH", output), output
    assert "pushed the records to origin" in output  # a failed run still publishes them


def commit_fault(checkout: Project, message: str) -> None:
    checkout.git("add", "-A")
    checkout.git("commit", "-qm", message)


@pytest.mark.xdist_group("gitlab-ci")
@pytest.mark.parametrize(
    "job, fault",
    [
        ("check", "lint error"),
        ("consistency", "stale params.yaml"),
        ("reproduce", "a release's model missing from the remote"),
        ("reproduce", "committed dvc.lock with another model md5"),
    ],
)
def test_gitlab_each_injected_fault_fails_its_job(gitlab, tmp_path, job, fault):
    checkout = gitlab_checkout(gitlab, tmp_path / "checkout", own_origin=True)
    package = checkout.path / project_package(checkout.path)
    v1_model = object_path(gitlab["remote"], released_model_md5(checkout, "model@v1.0.0"))
    expected = {
        "lint error": "F401",
        "stale params.yaml": "params.yaml is stale",
        "a release's model missing from the remote": "model@v1.0.0",
        "committed dvc.lock with another model md5": "models/model.pkl",
    }[fault]
    if fault == "lint error":
        features = package / "features.py"
        features.write_text("import os\n" + features.read_text())
        commit_fault(checkout, "An unused import")
    elif fault == "stale params.yaml":
        family, key, old, new = model_override(checkout)
        conf = checkout.path / "conf" / "model" / f"{family}.yaml"
        conf.write_text(conf.read_text().replace(f"{key}: {old}", f"{key}: {new}"))
        commit_fault(checkout, "Changed conf, forgot make params")
    elif fault == "committed dvc.lock with another model md5":
        # v1's model under v2's code and params: pull and status pass, only a rebuild sees it.
        lock = checkout.path / "dvc.lock"
        current = released_model_md5(checkout, "HEAD")
        lock.write_text(
            lock.read_text().replace(current, released_model_md5(checkout, "model@v1.0.0"))
        )
        commit_fault(checkout, "A dvc.lock nobody produced")
    aside = MovedAside(v1_model) if "missing from the remote" in fault else None
    with aside or contextlib.nullcontext():
        ran = pipeline(gitlab, checkout, job)
    output = ran.stdout + ran.stderr
    assert ran.returncode != 0, output
    assert job_status(output).get(job) == "FAIL", output
    assert expected in output, output
    if job == "reproduce" and "missing" in fault:
        assert "model@v1.0.0: MISSING models/model.pkl" in output, output
    if fault == "committed dvc.lock with another model md5":
        assert re.search(r"rebuild of HEAD \(\w+\): MISMATCH", output), output
        assert re.search(r"train +MISMATCH", output), output


SWEEP = "seed=1,2"


def assert_sweep_named_the_failing_point(output: str, name: str) -> None:
    """Point 1 ran, verified and was compared, from this run's artifact; point 2 (unseeded
    noise) failed by name and left no result."""
    done = rf"{name}-1 \(seed=1\): ran and verified; result in build/sweep/{name}-1\.bundle"
    assert re.search(done, output), output
    assert re.search(rf"the point {name}-2 \(seed=2\) failed: .*MISMATCH", output), output
    # (gitlab-ci-local puts "<job> > " before each line a job prints)
    assert re.search(rf"(^|> ){name}-1 +match \(\d+ outputs\)", output, re.M), output
    assert "1 of 2 points have no result from this run: " in output, output
    assert f"{name}-2 (seed=2): its job left no result in this run" in output, output


@pytest.mark.xdist_group("gitlab-ci")
def test_gitlab_sweep_runs_a_child_pipeline_point_per_job_and_names_the_failing_point(
    gitlab, tmp_path
):
    checkout = gitlab_checkout(gitlab, tmp_path / "checkout", own_origin=True)
    add_unseeded_noise(checkout.path, "config.seed == 2")
    commit_fault(checkout, "Noise at seed 2")
    variables = {"SWEEP": SWEEP, "CI_PIPELINE_ID": "77"}
    planned = pipeline(gitlab, checkout, variables=variables)
    output = planned.stdout + planned.stderr
    assert planned.returncode == 0, output
    # A sweep pipeline runs the plan and the trigger job, nothing else. gitlab-ci-local
    # passes a trigger job without running it; the child pipeline it names runs below, from
    # the plan's artifact (copied back into the checkout), as GitLab would run it.
    assert set(job_status(output)) == {"sweep:plan", "sweep"}, output
    child = yaml.safe_load((checkout.path / "sweep-pipeline.yml").read_text())
    assert [entry["POINT"] for entry in child["sweep:point"]["parallel"]["matrix"]] == [
        "sweep-77-1",
        "sweep-77-2",
    ]
    ran = pipeline(gitlab, checkout, variables={"CI_PIPELINE_ID": "78"}, file="sweep-pipeline.yml")
    output = ran.stdout + ran.stderr
    assert ran.returncode != 0, output
    statuses = job_status(output)
    assert statuses.get("sweep:collect") == "FAIL", statuses
    points = {
        name: verdict
        for verdict, name in re.findall(r"^ (PASS|FAIL) +sweep:point: \[([\w-]+),", output, re.M)
    }
    assert points == {"sweep-77-1": "PASS", "sweep-77-2": "FAIL"}, output
    assert_sweep_named_the_failing_point(output, "sweep-77")
    pushed = run(["git", "ls-remote", "origin", "refs/exps/*"], cwd=checkout.path).stdout
    assert pushed == "", pushed  # results travel as the pipeline's artifacts, not refs


# ---- GitHub: each job's steps in a clone made like actions/checkout -----------------------


@pytest.fixture(scope="module")
def github(tmp_path_factory):
    return two_releases(tmp_path_factory.mktemp("github"), "github")


def run_github(releases: dict, workdir: Path, workflow: str, **options) -> dict:
    """Run a generated workflow of the project with CI's variables and secrets."""
    path = releases["project"].path / ".github" / "workflows" / workflow
    context = {
        "vars": {"DVC_REMOTE_IN_CI": "true"},
        "secrets": {"REPROML_SIGNING_KEY": releases["key"].read_text()},
        # A push to the default branch (the runner checks out origin's main).
        "github": {
            "event_name": "push",
            "ref": "refs/heads/main",
            "ref_name": "main",
            "event": {"repository": {"default_branch": "main"}},
        },
    }
    return run_workflow(path, releases["origin"], workdir, releases["env"], context, **options)


@pytest.mark.xdist_group("github-ci")
def test_github_ci_jobs_run_step_by_step_and_the_gate_sees_every_release(github, tmp_path):
    runs = run_github(github, tmp_path, "ci.yml")
    for name in ("check", "consistency", "reproduce"):
        assert all(job.passed for job in runs[name]), runs[name][0].output
    reproduce = runs["reproduce"][0].output
    assert "model@v1.0.0: complete" in reproduce and "model@v2.0.0: complete" in reproduce
    assert "MATCH" in reproduce and "pushed the records to origin" in reproduce


@pytest.mark.xdist_group("github-ci")
@pytest.mark.parametrize(
    "options, named",
    [
        ({"fetch-depth": 1, "fetch-tags": False}, "this clone is shallow"),
        ({"fetch-depth": 1, "fetch-tags": True}, "this clone is shallow"),
    ],
    ids=["checkout-defaults", "tags-but-shallow"],
)
def test_github_gate_in_a_default_checkout_fails_by_name_never_passes_on_nothing(
    github, tmp_path, options, named
):
    """The same job with actions/checkout's defaults: check-releases must not pass."""
    runs = run_github(github, tmp_path, "ci.yml", jobs=["reproduce"], checkout_options=options)
    job = runs["reproduce"][0]
    gate = next(step for step in job.steps if step.command == "make check-releases")
    assert gate.returncode not in (0, None), job.output
    assert named in gate.output and "Fix:" in gate.output, gate.output
    after_the_gate = job.steps[job.steps.index(gate) + 1 :]
    assert [step.command for step in after_the_gate[:-1]] == ["make sandbox", "make rebuild"]
    assert after_the_gate[0].returncode is None
    assert after_the_gate[-1].command == "make push-records"  # if: always()


@pytest.mark.xdist_group("github-ci")
def test_github_field_rebuild_workflow_rebuilds_each_release_in_a_matrix_and_reports(
    github, tmp_path
):
    runs = run_github(github, tmp_path, "field-rebuild.yml")
    assert runs["releases"][0].passed, runs["releases"][0].output
    assert runs["releases"][0].outputs == {"releases": '["model@v1.0.0", "model@v2.0.0"]'}
    rebuilt = runs["rebuild"]
    assert len(rebuilt) == 2 and all(job.passed for job in rebuilt), rebuilt[0].output
    for job, tag in zip(rebuilt, ("model@v1.0.0", "model@v2.0.0"), strict=True):
        assert re.search(rf"{re.escape(tag)} +MATCH", job.output), job.output
        as_released, lab = (step for step in job.steps if step.command == "make field-rebuild")
        assert as_released.returncode == 0 and lab.returncode is None  # lab: only when asked
        # `make sandbox` made the runner seal it, and SEALED=1 would have failed otherwise.
        assert re.search(r"time to reproduce: .*\), sealed$", as_released.output, re.M)
    report = runs["report"][0]
    assert report.passed, report.output
    successes, checked, timed = report_figures(report.output)
    assert successes == checked >= 2 and timed >= 2
    sealed = re.search(r"^\s+sealed:\s+(\d+)/(\d+)", report.output, re.M)
    assert sealed and sealed[1] == sealed[2] and int(sealed[2]) >= 2, report.output


@pytest.mark.xdist_group("github-ci")
def test_github_sweep_runs_a_runner_per_point_and_names_the_failing_point(github, tmp_path):
    origin = tmp_path / "origin.git"  # a copy: the fault's commit stays out of the others' way
    run(["git", "clone", "-q", "--bare", str(github["origin"]), str(origin)], cwd=tmp_path)
    work = Project(tmp_path / "work")
    run(["git", "clone", "-q", str(origin), str(work.path)], cwd=tmp_path)
    add_unseeded_noise(work.path, "config.seed == 2")
    commit_all(work, "Noise at seed 2")
    run(["git", "push", "-q", "origin", "main"], cwd=work.path)
    # Someone who can push pushes the failing point's result ahead of it, under the name the
    # plan will give it (names are predictable): a commit on main, so every check "matches".
    head = run(["git", "rev-parse", "HEAD"], cwd=work.path).stdout.strip()
    forged = f"refs/exps/{head[:2]}/{head[2:]}/sweep-42-1-2"
    run(["git", "push", "-q", "origin", f"HEAD~1:{forged}"], cwd=work.path)
    path = github["project"].path / ".github" / "workflows" / "sweep.yml"
    context = {
        "vars": {"DVC_REMOTE_IN_CI": "true"},
        "inputs": {"overrides": SWEEP},
        "github": {
            "event_name": "workflow_dispatch",
            "ref_name": "main",
            "run_id": "42",
            "run_attempt": "1",
        },
    }
    runs = run_workflow(path, origin, tmp_path / "runs", github["env"], context)
    assert runs["plan"][0].passed, runs["plan"][0].output
    points = json.loads(runs["plan"][0].outputs["points"])
    assert points == [
        {"name": "sweep-42-1-1", "overrides": "seed=1"},
        {"name": "sweep-42-1-2", "overrides": "seed=2"},
    ]
    first, second = runs["point"]
    assert first.passed and not second.passed, first.output
    compare = runs["compare"][0]
    assert not compare.passed
    assert_sweep_named_the_failing_point(
        first.output + second.output + compare.output, "sweep-42-1"
    )
    assert "origin holds an experiment ref named sweep-42-1-2: it did not come from this run" in (
        compare.output
    )
    assert not re.search(r"sweep-42-1-2 +match", compare.output), compare.output
    pushed = run(["git", "ls-remote", str(origin), "refs/exps/*"], cwd=tmp_path).stdout
    assert pushed.split() == [
        run(["git", "rev-parse", "HEAD~1"], cwd=work.path).stdout.strip(),
        forged,
    ]

    # A refused plan (a value the schema rejects) fails its job, so no point runs.
    context["inputs"] = {"overrides": "model.C=-1,1"}
    context["github"] = {**context["github"], "run_id": "43"}
    refused = run_workflow(path, origin, tmp_path / "refused", github["env"], context)
    assert not refused["plan"][0].passed and "model.C" in refused["plan"][0].output
    assert refused["point"][0].skipped and refused["compare"][0].skipped
