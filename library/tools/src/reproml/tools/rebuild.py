"""Rebuild any revision in a clean temporary worktree and compare it with its own dvc.lock.

The user's working tree is never touched: the revision is fetched alone into a repository of
its own in a temporary directory, gets the data its ``.dvc`` files name (from the project's DVC
cache or remote) and its own virtualenv from its own uv.lock (through uv's cache). Then
``dvc repro --force --no-run-cache`` recomputes every stage, sealed (tools/sandbox.py), and
each stage of the rebuilt dvc.lock is compared with the committed one by meaning: command,
parameter values, and the hashes of every dependency and output.

Everything this process does to the checkout (the data, the environment) is done before any
of the revision's code runs; afterwards it only reads, and only files inside the checkout.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import reproml.runtime as runtime_package

from ..runtime.errors import ProjectError
from ..runtime.hashing import file_digest
from ..runtime.launcher import DROPPED_ENV, VARIED_UMASK, varied_environment
from ..runtime.proc import path_first, run
from . import dvc_lock
from .commands import run_checked, start_background, stop_background
from .dvc_lock import DVC_LOCK, LockedStage
from .equivalence import portable_verdict
from .errors import LockError, RebuildError, RemoteError
from .git import git, git_checked, show_yaml, tracked_at
from .locking import UV_LOCK, builds_not_in, find_uv
from .notes import append_note, utc_now
from .remote import fetch_objects
from .sandbox import MAX_READ_BYTES, NO_NETWORK, Seal, bubblewrap, inside, interpreter_prefix

EXIT_MATCH, EXIT_MISMATCH, EXIT_ERROR, EXIT_EQUIVALENT = 0, 1, 2, 3
# How many uncommitted paths the workspace note names (the count says how many in all).
NOTE_NAMES = 3
# Run by the revision's own interpreter with this package's environment code: how that
# environment differs from the revision's lock, and its fingerprint.
PROBE_ENVIRONMENT = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); from importlib import import_module; "
    "environment = import_module('reproml.runtime.environment'); "
    "print(json.dumps({'drift': environment.drift(sys.argv[2]), "
    "'fingerprint': environment.fingerprint(sys.argv[2])}))"
)


# Run in the revision's fresh environment while the drift probe and the fetch run: compile
# (never import) the installed source files this project's own environment has bytecode for,
# i.e. what its stages, DVC and tools imported here, so Python does not compile them inside
# the first stage that imports each one. argv: a JSON list of paths relative to
# site-packages, and the site-packages folder (the interpreter's own unless given). Bytecode
# up to date is left alone; a file that is missing or does not compile is passed over.
WARM_BYTECODE = (
    "import compileall, json, sys, sysconfig\n"
    "from pathlib import Path\n"
    "site = Path(sys.argv[2] if len(sys.argv) > 2 else sysconfig.get_paths()['purelib'])\n"
    "for name in json.loads(Path(sys.argv[1]).read_text(encoding='utf-8')):\n"
    "    if (site / name).is_file():\n"
    "        compileall.compile_file(str(site / name), quiet=2)"
)


def compiled_here(site: Path | None = None) -> list[str]:
    """The installed source files this interpreter's environment (or ``site``) holds bytecode
    for, relative to its site-packages: what this project's processes imported, a fair guess
    at what a rebuild of one of its revisions imports."""
    import sysconfig

    site = site or Path(sysconfig.get_paths()["purelib"])
    suffix = f".{sys.implementation.cache_tag}.pyc"
    found = set()
    for folder, _, files in os.walk(site):
        if Path(folder).name != "__pycache__":
            continue
        for name in files:
            if name.endswith(suffix):
                source = Path(folder).parent / (name[: -len(suffix)] + ".py")
                found.add(source.relative_to(site).as_posix())
    return sorted(found)


@dataclass
class Rebuild:
    """What one rebuild found; ``as_note()`` is what gets kept (a git note, notes.py)."""

    ref: str
    commit: str
    varied: bool
    timings: dict[str, float] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    # Set when the bytes differ, the machine differs, and predictions and metrics do not.
    equivalent: dict | None = None
    environment: dict = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    # What of the workspace this rebuild left out (``workspace_note``): said, not recorded,
    # since the record is about the commit, whatever the workspace held.
    note: str = ""
    # Whether the revision's code ran in the sandbox (tools/sandbox.py).
    sealed: bool = False

    @property
    def result(self) -> str:
        if self.timed_out:
            return "timeout"
        if self.error:
            return "error"
        ok = self.stages and all(value == "match" for value in self.stages.values())
        if ok and not self.differences:
            return "match"
        return "equivalent" if self.equivalent else "mismatch"

    def as_note(self) -> dict:
        return {
            "kind": "rebuild",
            "ref": self.ref,
            "revision": self.commit,
            "result": self.result,
            "varied_environment": self.varied,
            "sealed": self.sealed,
            "stages": self.stages,
            "differences": self.differences,
            "error": self.error,
            "timings": {key: round(value, 3) for key, value in self.timings.items()},
            "environment": self.environment,
            "equivalent": self.equivalent,
            "started": self.started,
            "finished": self.finished,
        }


def _git(repo: Path, *args: str) -> str:
    return git_checked(repo, *args, error=RebuildError).stdout


def compare_locks(
    expected: dict[str, LockedStage], actual: dict[str, LockedStage]
) -> tuple[dict[str, str], list[str]]:
    """Per-stage MATCH/MISMATCH and a line for every difference, comparing by meaning."""
    results, differences = {}, []
    for name in list(expected) + [name for name in actual if name not in expected]:
        if name not in actual or name not in expected:
            where = "the rebuild" if name not in actual else "the committed dvc.lock"
            differences.append(f"{name}: stage missing from {where}")
            results[name] = "mismatch"
            continue
        stage_differences = []
        for part in ("cmd", "params"):
            want, have = getattr(expected[name], part), getattr(actual[name], part)
            if want != have:
                stage_differences.append(f"{name}: {part} {want!r} -> {have!r}")
        for part in ("deps", "outs"):
            want, have = getattr(expected[name], part), getattr(actual[name], part)
            for path in sorted(set(want) | set(have)):
                if want.get(path) != have.get(path):
                    stage_differences.append(
                        f"{name}: {part[:-1]} {path} md5 {want.get(path)} -> {have.get(path)}"
                    )
        results[name] = "mismatch" if stage_differences else "match"
        differences += stage_differences
    return results, differences


def format_table(rebuild: Rebuild) -> str:
    lines = [f"  {'stage':<12} result"]
    lines += [f"  {name:<12} {value.upper()}" for name, value in rebuild.stages.items()]
    lines += [f"    {line}" for line in rebuild.differences]
    if rebuild.equivalent:
        before = rebuild.equivalent["committed_machine"]
        after = rebuild.equivalent["rebuilt_machine"]
        lines += [
            "  EQUIVALENT: the bytes differ, but this machine is not the one that trained it:",
            f"    committed on {_describe_machine(before)}",
            f"    rebuilt on   {_describe_machine(after)}",
            f"    {rebuild.equivalent['rule']}",
        ]
    return "\n".join(lines)


def _describe_machine(machine: dict) -> str:
    cpu = machine.get("cpu") or {}
    blas = ", ".join(machine.get("blas") or []) or "no BLAS recorded"
    return f"{machine.get('platform')}, {cpu.get('vendor', '?')} {cpu.get('isa', '?')}, {blas}"


# What a rebuild's processes inherit of ours: locale, paths, uv's and pip's settings, the
# BLAS/OpenMP and launcher variables that decide model bytes. Nothing else: no token, cloud
# credential, ssh-agent socket or CI secret reaches the revision's code.
_INHERITED = re.compile(
    r"(PATH|LANG|LANGUAGE|LC_\w+|TZ|TERM|TMPDIR|TEMP|TMP|USER|LOGNAME|SHELL|SYSTEMROOT|COMSPEC"
    r"|PATHEXT|PIP_\w+|SSL_CERT_\w+|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|DVC_NO_ANALYTICS"
    r"|UV_(CACHE_DIR|PYTHON_INSTALL_DIR|PYTHON|OFFLINE|INDEX_URL|DEFAULT_INDEX|INDEX"
    r"|EXTRA_INDEX_URL|LINK_MODE|HTTP_TIMEOUT|CONCURRENT_\w+|NATIVE_TLS|NO_PROGRESS)"
    r"|REPRO_\w+|OPENBLAS_\w+|OMP_\w+|MKL_\w+|PYTHON(?!PATH$)\w*|PYENV_\w+|CI|GCSFS_\w+)"
)
_USERINFO = re.compile(r"(://)[^/@\s]+@")
_SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY", "CREDENTIAL", "USERNAME", "AUTH")


def isolated_environment(environ: dict[str, str], home: Path, uv: str | None) -> dict[str, str]:
    """The environment a rebuild's processes run in: only ``_INHERITED`` variables (none whose
    name says it is a secret), a HOME of their own with no git, ssh or DVC configuration, no
    system git configuration (credential helpers), and uv's cache and interpreters where ours
    are, so nothing is downloaded again."""
    env = {
        key: _USERINFO.sub(r"\1", value)  # index URLs may carry `user:token@`
        for key, value in environ.items()
        if _INHERITED.fullmatch(key) and not any(word in key.upper() for word in _SECRET_WORDS)
    }
    for variable, command in (("UV_CACHE_DIR", "cache"), ("UV_PYTHON_INSTALL_DIR", "python")):
        if uv is None:  # nothing to install (a sweep point): no uv, no cache to point at
            break
        found = run([uv, command, "dir"], env=environ)
        if found.returncode == 0 and found.stdout.strip():
            env[variable] = str(Path(found.stdout.strip()).absolute())
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("", encoding="utf-8")
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        DVC_NO_ANALYTICS="1",
    )
    env.pop("VIRTUAL_ENV", None)
    # The rebuild's fresh environment has no bytecode yet: without this, every DVC and tool
    # process there would compile DVC again (the stages drop it themselves).
    for variable in DROPPED_ENV:
        env.pop(variable, None)
    return env


class Rebuilder:
    """One rebuild, in a repository of its own that holds only the revision (no alternates
    path into the project's ``.git``, no config of the project's, so no signing key or
    credential helper), whose processes get an isolated environment and, where bubblewrap
    runs, a sandbox (tools/sandbox.py). The revision's data is fetched by this process, with
    the project's credentials, into the project's DVC cache, and copied, re-hashed, into the
    rebuild's own cache: the revision's code never sees a credential, and never writes to the
    project's cache. Records are signed afterwards, here, never in the rebuild.

    The order matters: the checkout, its data and its environment are written here before any
    of the revision's code runs (``sealed_run``), so that code cannot plant a link that makes
    this process write outside the scratch folder."""

    def __init__(
        self,
        repo: Path,
        rebuild: Rebuild,
        uv: str,
        keep: bool,
        timeout: float | None,
        require_sealed: bool = False,
    ):
        self.repo = repo
        self.rebuild = rebuild
        self.uv = uv
        self.keep = keep
        self.timeout = timeout
        self.bwrap, self.unsealed_reason = bubblewrap()
        if self.bwrap is None and require_sealed:
            raise RebuildError(
                f"a sealed rebuild was required, and {self.unsealed_reason}. Nothing was run."
            )
        rebuild.sealed = self.bwrap is not None
        self.scratch = Path(tempfile.mkdtemp(prefix="rebuild-")).resolve()
        # What the sandbox may write: the checkout, a HOME and a bytecode cache of its own.
        self.work = self.scratch / "work"
        self.worktree = self.work / repo.name
        self.venv = self.worktree / ".venv"
        venv_bin = self.venv / ("Scripts" if os.name == "nt" else "bin")
        isolated = isolated_environment(dict(os.environ), self.work / "home", uv)
        # Bytecode goes beside, not into, the environment: its files are uv's cache's own
        # (hard links), which the sandbox shows read-only.
        isolated["PYTHONPYCACHEPREFIX"] = str(self.work / "bytecode")
        self.env = path_first(isolated, venv_bin)
        self.dvc = [str(venv_bin / "dvc")]
        self.python = str(venv_bin / "python")
        self.readable: list[Path] = []  # shown read-only inside the seal, besides the system
        self.seal: Seal | None = None
        self.tracked: list[tuple[str, str, str]] = []  # (.dvc file, path, md5) it needs
        self.warming = None  # the bytecode warm-up, while it runs

    def step(self, number: int, name: str, title: str, action) -> None:
        print(f"[{number}/4] {name}: {title}", flush=True)
        start = time.perf_counter()
        try:
            action()
        finally:
            self.rebuild.timings[name] = time.perf_counter() - start
        print(f"      {name} took {self.rebuild.timings[name]:.1f} s", flush=True)

    def checkout(self) -> None:
        """The revision alone, fetched from the project's repository into an empty one: no
        ``--shared`` clone, whose alternates file would name the project's ``.git``."""
        self.worktree.mkdir(parents=True)
        source = self.repo.resolve().as_uri()
        commit = self.rebuild.commit
        # The user's git configuration stays out of it: no hooks, filters or LFS fetches
        # that the revision's .gitattributes or .lfsconfig could set off.
        plain = {**self.env, "GIT_LFS_SKIP_SMUDGE": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        for args in (
            ["init", "--quiet"],
            ["fetch", "--quiet", "--depth=1", "--no-tags", source, commit],
            ["checkout", "--quiet", "--detach", commit],
        ):
            command = ["git", "-c", f"core.hooksPath={os.devnull}", *args]
            run_checked(command, RebuildError, cwd=self.worktree, env=plain)
        refuse_links_out(self.worktree)
        if os.path.lexists(self.venv):
            raise RebuildError(
                f"the revision commits {self.venv.name}: its environment would be written "
                "through what it committed there. Fix: remove .venv from git "
                "(`git rm -r --cached .venv`) and commit."
            )

    def install(self) -> None:
        """The revision's environment from its own lock, by this process and uv (a wheel's
        install runs none of its code), building from source only what the checkout's own lock
        builds the same way (``builds_not_in``). Then the seal, which shows the environment's
        interpreter read-only."""
        revision_lock = self.worktree / UV_LOCK
        if not revision_lock.is_file():
            raise RebuildError(f"the revision has no {UV_LOCK}: it has no environment to rebuild")
        own_lock = self.repo / UV_LOCK
        try:
            refused = builds_not_in(
                revision_lock.read_text(encoding="utf-8", errors="replace"),
                own_lock.read_text(encoding="utf-8") if own_lock.is_file() else "",
            )
        except LockError as error:
            raise RebuildError(f"the revision's environment: {error}") from None
        # None of the revision's uv settings (uv.toml, [tool.uv]: indexes, interpreters to
        # download): its lock says what to install, and the interpreter is a version.
        command = [self.uv, "sync", "--frozen", "--no-config", "--no-python-downloads"]
        command += [f"--no-build-package={name}" for name in refused]
        command += self.python_request()
        result = run(command, cwd=self.worktree, env=self.env, stream=True)
        if result.returncode != 0:
            raise RebuildError(f"could not create the revision's environment:\n{result.stdout}")
        if self.bwrap:
            private = [Path.home().resolve(), self.repo.resolve()]
            try:
                prefix = interpreter_prefix(self.venv, private)
            except ProjectError as error:
                raise RebuildError(str(error)) from None
            self.readable += [prefix] if prefix else []
        # The drift probe imports this environment's runtime code (installed here, not in the
        # revision's environment): a copy of that package alone, read-only.
        tool = self.scratch / "tool"
        shutil.copytree(
            Path(runtime_package.__file__).parent,
            tool / "reproml" / "runtime",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        listed = self.scratch / "compiled-here.json"
        listed.write_text(json.dumps(compiled_here()), encoding="utf-8")
        self.readable += [tool, listed]
        if self.bwrap:
            self.seal = Seal(self.bwrap, self.work, self.readable, read_only=[self.venv])

    def python_request(self) -> list[str]:
        """``--python <version>`` from the revision's .python-version, which must name a
        version (``3.11``), not a path to a program; nothing when the user chose one (UV_PYTHON,
        theirs) or the revision names none."""
        if self.env.get("UV_PYTHON"):
            return []
        pinned = inside(self.worktree, self.worktree / ".python-version")
        if not pinned.is_file():
            return []
        text = pinned.read_text(encoding="utf-8", errors="replace")[:200].strip()
        if not re.fullmatch(r"(cpython-?)?3(\.\d{1,2}){1,2}", text):
            raise RebuildError(
                f".python-version holds {text[:60]!r}, not a Python version like 3.11: a path "
                "there would run a program of the revision's outside the sandbox"
            )
        return ["--python", text]

    def sealed(self, command: list[str], cwd: Path | None = None) -> list[str]:
        """``command`` as it runs the revision's code: in the seal, where there is one."""
        cwd = cwd or self.worktree
        return self.seal.wrap(command, cwd) if self.seal else command

    def sealed_run(self, command: list[str], **kw):
        return run(self.sealed(command), cwd=self.worktree, env=self.env, **kw)

    def environment(self) -> None:
        """The revision's environment, checked against its lock by its own interpreter (in
        the seal), and its data checked out by its own DVC; the bytecode warm-up starts."""
        self.install()
        listed = self.scratch / "compiled-here.json"
        warm = self.sealed([self.python, "-c", WARM_BYTECODE, str(listed)], self.work / "home")
        self.warming = start_background(warm, cwd=self.work / "home", env=self.env)
        tool = str(self.scratch / "tool")
        probe = self.sealed_run([self.python, "-c", PROBE_ENVIRONMENT, tool, str(self.worktree)])
        if probe.returncode != 0:
            raise RebuildError(f"could not inspect the revision's environment:\n{probe.stderr}")
        try:
            found = json.loads(probe.stdout)
            drift, fingerprint = list(found["drift"]), dict(found["fingerprint"])
        except (ValueError, TypeError, KeyError):
            raise RebuildError(
                f"the revision's environment answered the probe with {probe.stdout[-200:]!r}"
            ) from None
        if drift:
            raise RebuildError(
                "the revision's environment differs from its own lock:\n"
                + "\n".join(f"  {line}" for line in drift)
            )
        self.rebuild.environment = fingerprint
        if self.tracked:
            self._dvc("checkout", "--quiet", *sorted({dvc_file for dvc_file, _, _ in self.tracked}))

    def fetch(self) -> None:
        """The revision's tracked inputs: what the project's cache lacks is fetched from the
        remote (by this process), then each file is copied into the rebuild's own cache with
        its md5 checked; the revision's DVC checks them out later, sealed."""
        self.tracked = tracked_at(self.repo, self.rebuild.commit)
        inputs = [(path, md5) for _, path, md5 in self.tracked]
        if not inputs:
            return
        cache = self.repo / ".dvc" / "cache"
        if self._missing(cache, inputs):
            try:  # a remote that cannot be read is named as such, not as missing data
                fetch_objects(self.repo, sorted({md5 for _, md5 in inputs}))
            except RemoteError as error:
                raise RebuildError(f"could not fetch this revision's data: {error}") from None
        missing = self._missing(cache, inputs)
        if missing:
            raise RebuildError(
                "data this revision needs is missing from the DVC remote and the local cache:\n"
                + "\n".join(f"  {line}" for line in missing)
                + "\nFix: `dvc push` it from a machine or clone that still has it."
            )
        own_cache = self.worktree / ".dvc" / "cache"
        for path, md5 in self._files(cache, inputs, manifests=True):
            source, copy = cache_object(cache, md5), cache_object(own_cache, md5)
            inside(self.worktree, copy.parent)  # a committed link cannot lead the copy out
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy, follow_symlinks=False)
            actual = None if md5.endswith(".dir") else file_digest(copy, "md5")
            if actual not in (None, md5):
                raise RebuildError(
                    f"{path}: its bytes hash to md5 {actual}, but the revision records {md5}. "
                    f"The cache object {source} is corrupted (DVC trusts read-only cache "
                    "objects without rehashing them). Fix: delete that object and `dvc pull` "
                    "again."
                )

    def _files(self, cache: Path, inputs, manifests: bool = False) -> list[tuple[str, str]]:
        """Every file behind the inputs with its md5, directories expanded from their manifest
        in ``cache`` (and the manifests themselves, if asked)."""
        files = []
        for path, md5 in inputs:
            if not md5.endswith(".dir"):
                files.append((path, md5))
                continue
            manifest = json.loads(cache_object(cache, md5).read_text(encoding="utf-8"))
            files += [(f"{path}/{entry['relpath']}", entry["md5"]) for entry in manifest]
            if manifests:
                files.append((path, md5))
        return files

    def _missing(self, cache: Path, inputs) -> list[str]:
        """Inputs, then files of directory inputs, that ``cache`` lacks."""
        absent = [(p, m) for p, m in inputs if not cache_object(cache, m).exists()]
        present = [entry for entry in inputs if entry not in absent]
        absent += [
            (p, m) for p, m in self._files(cache, present) if not cache_object(cache, m).exists()
        ]
        return [f"{path} (md5 {md5})" for path, md5 in absent]

    def _dvc(self, *args: str) -> None:
        result = self.sealed_run([*self.dvc, *args])
        if result.returncode != 0:
            raise RebuildError(f"`dvc {' '.join(args)}` failed:\n{result.stdout}{result.stderr}")

    def compute(self) -> None:
        env = dict(self.env)
        umask = -1
        if self.rebuild.varied:
            env = varied_environment(env)
            umask = VARIED_UMASK if os.name == "posix" else -1
        # The checkout holds the committed dvc.lock: remove it, so that a lock the rebuild
        # does not rewrite can never be compared with itself.
        (self.worktree / "dvc.lock").unlink(missing_ok=True)
        command = self.sealed([*self.dvc, "repro", "--force", "--no-run-cache", "--no-commit"])
        result = run(
            command, cwd=self.worktree, env=env, stream=True, umask=umask, timeout=self.timeout
        )
        self.stop_warming()  # nothing of the revision's runs while its results are read
        if result.returncode is None:
            self.rebuild.timed_out = True
            raise RebuildError(f"dvc repro did not finish within {self.timeout:g} s: unchecked")
        if result.returncode != 0:
            failed = "dvc repro failed: " + result.stdout.strip()[-2000:]
            if self.seal:
                failed += f"\n({NO_NETWORK})"
            self.rebuild.differences.append(failed)

    def compare(self) -> None:
        committed = dvc_lock.at_commit(self.repo, self.rebuild.commit)
        rebuilt_path = inside(self.worktree, self.worktree / DVC_LOCK)
        if not rebuilt_path.is_file():
            raise RebuildError("dvc repro wrote no dvc.lock: nothing was rebuilt to compare")
        if rebuilt_path.stat().st_size > MAX_READ_BYTES:
            raise RebuildError(f"the rebuilt dvc.lock is over {MAX_READ_BYTES} bytes: not read")
        try:
            rebuilt = yaml.safe_load(rebuilt_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise RebuildError(f"the rebuilt dvc.lock is not YAML: {error}") from None
        if not isinstance(rebuilt, dict):
            raise RebuildError("the rebuilt dvc.lock holds no stages: nothing to compare")
        stages, differences = compare_locks(committed, dvc_lock.parse(rebuilt))
        self.rebuild.stages = stages
        self.rebuild.differences += differences
        if differences:
            self.rebuild.equivalent = portable_verdict(
                self.repo, self.rebuild.commit, self.worktree, self.rebuild.stages
            )

    def stop_warming(self) -> None:
        if self.warming is not None:
            stop_background(self.warming)
            self.warming = None

    def cleanup(self) -> None:
        self.stop_warming()
        if self.keep:
            print(f"kept the worktree at {self.worktree}")
            return
        shutil.rmtree(self.scratch, ignore_errors=True)


def unsealed_warning() -> str:
    """The line an unsealed rebuild starts with; empty where rebuilds run sealed."""
    sealed, why = bubblewrap()
    if sealed:
        return ""
    return (
        f"warning: UNSEALED: {why}. The revision's code runs with your rights: it can read "
        "your files and reach the network. Its record says sealed: false."
    )


def refuse_links_out(root: Path) -> None:
    """Every symbolic link the checkout holds must resolve inside it, before this process
    writes the data and the environment there (git checks out links as links)."""
    listed = _git(root, "ls-files", "-s", "-z")
    for entry in listed.split("\0"):
        mode, _, rest = entry.partition(" ")
        if mode == "120000":
            inside(root, root / rest.split("\t", 1)[1])


@dataclass
class Target:
    """What a revision name resolves to. ``unverified`` says what it is when it is neither a
    release that verifies nor the checked-out commit: then running it needs the user's word."""

    commit: str
    unverified: str = ""


def resolve(repo: Path, ref: str) -> Target:
    """The commit ``ref`` names: a released version (``v1.0.0``, or its tag ``model@v1.0.0``:
    the release that verifies, never another ref of that name anyone could push), a commit, a
    tag or a branch. A short name that several refs carry, pointing at different commits, is
    refused rather than guessed."""
    from . import registry

    if not ref or ref.startswith("-") or any(ord(char) < 32 for char in ref):
        raise RebuildError(f"{ref!r} is not a revision: give a commit, tag or version like v1.0.0")
    try:
        found, _ = registry.registry_view(repo)
    except ProjectError:
        found = []  # no artifact declared, or no trusted branch: plain git names only
    names = registry.tags_for_version(repo, ref) if found else ()
    release = next((r for r in found if r.tag in names), None)
    if release:
        return Target(release.commit)
    artifacts = show_yaml(repo, "HEAD", "dvc.yaml").get("artifacts") or {}
    names = [f"refs/tags/{ref}", f"refs/heads/{ref}", f"refs/remotes/{ref}"]
    names += [f"refs/tags/{name}@{ref}" for name in artifacts]
    # A DVC experiment by its name (refs/exps/<baseline>/<name>): anyone can push one.
    # Never for a name git itself gives (HEAD, ORIG_HEAD ...): REV=HEAD is the checkout.
    if not re.fullmatch(r"[A-Z_]*HEAD", ref):
        exps = git(repo, "for-each-ref", "--format=%(refname)", "refs/exps/").stdout.split()
        names += [name for name in exps if name.rsplit("/", 1)[-1] == ref]
    commits = {}
    for name in names:
        peeled = git(repo, "rev-parse", "--verify", "--quiet", name + "^{commit}")
        if peeled.returncode == 0:
            commits[name] = peeled.stdout.strip()
    if commits and re.fullmatch(r"[0-9a-fA-F]{4,40}", ref):
        objects = git(repo, "rev-parse", "--disambiguate=" + ref.lower()).stdout.split()
        if objects:  # a ref anyone could push, named like the commit the user means
            listed = ", ".join(f"{name} ({commit[:12]})" for name, commit in commits.items())
            raise RebuildError(
                f"{ref!r} names a commit and also {listed}. Fix: give the full 40-digit "
                "commit, or the ref in full (REV=refs/tags/<name>)."
            )
    if len(set(commits.values())) > 1:
        listed = ", ".join(f"{name} ({commit[:12]})" for name, commit in commits.items())
        raise RebuildError(
            f"{ref!r} names several refs that point at different commits: {listed}. Fix: name "
            "one in full, e.g. REV=refs/tags/<name>, or give the commit."
        )
    found_commit = git(repo, "rev-parse", "--verify", "--quiet", ref + "^{commit}")
    if commits:
        commit, name = next(iter(commits.values())), next(iter(commits))
    elif found_commit.returncode == 0:
        commit, name = found_commit.stdout.strip(), ""
    else:
        raise RebuildError(f"{ref!r} is not a commit, tag or released version in {repo}")
    if commit == git(repo, "rev-parse", "--verify", "--quiet", "HEAD").stdout.strip():
        return Target(commit)  # the checkout's own code, which `make repro` runs anyway
    kinds = {
        "refs/tags/": "the tag",
        "refs/heads/": "the branch",
        "refs/remotes/": "the branch",
        "refs/exps/": "the experiment",
    }
    kind = next(
        (
            f"{k} {name.rsplit('/', 1)[-1] if prefix == 'refs/exps/' else name[len(prefix) :]}"
            for prefix, k in kinds.items()
            if name.startswith(prefix)
        ),
        "",
    )
    if name.startswith("refs/tags/") and found:
        kind += ", which is not a release that verifies (`make provenance REV=...` says why)"
    return Target(commit, kind or "a commit that no verified release and no checkout names")


def refuse_unverified(ref: str, target: Target, trust: str | None, retry: str = "") -> None:
    """A revision that is not a verified release runs only when the user names it again
    (``TRUST=<the same name>``): a word typed for this revision, which no variable set once
    for every job can give. ``retry`` is the command that names it again (default: the
    rebuild's)."""
    if not target.unverified or trust == ref:
        return
    sealed, why = bubblewrap()
    runs = (
        "sealed (no network, no view of your files, keys or processes)"
        if sealed
        else f"UNSEALED, with your rights, your files and your keys ({why})"
    )
    raise RebuildError(
        f"{ref} ({target.commit[:12]}) is {target.unverified}, not a verified release. "
        "Rebuilding or scoring it runs that revision's code (its stages, its DVC and every "
        f"package its lock names), here {runs}. If you trust it, name it again: "
        f"`{retry or f'make rebuild REV={ref}'} TRUST={ref}`."
    )


def rebuild(
    ref: str = "HEAD",
    varied: bool = False,
    keep: bool = False,
    record: bool = True,
    timeout: float | None = None,
    commit: str | None = None,
    trust: str | None = None,
    require_sealed: bool = False,
) -> Rebuild:
    """Rebuild ``ref`` (or, given, ``commit``: a release already resolved and verified) and
    compare; returns the outcome (also kept as a git note if asked). A revision that is not
    a verified release needs ``trust`` equal to ``ref``."""
    repo = Path(_git(Path.cwd(), "rev-parse", "--show-toplevel").strip())
    if commit is None:
        target = resolve(repo, ref)
        refuse_unverified(ref, target, trust)
        commit = target.commit
    outcome = Rebuild(ref=ref, commit=commit, varied=varied, started=utc_now())
    if (warning := unsealed_warning()) and not require_sealed:
        print(warning, flush=True)  # the first line, before anything runs
    outcome.note = workspace_note(repo, ref, commit)
    if outcome.note:
        print(outcome.note, flush=True)
    try:
        if git(repo, "cat-file", "-e", f"{outcome.commit}:dvc.lock").returncode != 0:
            raise RebuildError(f"{ref} has no committed dvc.lock: there is nothing to compare with")
        rebuilder = Rebuilder(repo, outcome, find_uv(), keep, timeout, require_sealed)
    except (RebuildError, LockError) as error:
        if outcome.note:  # the caller says it after the error, so it is also the last line
            error.add_note(outcome.note)
        raise
    seal = "sealed" if outcome.sealed else "UNSEALED"
    print(f"rebuild of {ref} ({outcome.commit[:12]}), {seal}, in {rebuilder.worktree}", flush=True)
    try:
        rebuilder.checkout()
        rebuilder.step(1, "fetch", "the revision's tracked inputs (DVC)", rebuilder.fetch)
        rebuilder.step(
            2,
            "environment",
            "uv sync --frozen (the revision's own lock), its data checked out",
            rebuilder.environment,
        )
        rebuilder.step(3, "compute", "dvc repro --force --no-run-cache", rebuilder.compute)
        rebuilder.step(4, "compare", f"against {ref}'s committed dvc.lock", rebuilder.compare)
    except RebuildError as error:
        outcome.error = str(error)
    finally:
        rebuilder.cleanup()
        outcome.finished = utc_now()
        outcome.timings["total"] = sum(outcome.timings.values())
        if record and (warning := append_note(repo, outcome.commit, outcome.as_note())):
            print(f"warning: {warning}", file=sys.stderr)
    return outcome


def uncommitted_changes(repo: Path) -> list[str]:
    """What `git status` lists: tracked files modified, staged or deleted, and untracked files
    that are not ignored (a new conf/ option or stage module is as much an edit as a changed
    one). A file DVC tracks counts through its .dvc file, once `dvc add` has updated it."""
    listed = git(
        repo,
        "--no-optional-locks",
        "status",
        "--porcelain",
        "-z",
        "--no-renames",
        "--untracked-files=normal",
    ).stdout
    return [entry[3:] for entry in listed.split("\0") if entry[3:]]


def workspace_note(repo: Path, ref: str, commit: str) -> str:
    """A line saying that the workspace's uncommitted changes are not part of this rebuild,
    when ``commit`` is the checked-out one: rebuilding it reads as checking the workspace,
    while it rebuilds only what was committed, in a clone of its own. Empty otherwise: the
    workspace has no bearing on another revision, and nobody expects it to."""
    head = git(repo, "rev-parse", "--verify", "--quiet", "HEAD").stdout.strip()
    changed = uncommitted_changes(repo) if commit == head else []
    if not changed:
        return ""
    shown = ", ".join(changed[:NOTE_NAMES]) + (
        f", and {len(changed) - NOTE_NAMES} more" if len(changed) > NOTE_NAMES else ""
    )
    several = len(changed) > 1
    count = f"{len(changed)} uncommitted change{'s' if several else ''} ({shown})"
    verb, them = ("are", "them") if several else ("is", "it")
    which = "" if ref == "HEAD" else ", the checked-out commit"
    return (
        f"note: {count} {verb} not part of this rebuild of {ref} ({commit[:12]}{which}): it "
        f"rebuilds what was committed, in a clone of its own. Commit {them} to rebuild {them}."
    )


# What an md5 in a .dvc file or a directory manifest may be: anyone may have committed it,
# and it becomes a path in the cache.
MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


def cache_object(cache: Path, md5: str) -> Path:
    """Where DVC's cache at ``cache`` keeps the object ``md5`` (checked to be one)."""
    if not isinstance(md5, str) or not MD5.fullmatch(md5):
        raise RebuildError(f"{str(md5)[:40]!r} is not an md5: the revision's DVC files are forged")
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def report(outcome: Rebuild) -> str:
    timings = ", ".join(
        f"{name} {value:.1f} s" for name, value in outcome.timings.items() if name != "total"
    )
    header = f"rebuild of {outcome.ref} ({outcome.commit[:12]}): {outcome.result.upper()}"
    body = format_table(outcome) if outcome.stages else ""
    error = f"\nerror: {outcome.error}" if outcome.error else ""
    total = outcome.timings.get("total", 0.0)
    note = f"\n{outcome.note}" if outcome.note else ""
    seal = "sealed" if outcome.sealed else "UNSEALED"
    return f"{header}\n{body}{error}\ntime to reproduce: {total:.1f} s ({timings}), {seal}{note}"


def exit_code(outcome: Rebuild, accept_equivalent: bool = False) -> int:
    """0 match, 1 mismatch, 2 could not rebuild, 3 equivalent (0 when it is accepted)."""
    codes = {
        "match": EXIT_MATCH,
        "mismatch": EXIT_MISMATCH,
        "equivalent": EXIT_MATCH if accept_equivalent else EXIT_EQUIVALENT,
    }
    return codes.get(outcome.result, EXIT_ERROR)


def run_rebuild(args: argparse.Namespace) -> int:
    """`make rebuild`: the report, and the exit code a CI job reads (EXIT_* above)."""
    from .notes import publish_after

    try:
        outcome = rebuild(
            args.rev,
            varied=args.vary,
            keep=args.keep,
            record=args.record,
            timeout=args.timeout,
            trust=args.trust,
            require_sealed=args.require_sealed,
        )
    except (RebuildError, LockError) as error:  # nothing rebuilt (no uv, say): "could not"
        print(f"error: {error}", file=sys.stderr)
        # The workspace note (uncommitted changes left out) ends the output, as it began it.
        for note in getattr(error, "__notes__", ()):
            print(note, file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(outcome.as_note(), indent=2, sort_keys=True))
    print(report(outcome))
    code = exit_code(outcome, accept_equivalent=args.accept_equivalent)
    return publish_after(code) if args.push and args.record else code
