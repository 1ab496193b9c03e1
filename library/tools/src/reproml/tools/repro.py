"""`make repro`: DVC's own ``dvc repro``, with two checks DVC cannot make. Before it runs: a
stage verify would leave out (raw ``dvc repro`` finds out only when verify reruns). After it
fails: a full disk, which DVC's "No space left on device" does not place (the cache may be
on another disk than the project)."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..runtime.launcher import PROJECT_ROOT
from ..runtime.pipeline import read
from ..runtime.proc import interpreter_first_on_path
from ..runtime.verification import unverified
from .commands import dvc_command
from .verify_reports import verify_stages


def dvc_here(argv: list[str]) -> int:
    """DVC's own command line, in this process: DVC is imported once, for the check before
    the run and for the run itself. Stages find this environment's Python first on PATH."""
    from dvc.cli import main as dvc_main

    os.environ.update(interpreter_first_on_path(os.environ))
    return dvc_main(argv)


def repro(dvc_args: list[str]) -> int:
    """`make repro`: ``dvc repro`` in this process, refused before anything runs when verify
    would leave a stage out, and, when it fails, naming a folder that is full."""
    problem = unverified_stage()
    if problem:  # raw `dvc repro` finds out only when verify reruns; here, before anything
        print(f"error: {problem}", file=sys.stderr)
        return 1
    code = dvc_here(["repro", *dvc_args])
    if code != 0:
        for where, folder in full_folders():
            print(
                f"error: {where} {folder} has no space left: what the stages wrote could not be "
                "stored, so dvc.lock does not record it. Fix: free space there (`make gc` "
                "collects the cache), or move the cache (`dvc cache dir --local <folder>`), "
                "then `make repro` again.",
                file=sys.stderr,
            )
    return code


def unverified_stage() -> str | None:
    """A stage dvc.yaml declares that its verify stage (the one whose last report is in the
    workspace) neither reruns nor follows: verify would pass without comparing it."""
    pipeline = read(PROJECT_ROOT)
    for name in verify_stages(PROJECT_ROOT, pipeline):
        problem = unverified(pipeline, name)
        if problem:
            return problem
    return None


# Less free space than this, after a failed run, names the folder as full.
FULL_BELOW_BYTES = 1 << 20


def full_folders() -> list[tuple[str, Path]]:
    """The folders a run writes to that are (nearly) full: DVC's cache, the project, and the
    temporary folder verify rebuilds in. DVC's own error ("No space left on device") names
    none of them, and the cache may be on another disk than the project."""
    cache = subprocess.run(
        dvc_command("cache", "dir"), capture_output=True, text=True
    ).stdout.strip()
    folders = [("the project", "."), ("the temporary folder", tempfile.gettempdir())]
    if cache:
        folders.insert(0, ("the DVC cache", cache))
    found = []
    for where, folder in folders:
        path = Path(folder).resolve()
        try:
            if shutil.disk_usage(path).free < FULL_BELOW_BYTES:
                found.append((where, path))
        except OSError:
            continue
    return found


def run_repro(args: argparse.Namespace) -> int:
    """`make repro`."""
    return repro(args.dvc_args)
