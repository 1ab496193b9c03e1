"""Tier 3: every remote the bake offers, against a real server on loopback (see servers.py).
The baked README's commands run as a user would (set up, sign, repro, plots, commit and push,
release, promote, roll back, rebuild, report, lint, hooks); credentials stay in
.dvc/config.local; a clone sets up, pulls and is up to date; an object deleted on the server
is named by check-releases and by rebuild; a clone without credentials, and a dead server,
are each named as such within a bounded time, never reported as missing objects; CI's
secrets reach a clone through `make remote-credentials`."""

import os
import subprocess

import pytest
import readme
import servers
import yaml
from conftest import UV, bake, run
from interpreters import find_interpreter
from test_end_to_end import Project

pytestmark = pytest.mark.slow
KINDS = ("s3", "azure", "ssh", "gcs")
# A hang guard for the whole command (the probe itself gives up after REPRO_REMOTE_TIMEOUT).
COMMAND_GUARD_SECONDS = 300
# The README's sections in the order a user takes them here, and which of their blocks run
# (None: all). The signing set-up comes first, so that the first commit holds the key.
README_FLOW = (
    ("Set up", None),
    ("Release, promote, roll back", [1]),
    ("Run the pipeline", None),
    ("Commit and push data", [0]),
    ("Release, promote, roll back", [0]),
    ("Verify and rebuild", None),
    ("Reproducibility report", None),
    ("Checks", None),
)
# The sections whose commands read or write the remote no differently from the ones before
# them (a rebuild fetches as `dvc pull` does, which the clones below run on every kind): run
# in full on the first kind only, so each server still sees set-up, push, release and pull.
REMOTE_NEUTRAL = {"Verify and rebuild", "Reproducibility report", "Checks"}
# What is not run here, and why: every README section is in the flow or in this list.
README_ELSEWHERE = {
    "Where things live": "no commands",
    "Bring your own data": "placeholders; test_own_data.py runs it with real tables",
    "Add a derived feature": "no commands; the project's test_stages.py adds one",
    "Bring your own model": "test_model_families.py runs make add-library; test_own_data.py "
    "trains a custom estimator and runs make predict; test_registry.py make predict VERSION=",
    "Change a parameter": "opens $EDITOR; test_end_to_end.py edits conf and recomposes",
    "Run experiments": "a sweep on two workers; test_sweep.py runs the section",
    "The plot tables and how DVC draws them": "no commands; test_tools.py draws them",
    "How verify and rebuild work": "no commands; test_end_to_end.py and test_faults.py",
    "Environment drift": "no commands; test_end_to_end.py drifts the environment",
    "Releases in detail": "no commands; test_registry.py",
    "Compare two versions on the same rows": "releases; test_registry.py runs make compare",
    "Incidents": "a signed release; test_registry.py records incidents through make incident",
    "Release confidence": "no commands; test_registry.py reads it from make registry",
    "The reproducibility report in detail": "no commands; test_registry.py",
    "Continuous integration": "no commands; the CI targets run in the tests",
    "Remotes": "no commands",
    "Trust model": "no commands; test_registry.py pushes each attack through the real CLI",
    "The environment": "no commands",
    "Keeping up with the template": "needs a cruft-made project; test_tools.py runs it",
    "Reference": "no commands",
}
# Lines left out of the blocks that run: each is run by another test.
README_LINES_ELSEWHERE = (
    "REBUILD_ARGS=--vary",  # test_end_to_end.py: rebuild in a varied environment
    "make test",  # test_end_to_end.py, test_model_families.py, test_ci.py: the project's tests
    "access_key_id '...'",  # placeholders: configure() sets the real credentials
    "credentialpath '...'",
    "connection_string '...'",
    "password '...'",
)


def start(kind: str, scratch, project: Project) -> servers.Server:
    python = project.path / ".venv" / "bin" / "python"
    try:
        if kind == "s3":
            return servers.start_s3(scratch, python)
        if kind == "azure":
            return servers.start_azure(scratch, python)
        if kind == "ssh":
            return servers.start_ssh(scratch, python, scratch.parent / "home")
        return servers.start_gcs(scratch)
    except servers.Unavailable as why:
        pytest.skip(f"no {kind} server here: {why}")


def configure(project: Project, server: servers.Server, credentials: bool = True) -> None:
    """The URL in .dvc/config (committed); the endpoint and every credential in
    .dvc/config.local (never committed)."""
    project.dvc("remote", "modify", "storage", "url", server.url)
    given = server.credentials if credentials else server.unusable_credentials
    local = {**server.settings, **given}
    for key, value in local.items():
        project.dvc("remote", "modify", "--local", "storage", key, value)


def user_environment(tmp_path, server: servers.Server) -> dict:
    """A user's shell: a HOME of their own (with the SSH key they already have, never the
    machine's ~/.ssh), a git identity, and uv's cache and Python as they were."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    key = home / ".ssh" / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "you", "-f", str(key)], cwd=home)
    uv_cache = run([UV, "cache", "dir"], cwd=tmp_path).stdout.strip()
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "You"), ("EMAIL", "you@example.com"))
    }
    return {
        "HOME": str(home),
        **server.env,
        **identity,
        "UV_CACHE_DIR": uv_cache,
        "UV_PYTHON": find_interpreter("3.11", UV),
        "REPRO_REMOTE_TIMEOUT": "20",
    }


def run_readme(project: Project, env: dict, whole: bool = True) -> None:
    """The README's commands in README_FLOW order, as a user types them (unless ``whole``,
    without the REMOTE_NEUTRAL sections)."""
    found = readme.blocks(project.path)
    assert set(found) == {title for title, _ in README_FLOW} | set(README_ELSEWHERE), found
    shell = {**os.environ, **project.env, **env, "UV": UV}
    for title, chosen in README_FLOW:
        if not whole and title in REMOTE_NEUTRAL:
            continue
        for number, text in enumerate(found[title]):
            if chosen is not None and number not in chosen:
                continue
            done = readme.run_block(project.path, text, shell, README_LINES_ELSEWHERE)
            assert done.returncode == 0, f"README, {title}:\n{text}\n{done.stdout}{done.stderr}"


def raw_data_md5(project: Project) -> str:
    dvc_file = next((project.path / "data" / "raw").glob("*.dvc"))
    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


def clone(project: Project, path, server: servers.Server, credentials: bool, env: dict):
    """A clone set up as its README says, given this server's endpoint and (if asked) its
    credentials in its own .dvc/config.local."""
    copy = Project(path)
    copy.env.update(env)
    run(["git", "clone", "-q", str(project.path), str(path)], cwd=path.parent)
    copy.make("setup")
    configure(copy, server, credentials)
    return copy


def named_not_missing(result: subprocess.CompletedProcess, *expected: str) -> str:
    said = result.stdout + result.stderr
    assert result.returncode != 0, said
    assert "Traceback" not in said and "MISSING" not in said, said
    assert any(words in said for words in expected), said
    return said


@pytest.mark.parametrize("kind", KINDS)
def test_the_whole_cycle_against_a_real_server(kind, tmp_path):
    project = Project(bake(tmp_path / "bake", dvc_remote=kind))
    scratch = tmp_path / "server"
    scratch.mkdir()
    server = start(kind, scratch, project)
    try:
        env = user_environment(tmp_path, server)
        project.env.update(env)
        configure(project, server)
        project.git("commit", "-qam", "Point the remote at the team's server")
        committed = run(["git", "show", "HEAD:.dvc/config"], cwd=project.path).stdout
        assert server.url in committed
        for key in server.credentials:
            assert key not in committed
        assert ".dvc/config.local" not in run(["git", "ls-files"], cwd=project.path).stdout

        origin = tmp_path / "origin.git"
        run(["git", "init", "-q", "--bare", "--initial-branch=main", str(origin)], cwd=tmp_path)
        project.git("remote", "add", "origin", str(origin))
        project.git("push", "-q", "-u", "origin", "main")
        run_readme(project, env, whole=kind == KINDS[0])

        colleague = clone(project, tmp_path / "colleague", server, True, env)
        colleague.make("pull", "status")

        assert "model@v1.0.0: complete" in project.make("check-releases").stdout

        # A clone without credentials: a named error, not missing objects.
        stranger = clone(project, tmp_path / "stranger", server, False, env)
        checked = stranger.make("check-releases", check=False, timeout=COMMAND_GUARD_SECONDS)
        named_not_missing(checked, "credentials", "could not be reached", "could not open")

        # An object deleted on the server: named by check-releases, and by a rebuild that
        # needs it (exit 2: could not rebuild, with the object's path).
        data = next((project.path / "data" / "raw").glob("*.csv")).relative_to(project.path)
        server.delete_object(raw_data_md5(project))
        checked = project.make("check-releases", check=False)
        assert checked.returncode != 0
        assert f"MISSING {data} (md5 {raw_data_md5(project)})" in checked.stdout
        # A CI job: a fresh clone (its own HOME) given access only through CI secrets.
        ci_home = tmp_path / "ci-home"
        ci_home.mkdir()
        ci_env = {**env, **server.ci_secrets, "HOME": str(ci_home)}
        newcomer = Project(tmp_path / "newcomer")
        newcomer.env.update(ci_env)
        run(["git", "clone", "-q", str(project.path), str(newcomer.path)], cwd=tmp_path)
        newcomer.make("setup")
        given = newcomer.make("remote-credentials").stdout
        for value in server.ci_secrets.values():
            assert value not in given
        python = str(newcomer.path / ".venv" / "bin" / "python")
        command = [python, "-m", "reproml.tools", "rebuild"]
        rebuilt = run(command, cwd=newcomer.path, env=newcomer.env, check=False)
        assert rebuilt.returncode == 2, rebuilt.stdout + rebuilt.stderr
        assert f"{data} (md5 {raw_data_md5(project)})" in rebuilt.stdout + rebuilt.stderr
    finally:
        server.stop()

    # The server is gone: a named error within the probe's bound, not missing objects.
    checked = project.make("check-releases", check=False, timeout=COMMAND_GUARD_SECONDS)
    named_not_missing(checked, "could not be reached", "did not answer within")
