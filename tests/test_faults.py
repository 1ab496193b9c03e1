"""Tier 3: real faults while `make repro` runs. A stage killed with SIGKILL, a DVC cache whose
filesystem is full, and a second `make repro` started beside the first must each leave no
half-written output and no dvc.lock entry for work that did not finish, and the next
`make repro` must rebuild a model that verify MATCHes."""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import UV, bake, chosen_model, run
from test_end_to_end import Project, committed_first_run, restore_committed_state

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

# How long a stage runs after its process appears before it is killed: long enough to be
# inside Python (importing, fitting), far shorter than the stage itself.
INSIDE_THE_STAGE_SECONDS = 0.5
PROCESS_WAIT_SECONDS = 120
# What DVC says when another DVC process holds the repository lock, or holds a stage's
# inputs or outputs (its rwlock) while its command runs.
REFUSED_BY_A_LOCK = re.compile(r"Unable to acquire lock|is busy, it is being blocked by")
# The names of temporary files: the project's atomic writers (repro/io.py: `.<name>.partial`)
# and DVC's (`.<random>.tmp`).
TEMPORARY_NAME = re.compile(r"\.partial$|\.tmp$")

# The one process verify's isolated rebuild runs the stages before it in, in dvc.yaml's order.
VERIFY_REBUILD = "stage params prepare train evaluate"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One set-up project whose first run is committed; each test puts it back."""
    return committed_first_run(bake(tmp_path_factory.mktemp("faults")))


def params(project: Project) -> dict:
    return yaml.safe_load((project.path / "params.yaml").read_text())


def change_a_hyperparameter(project: Project, factor: int) -> tuple[str, float]:
    """Edit the model file as a user would and recompose params.yaml, so train must run.
    Each test uses its own factor: DVC's run cache would restore a value seen before
    instead of running the stage."""
    family = chosen_model(project.path)
    key = {"logreg": "C", "random_forest": "n_estimators", "hist_gb": "max_iter"}[family]
    old = params(project)["model"][key]
    new = old * factor
    conf = project.path / "conf" / "model" / f"{family}.yaml"
    conf.write_text(conf.read_text().replace(f"{key}: {old}", f"{key}: {new}"))
    project.make("params")
    return key, new


def start_repro(project: Project) -> subprocess.Popen:
    """`make repro` in its own session, so its whole process group can be killed."""
    return subprocess.Popen(
        ["make", "repro", f"UV={UV}"],
        cwd=project.path,
        env={**os.environ, "UV": UV, **project.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def read_until(process: subprocess.Popen, text: str) -> str:
    """The output of ``process`` up to and including the line holding ``text``."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.wait()
    pytest.fail(f"{text!r} never appeared; make repro exited {process.returncode}:\n{seen}")


def group_commands(pgid: int) -> list[str]:
    """The command lines of the processes in a process group (Linux /proc)."""
    commands = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid:
                commands.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return commands


def wait_for_process(pgid: int, command: str) -> None:
    """Wait until a process of the group runs ``command`` (a stage's Python has started)."""
    deadline = time.monotonic() + PROCESS_WAIT_SECONDS
    while not any(command in line for line in group_commands(pgid)):
        assert time.monotonic() < deadline, f"no process ran {command!r}"
        time.sleep(0.05)


def wait_until_group_is_gone(pgid: int) -> None:
    """Wait until every process of the killed group is reaped, as it is before a user can
    type the next command (a zombie's pid still counts as a live holder of DVC's rwlock)."""
    deadline = time.monotonic() + PROCESS_WAIT_SECONDS
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, (
            f"processes of group {pgid} were never reaped (does PID 1 reap orphans?)"
        )
        time.sleep(0.05)


def output_folders(project: Project) -> set[Path]:
    """Every folder the pipeline writes into (the parents of params.yaml's paths)."""
    return {(project.path / path).parent for path in params(project)["paths"].values()}


def leftover_temporary_files(project: Project) -> list[Path]:
    return sorted(
        path
        for folder in output_folders(project)
        if folder.is_dir()
        for path in folder.iterdir()
        if TEMPORARY_NAME.search(path.name)
    )


def outputs_neither_old_nor_absent(project: Project, lock: bytes, stage: str) -> list[str]:
    """The outputs of ``stage`` that are present but are not what ``lock`` records."""
    wrong = []
    for out in yaml.safe_load(lock)["stages"][stage]["outs"]:
        path = project.path / out["path"]
        if path.exists() and hashlib.md5(path.read_bytes()).hexdigest() != out["md5"]:
            wrong.append(out["path"])
    return wrong


def verify_result(project: Project) -> str:
    report = project.path / params(project)["paths"]["verify_report"]
    return json.loads(report.read_text())["result"]


def recorded_model_value(project: Project, key: str):
    return yaml.safe_load(project.lock())["stages"]["train"]["params"]["params.yaml"]["model"][key]


def kill_inside(project: Project, stage: str, command: str) -> tuple[bytes, str]:
    """Run `make repro`, SIGKILL its whole process group once ``command`` (a process of
    ``stage``) has run for a moment, and return dvc.lock as it was just before the kill
    and what make printed after the stage started."""
    process = start_repro(project)
    try:
        read_until(process, f"Running stage '{stage}'")
        wait_for_process(process.pid, command)
        time.sleep(INSIDE_THE_STAGE_SECONDS)
        lock = project.lock()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        wait_until_group_is_gone(process.pid)
        return lock, process.stdout.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


def assert_killed_stage_left_nothing_half_done(
    project: Project, stage: str, lock_before_kill: bytes, said_after_start: str
) -> None:
    assert not re.search(rf"^{stage}: \S+ -> ", said_after_start, re.MULTILINE), (
        f"{stage} finished before the kill; the test did not interrupt it"
    )
    assert project.lock() == lock_before_kill, "dvc.lock changed after the kill"
    assert leftover_temporary_files(project) == []
    assert outputs_neither_old_nor_absent(project, lock_before_kill, stage) == []


def test_sigkill_during_train_leaves_no_partial_model_and_the_next_repro_matches(project):
    """A laptop that dies mid-training must not leave a half model that DVC or verify trust."""
    key, new = change_a_hyperparameter(project, factor=2)
    try:
        lock, said = kill_inside(project, "train", "stage train")
        assert_killed_stage_left_nothing_half_done(project, "train", lock, said)
        assert recorded_model_value(project, key) != new

        project.make("repro")
        assert verify_result(project) == "match"
        assert recorded_model_value(project, key) == new
        assert leftover_temporary_files(project) == []
        assert project.status_is_clean()
    finally:
        restore_committed_state(project)


def test_sigkill_during_verify_leaves_no_report_and_the_next_repro_matches(project):
    """verify writes the report that says MATCH: a killed verify must not leave one behind,
    and the next run must redo only verify."""
    change_a_hyperparameter(project, factor=3)
    try:
        lock, said = kill_inside(project, "verify", VERIFY_REBUILD)
        assert_killed_stage_left_nothing_half_done(project, "verify", lock, said)

        rerun = project.make("repro")
        assert "Running stage 'verify'" in rerun.stdout
        assert "Running stage 'train'" not in rerun.stdout
        assert verify_result(project) == "match"
        assert leftover_temporary_files(project) == []
        assert project.status_is_clean()
    finally:
        restore_committed_state(project)


def test_a_second_repro_is_refused_while_the_first_runs_and_the_first_matches(project):
    """Two terminals, one project: the second run must be turned away, not interleave its
    writes with the first run's."""
    key, new = change_a_hyperparameter(project, factor=4)
    first = start_repro(project)
    try:
        read_until(first, "Running stage 'verify'")
        wait_for_process(first.pid, VERIFY_REBUILD)
        # The first run is held where it is (it keeps DVC's lock), so the second one meets it
        # running however slow the machine is, not after it ended.
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            second = project.make("repro", check=False)
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        said = second.stdout + second.stderr
        assert second.returncode != 0, said
        assert REFUSED_BY_A_LOCK.search(said), said

        rest = first.stdout.read()
        assert first.wait() == 0, rest
        assert verify_result(project) == "match"
        assert recorded_model_value(project, key) == new
        assert project.status_is_clean()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        first.stdout.close()
        restore_committed_state(project)


def fill(filesystem: Path) -> Path:
    """A file that takes every free block of ``filesystem``."""
    filler = filesystem / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(descriptor)
    return filler


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MB tmpfs (root only), unmounted afterwards whatever happened."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
        cwd=tmp_path,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        run(["umount", "-l", str(mountpoint)], cwd=tmp_path, check=False)


def test_a_full_cache_filesystem_is_named_and_the_next_repro_after_freeing_it_matches(
    project, small_filesystem
):
    """The DVC cache often lives on another disk than the workspace, so a full cache must be
    named as such; and freeing space must be all it takes to carry on."""
    cache = small_filesystem / "cache"
    shutil.copytree(project.path / ".dvc" / "cache" / "files", cache / "files")
    project.dvc("cache", "dir", "--local", str(cache))
    try:
        key, new = change_a_hyperparameter(project, factor=5)
        before = project.lock()
        filler = fill(small_filesystem)

        failed = project.make("repro", check=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0, said
        assert "No space left on device" in said or "ENOSPC" in said, said
        assert "Traceback" not in said, said
        assert project.lock() == before, "dvc.lock recorded work whose cache write failed"
        assert leftover_temporary_files(project) == []

        filler.unlink()
        project.make("repro")
        assert verify_result(project) == "match"
        assert recorded_model_value(project, key) == new
        assert leftover_temporary_files(project) == []
        assert project.status_is_clean()

        # Checked last, so the recovery above is exercised even when this fails: the
        # workspace's disk has room, so "No space left on device" alone points the user at
        # the wrong disk; the message must name the cache that is full.
        assert str(cache) in said, f"the error does not name the full cache {cache}:\n{said}"
    finally:
        project.dvc("config", "--local", "--unset", "cache.dir", check=False)
        restore_committed_state(project)
