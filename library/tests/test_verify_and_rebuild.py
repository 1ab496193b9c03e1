"""Verification levels, drift, dvc.lock comparison, the rebuild's seal and its warm-up, as
units (a project's own environment against its lock is tested in the project)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from support import machinery

environment = machinery("runtime.environment")
errors = machinery("runtime.errors")
field = machinery("tools.field")
rebuild = machinery("tools.rebuild")
verification = machinery("runtime.verification")


def fitted_forest(seed):
    from sklearn.ensemble import RandomForestClassifier

    features = np.random.default_rng(0).normal(size=(40, 3))
    return RandomForestClassifier(n_estimators=3, random_state=seed).fit(
        features, np.arange(40) % 2
    )


def test_this_interpreter_goes_first_on_path_and_no_empty_entry_names_the_cwd():
    """DVC's workers and the rebuild run `python` from PATH: this environment's comes first,
    and an unset or empty PATH adds no empty entry (which would search the current folder)."""
    proc = machinery("runtime.proc")
    ours = str(Path(sys.executable).parent)
    for given, rest in (({}, []), ({"PATH": ""}, []), ({"PATH": "/a::/b:"}, ["/a", "/b"])):
        assert proc.interpreter_first_on_path(given)["PATH"].split(os.pathsep) == [ours, *rest]


def test_the_bytecode_warm_up_compiles_what_was_listed_without_running_it(tmp_path):
    """The rebuild's warm-up compiles the listed installed files (what the project's own
    environment has bytecode for) and never runs them; a broken or missing file is passed
    over."""
    import json
    import subprocess

    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    ran = tmp_path / "ran"
    (site / "pkg" / "__init__.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    (site / "pkg" / "broken.py").write_text("def (:\n")
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps(["pkg/__init__.py", "pkg/broken.py", "pkg/missing.py"]))
    command = [sys.executable, "-c", rebuild.WARM_BYTECODE, str(listed), str(site)]
    subprocess.run(command, check=True, capture_output=True)
    assert not ran.exists()
    assert rebuild.compiled_here(site) == ["pkg/__init__.py"]


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a process that exited and awaits reaping does not)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
def test_a_background_helper_is_stopped_with_its_children(tmp_path):
    """The warm-up runs in a process group of its own; stopping it stops its children too."""
    import time

    proc = machinery("tools.commands")
    said = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {said}.part && mv {said}.part {said}; wait"
    process = proc.start_background(["sh", "-c", script])
    deadline = time.monotonic() + 30
    while not said.is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(said.read_text())
    assert _running(child)
    proc.stop_background(process)
    assert process.returncode is not None
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _running(child)


def test_the_rebuild_runs_consecutive_stages_of_one_package_in_one_process():
    Stage = machinery("runtime.pipeline").Stage

    def stage(name, command, wdir="."):
        return Stage(name=name, command=command, wdir=wdir, deps=(), outs=())

    stages = [
        stage("params", "python -m pkg stage params"),
        stage("prepare", "python -m pkg stage prepare"),
        stage("fetch", "python scripts/fetch.py --all"),
        stage("train", "python -m pkg stage train"),
        stage("evaluate", "python -m pkg stage evaluate"),
        stage("elsewhere", "python -m pkg stage report", wdir="sub"),
        stage("other", "python -m other stage summary"),
        stage("block", "python -m other stage report\n"),
        stage("two_lines", "python -m other stage a\necho done"),
    ]
    batches = [
        ([s.name for s in batch], command) for batch, command in verification.rerun_batches(stages)
    ]
    assert batches == [
        (["params", "prepare"], "python -m pkg stage params prepare"),
        (["fetch"], "python scripts/fetch.py --all"),
        (["train", "evaluate"], "python -m pkg stage train evaluate"),
        (["elsewhere"], "python -m pkg stage report"),
        # A YAML block's trailing newline is one line still; a second line runs as declared.
        (["other", "block"], "python -m other stage summary report"),
        (["two_lines"], "python -m other stage a\necho done"),
    ]


def test_attribute_differences_name_what_changed():
    same = verification.attribute_differences(fitted_forest(1), fitted_forest(1))
    assert same == []
    differences = verification.attribute_differences(fitted_forest(1), fitted_forest(2))
    assert differences and all(line.startswith("model.") for line in differences)
    assert any("estimators_" in line for line in differences)


def test_pickle_differences_point_into_the_stream():
    import pickle

    lines = verification.pickle_differences(pickle.dumps([1, 2]), pickle.dumps([1, 3]))
    assert any(line.startswith("-") and "1" in line for line in lines)
    assert any(line.startswith("+") and "3" in line for line in lines)


def test_predictions_compare_label_flips_and_scores():
    probe = np.random.default_rng(1).normal(size=(30, 3))
    same = verification.compare_predictions(
        fitted_forest(1), fitted_forest(1), probe, "classification"
    )
    assert (same["result"], same["label_flips"], same["max_abs_delta"]) == ("match", 0, 0.0)
    other = verification.compare_predictions(
        fitted_forest(1), fitted_forest(5), probe, "classification"
    )
    assert other["result"] == "mismatch" and other["max_abs_delta"] > 0


class Shifted:
    """A regressor whose predictions are another's plus ``shift``."""

    def __init__(self, model, shift):
        self.model, self.shift = model, shift

    def predict(self, features):
        return self.model.predict(features) + self.shift


def test_regression_predictions_compare_within_a_relative_tolerance():
    from sklearn.linear_model import Ridge

    features = np.random.default_rng(2).normal(size=(40, 3))
    model = Ridge().fit(features, 1000.0 * features[:, 0] + 5000.0)
    tolerance = verification.prediction_tolerance(model.predict(features))
    assert tolerance > verification.PORTABLE_TOLERANCE  # relative to predictions near 5000
    close = verification.compare_predictions(
        model, Shifted(model, tolerance / 2), features, "regression"
    )
    assert close["result"] == "match" and 0 < close["max_abs_delta"] <= close["tolerance"]
    far = verification.compare_predictions(
        model, Shifted(model, tolerance * 2), features, "regression"
    )
    assert far["result"] == "mismatch"
    assert "tolerance" in verification.format_table([far])


def test_metrics_differences_are_listed_by_key():
    check = verification.compare_metrics("m.json", {"a": 1.0, "b": 2}, {"a": 1.5, "b": 2})
    assert check["result"] == "mismatch"
    assert check["differences"] == {"a": [1.0, 1.5]}


def test_locked_versions_follow_the_markers(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "numpy==2.4.6 \\\n    --hash=sha256:00\n"
        "pywin32==312 ; sys_platform == 'win32' \\\n    --hash=sha256:11\n"
        "Foo.Bar==1.0 ; python_version >= '3.0'\n"
    )
    assert environment.locked_versions(lock) == {"numpy": "2.4.6", "foo-bar": "1.0"}


def test_drift_refuses_unless_allowed(monkeypatch):
    monkeypatch.setattr(environment, "drift", lambda *args, **kwargs: ["- a==1", "+ a==2"])
    monkeypatch.delenv(environment.ALLOW_DRIFT_VARIABLE, raising=False)
    with pytest.raises(errors.DriftError, match=r"(?s)training refuses.*- a==1.*make setup"):
        environment.require_locked_environment(what="training")
    monkeypatch.setenv(environment.ALLOW_DRIFT_VARIABLE, "1")
    assert environment.require_locked_environment(what="training") == ["- a==1", "+ a==2"]


LOCK = {
    "schema": "2.0",
    "stages": {
        "train": {
            "cmd": "python -m pkg stage train",
            "params": {"params.yaml": {"seed": 1, "model": {"C": 1.0, "family": "logreg"}}},
            "deps": [{"path": "data/train.csv", "md5": "aa", "size": 1}],
            "outs": [{"path": "models/model.pkl", "md5": "bb", "size": 2}],
        }
    },
}


def test_locks_compare_by_meaning_not_bytes():
    reordered = {
        "stages": {
            "train": {
                "outs": [{"size": 2, "md5": "bb", "path": "models/model.pkl"}],
                "params": {"params.yaml": {"model": {"family": "logreg", "C": 1.0}, "seed": 1}},
                "deps": [{"md5": "aa", "path": "data/train.csv", "size": 1}],
                "cmd": "python -m pkg stage train",
            }
        },
        "schema": "2.0",
    }
    parse = machinery("tools.dvc_lock").parse
    assert rebuild.compare_locks(parse(LOCK), parse(reordered)) == ({"train": "match"}, [])


def test_a_dvc_lock_anyone_could_have_pushed_is_read_without_a_traceback():
    """The one dvc.lock reader takes any YAML: what is not DVC's shape is left out."""
    parse = machinery("tools.dvc_lock").parse
    assert parse(["not", "a", "mapping"]) == {} == parse({"stages": "none"})
    stages = parse({"stages": {"a": "text", "b": {"outs": ["x", {"path": 1}, {"path": "m"}]}}})
    assert list(stages) == ["b"] and stages["b"].outs == {"m": None}


def test_lock_differences_name_stage_part_and_path():
    import copy

    changed = copy.deepcopy(LOCK)
    changed["stages"]["train"]["outs"][0]["md5"] = "cc"
    changed["stages"]["train"]["params"]["params.yaml"]["seed"] = 2
    changed["stages"]["extra"] = {"cmd": "x"}
    parse = machinery("tools.dvc_lock").parse
    stages, differences = rebuild.compare_locks(parse(LOCK), parse(changed))
    assert stages == {"train": "mismatch", "extra": "mismatch"}
    assert "train: out models/model.pkl md5 bb -> cc" in differences
    assert any(line.startswith("train: params") for line in differences)
    assert "extra: stage missing from the committed dvc.lock" in differences


def test_the_field_summary_names_each_release_that_no_longer_rebuilds_and_why():
    commit = "a" * 40
    moved = rebuild.Rebuild(
        "model@v1.0.0", commit, False, stages={"params": "match", "train": "mismatch"}
    )
    assert field.cause(moved) == "stages differ from the committed dvc.lock: train"
    lost = rebuild.Rebuild("model@v2.0.0", commit, False, error="the DVC remote lacks x\nmore")
    assert field.cause(lost) == "the DVC remote lacks x"
    results = [
        field.FieldResult("model@v1.0.0", "mismatch", field.cause(moved), 12.0),
        field.FieldResult("model@v2.0.0", "error", field.cause(lost), 0.0),
        field.FieldResult("model@v3.0.0", "match", "", 10.0),
    ]
    text, code = field.summary(results, varied=False)
    assert code == 1
    assert text.startswith("field (as released) rebuild of 3 releases:")
    assert (
        "error: 2 of 3 releases no longer rebuild: model@v1.0.0 (MISMATCH: stages differ from "
        "the committed dvc.lock: train); model@v2.0.0 (ERROR: the DVC remote lacks x)"
    ) in text
    text, code = field.summary(results[2:], varied=True)
    assert code == 0 and text.startswith("lab (varied environment) rebuild of 1 release:")
    other_cpu = field.FieldResult("model@v3.0.0", "equivalent", "kernel moved bytes", 9.0)
    assert field.summary([other_cpu], varied=False)[1] == 1
    other_cpu.equivalent_passes = True  # --accept-equivalent: passes, still shown as such
    text, code = field.summary([other_cpu], varied=False)
    assert code == 0 and "EQUIVALENT" in text
    assert field.summary([], varied=False) == (
        "no releases yet: nothing to rebuild (`make release VERSION=v0.1.0` makes one)",
        0,
    )


def committed_repository(path: Path) -> str:
    """A git repository at ``path`` with one commit (a pipeline with no stages and no
    dvc.lock, a tracked file, an ignored one); its HEAD."""
    import subprocess

    def git(*args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        return subprocess.run(command, cwd=path, check=True, capture_output=True, text=True).stdout

    path.mkdir(exist_ok=True)
    git("init", "-q")
    (path / "params.yaml").write_text("seed: 1\n")
    (path / ".gitignore").write_text("ignored.txt\n")
    (path / "dvc.yaml").write_text("stages: {}\n")
    git("add", "-A")
    git("commit", "-qm", "first")
    git("tag", "v1")
    return git("rev-parse", "HEAD").strip()


def test_a_rebuild_of_the_checked_out_commit_names_the_uncommitted_changes_it_leaves_out(
    tmp_path,
):
    """Tracked files modified or staged and untracked files git does not ignore are named;
    ignored files are not; nor is anything when the workspace is clean or the rebuilt commit
    is not the checked-out one (the workspace has no bearing on it)."""
    import subprocess

    head = committed_repository(tmp_path)
    assert rebuild.workspace_note(tmp_path, "HEAD", head) == ""
    (tmp_path / "params.yaml").write_text("seed: 2\n")
    (tmp_path / "staged.yaml").write_text("x: 1\n")
    subprocess.run(["git", "add", "staged.yaml"], cwd=tmp_path, check=True)
    (tmp_path / "new.py").write_text("")
    (tmp_path / "ignored.txt").write_text("")
    assert rebuild.uncommitted_changes(tmp_path) == ["params.yaml", "staged.yaml", "new.py"]
    assert rebuild.workspace_note(tmp_path, "HEAD", head) == (
        "note: 3 uncommitted changes (params.yaml, staged.yaml, new.py) are not part of this "
        f"rebuild of HEAD ({head[:12]}): it rebuilds what was committed, in a clone of its "
        "own. Commit them to rebuild them."
    )
    assert f"rebuild of v1 ({head[:12]}, the checked-out commit)" in rebuild.workspace_note(
        tmp_path, "v1", head
    )
    assert rebuild.workspace_note(tmp_path, "v0", "f" * 40) == ""
    for index in range(3):
        (tmp_path / f"more{index}.py").write_text("")
    assert "(params.yaml, staged.yaml, more0.py, and 3 more)" in rebuild.workspace_note(
        tmp_path, "HEAD", head
    )
    outcome = rebuild.Rebuild("HEAD", head, False, note="note: left out")
    assert rebuild.report(outcome).splitlines()[-1] == "note: left out"


def test_make_rebuild_says_first_and_last_what_it_left_out_even_when_it_cannot_rebuild(
    tmp_path, monkeypatch, capsys
):
    """Through the command: a checked-out commit with no dvc.lock cannot be rebuilt, and the
    output still begins and ends with the uncommitted change it would have left out."""
    cli = machinery("tools.cli")
    committed_repository(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 2\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["rebuild", "--no-record", "--", "HEAD"]) == rebuild.EXIT_ERROR
    said = capsys.readouterr()
    lines = (said.out + said.err).splitlines()
    assert lines[0].startswith("note: 1 uncommitted change (params.yaml) is not part of"), lines
    assert lines[0].endswith("Commit it to rebuild it."), lines
    assert lines[-1] == lines[0], lines
    assert "error: HEAD has no committed dvc.lock" in said.err


UV_LOCK_TEXT = """
version = 1
[[package]]
name = "PROJECT"
version = "0.1.0"
source = { virtual = "." }
[[package]]
name = "antlr4-python3-runtime"
version = "4.9.3"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://x/antlr4.tar.gz", hash = "sha256:ANTLR" }
[[package]]
name = "helper"
version = "1.0"
source = { directory = "helper" }
"""


def test_the_rebuild_builds_from_source_only_what_the_checkouts_own_lock_builds():
    """uv installs a revision's environment outside the seal: an sdist whose hash the
    checkout's lock does not have, and any folder of the revision's, are never built."""
    locking = machinery("tools.locking")
    own = UV_LOCK_TEXT.replace("PROJECT", "p").replace("ANTLR", "a" * 64)
    assert locking.builds_not_in(own, own) == ["helper"]  # a folder: its code is the revision's
    swapped = UV_LOCK_TEXT.replace("PROJECT", "p").replace("ANTLR", "b" * 64)
    assert locking.builds_not_in(swapped, own) == ["antlr4-python3-runtime", "helper"]
    errors = machinery("tools.errors")
    with pytest.raises(errors.LockError, match=r"uv\.lock is not TOML"):  # nothing on a guess
        locking.builds_not_in("\ufeff" + own, own)


def test_only_a_wheel_of_the_checkouts_wheels_folder_is_taken_as_installed_not_built():
    """reproml's wheels are installed, never built. uv reads the first kind of source a lock
    table names: a table that also names a git, URL, registry or folder source, or a wheel
    outside wheels/, is something a revision could build (or fetch) outside the seal."""
    locking = machinery("tools.locking")
    own = UV_LOCK_TEXT.replace("PROJECT", "p").replace("ANTLR", "a" * 64)

    def package(source: str) -> str:
        return '[[package]]\nname = "w"\nversion = "1"\nsource = { ' + source + " }\n"

    wheel = 'path = "wheels/w-1-py3-none-any.whl"'
    assert locking.builds_not_in(own + package(wheel), own) == ["helper"]
    for forged in (
        f'git = "https://x/w?rev=1#{"c" * 40}", {wheel}',
        f'url = "https://x/w.tar.gz", {wheel}',
        f'registry = "https://pypi.org/simple", {wheel}',
        'path = "../w-1-py3-none-any.whl"',
        'path = "/tmp/w-1-py3-none-any.whl"',
        'path = "wheels/../../w-1-py3-none-any.whl"',
        'path = "w-1.tar.gz"',
        'virtual = ".", git = "https://x/w"',
    ):
        assert "w" in locking.builds_not_in(own + package(forged), own), forged


def test_a_committed_link_out_of_the_checkout_is_refused_before_anything_is_written(tmp_path):
    sandbox = machinery("tools.sandbox")
    errors = machinery("tools.errors")
    checkout = tmp_path / "checkout"
    (checkout / "inner").mkdir(parents=True)
    (checkout / "inner" / "up").symlink_to("..")  # still inside
    (checkout / "cache").symlink_to(tmp_path)  # out
    assert sandbox.inside(checkout, checkout / "inner" / "up" / "x") == checkout.resolve() / "x"
    with pytest.raises(errors.RebuildError, match="cache/x is a link that leads out"):
        sandbox.inside(checkout, checkout / "cache" / "x")


def test_the_seal_shows_only_the_system_the_interpreter_and_one_writable_folder(tmp_path):
    sandbox = machinery("tools.sandbox")
    seal = sandbox.Seal("bwrap", tmp_path / "work", [tmp_path / "python"], [tmp_path / "work/v"])
    command = seal.wrap(["dvc", "repro"], tmp_path / "work")
    assert command[0] == "bwrap" and command[-3:] == ["--", "dvc", "repro"]
    joined = " ".join(command)
    assert "--unshare-all" in command and "--die-with-parent" in command
    assert f"--ro-bind {tmp_path / 'python'} " in joined
    assert f"--bind {tmp_path / 'work'} " in joined
    assert joined.index(f"--bind {tmp_path / 'work'} ") < joined.index(
        f"--ro-bind {tmp_path / 'work/v'} "
    )  # the environment inside the writable folder stays read-only
    assert "/home" not in joined and " /etc " not in joined and "/etc/shadow" not in joined


def test_the_seal_shows_an_interpreter_installation_never_a_folder_holding_home(tmp_path):
    """A revision picks its interpreter (.python-version may be a path): the folder the seal
    would show must be a Python installation, and hold neither HOME nor the project."""
    sandbox = machinery("tools.sandbox")
    errors = machinery("runtime.errors")
    home, venv = tmp_path / "home", tmp_path / "venv"
    installation = home / ".pyenv" / "versions" / "3.11.7"
    (installation / "lib" / "python3.11").mkdir(parents=True)
    (installation / "lib" / "python3.11" / "os.py").write_text("")
    venv.mkdir()
    for chosen, allowed in ((installation, True), (home / ".pyenv", False), (tmp_path, False)):
        (venv / "pyvenv.cfg").write_text(f"home = {chosen / 'bin'}\nversion = 3.11.7\n")
        if allowed:
            assert sandbox.interpreter_prefix(venv, [home]) == installation.resolve()
            continue
        with pytest.raises(errors.ProjectError, match="not a Python installation of its own"):
            sandbox.interpreter_prefix(venv, [home])


def test_an_md5_that_would_be_a_path_out_of_the_cache_is_refused(tmp_path):
    """A .dvc file or manifest anyone committed: its md5 becomes a cache path."""
    rebuild = machinery("tools.rebuild")
    errors = machinery("tools.errors")
    good = "0" * 32
    assert rebuild.cache_object(tmp_path, good) == tmp_path / "files/md5/00" / ("0" * 30)
    assert rebuild.cache_object(tmp_path, good + ".dir").name == "0" * 30 + ".dir"
    for forged in ("..md5/../../../../.git/config", "0" * 31, "A" * 32, None):
        with pytest.raises(errors.RebuildError, match="is not an md5"):
            rebuild.cache_object(tmp_path, forged)


def test_a_short_commit_name_that_a_pushed_tag_also_carries_is_refused(tmp_path):
    """TRUST= names what the user reviewed: a tag named like that commit's short hash, on
    another commit, must not redirect it."""
    import subprocess

    rebuild = machinery("tools.rebuild")
    errors = machinery("tools.errors")
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]

    def git(*args):
        done = subprocess.run(["git", *identity, *args], cwd=tmp_path, capture_output=True)
        return done.stdout.decode().strip()

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "reviewed")
    reviewed = git("rev-parse", "--short=12", "HEAD")
    git("commit", "-q", "--allow-empty", "-m", "pushed by anyone")
    git("tag", reviewed, "HEAD")
    with pytest.raises(errors.RebuildError, match="names a commit and also refs/tags/"):
        rebuild.resolve(tmp_path, reviewed)
    git("tag", "-d", reviewed)
    assert rebuild.resolve(tmp_path, reviewed).commit.startswith(reviewed)
