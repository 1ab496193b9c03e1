"""Tier 3: every remote the bake offers, against a real server on loopback (see servers.py):
credentials only in .dvc/config.local; repro, push, a clone that sets up, pulls and is up to
date; rebuild, release and check-releases; an object deleted on the server named by
check-releases and by rebuild; and a clone without credentials, and a dead server, each
named as such within a bounded time, never reported as missing objects."""

import subprocess

import pytest
import servers
import yaml
from conftest import UV, bake, project_package, run
from interpreters import find_interpreter
from test_end_to_end import Project
from test_registry import set_up_signing

pytestmark = pytest.mark.slow
KINDS = ("s3", "azure", "ssh", "gcs")
# A hang guard for the whole command (the probe itself gives up after REPRO_REMOTE_TIMEOUT).
COMMAND_GUARD_SECONDS = 300


def start(kind: str, scratch, project: Project) -> servers.Server:
    python = project.path / ".venv" / "bin" / "python"
    try:
        if kind == "s3":
            return servers.start_s3(scratch, python)
        if kind == "azure":
            return servers.start_azure(scratch, python)
        if kind == "ssh":
            return servers.start_ssh(scratch, python, scratch / "home")
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
        # The ssh server's HOME (its known_hosts) must not move uv's cache or Python.
        uv_cache = run([UV, "cache", "dir"], cwd=tmp_path).stdout.strip()
        env = {**server.env, "UV_CACHE_DIR": uv_cache, "REPRO_REMOTE_TIMEOUT": "20"}
        env["UV_PYTHON"] = find_interpreter("3.11", UV)
        project.env.update(env)
        configure(project, server)
        set_up_signing(project, tmp_path / "keys")
        committed = run(["git", "show", "HEAD:.dvc/config"], cwd=project.path).stdout
        assert server.url in committed
        for key in server.credentials:
            assert key not in committed
        assert ".dvc/config.local" not in run(["git", "ls-files"], cwd=project.path).stdout

        project.make("setup", "repro")
        project.git("add", "-A")
        project.git("commit", "-qm", "First model")
        project.dvc("push")

        colleague = clone(project, tmp_path / "colleague", server, True, env)
        colleague.make("pull", "status")
        rebuilt = colleague.make("rebuild")
        assert ": MATCH" in rebuilt.stdout

        released = project.make("release", "VERSION=v1.0.0")
        assert "gate data and model in the remote: passed" in released.stdout
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
        command = [python, "-m", project_package(newcomer.path), "rebuild"]
        rebuilt = run(command, cwd=newcomer.path, env=newcomer.env, check=False)
        assert rebuilt.returncode == 2, rebuilt.stdout + rebuilt.stderr
        assert f"{data} (md5 {raw_data_md5(project)})" in rebuilt.stdout + rebuilt.stderr
    finally:
        server.stop()

    # The server is gone: a named error within the probe's bound, not missing objects.
    checked = project.make("check-releases", check=False, timeout=COMMAND_GUARD_SECONDS)
    named_not_missing(checked, "could not be reached", "did not answer within")
