"""What the DVC remote must hold, and a gc that never loses it: every object a release or an
unpushed commit references (``check-releases``, the release gate, ``make gc``)."""

import argparse
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from ..runtime.errors import ProjectError
from ..runtime.pipeline import read as read_pipeline
from ..runtime.proc import run
from . import dvc_lock
from .commands import dvc_command
from .errors import RegistryError
from .git import git_show, show_yaml, tracked_at
from .registry import (
    DVC_FILE,
    releases,
    repo_root,
    require_full_history,
)
from .remote import remote_lacks

# ---- remote completeness and guarded gc ---------------------------------------------------


def cached_objects_at(repo: Path, commit: str) -> dict[str, str]:
    """``{md5: path}`` of every cached object a commit references (dvc.lock outs, .dvc files);
    a directory output is its ``.dir`` manifest, whose files the remote check lists."""
    uncached = uncached_outputs_at(repo, commit)
    objects = {
        md5: path
        for path, md5 in dvc_lock.outputs(dvc_lock.at_commit(repo, commit)).items()
        if path not in uncached and md5
    }
    objects.update({md5: path for _, path, md5 in tracked_at(repo, commit)})
    return objects


def uncached_outputs_at(repo: Path, commit: str) -> set[str]:
    """The outputs a commit's dvc.yaml declares with ``cache: false`` (git keeps them), read
    by DVC's own parser, interpolation included, from the commit's dvc.yaml and the parameter
    files it reads (params.yaml, and any named under ``vars:``), copied to a folder of their
    own. Anyone can push a commit: a ``wdir`` or a ``vars`` file that leaves the repository
    is refused before DVC could read a file of this machine."""
    dvc_yaml = show_yaml(repo, commit, DVC_FILE)
    if not dvc_yaml:
        return set()
    where = f"{DVC_FILE} at {commit[:12]}"
    named = _files_dvc_reads(dvc_yaml, where)
    with tempfile.TemporaryDirectory(prefix="reproml-pipeline-") as copy:
        inside = Path(copy).resolve()
        for name in [DVC_FILE, "params.yaml", *named]:
            target = (inside / name).resolve()
            text = git_show(repo, commit, name)
            if text is not None and target.is_relative_to(inside):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        try:
            pipeline = read_pipeline(copy)
        except ProjectError as error:
            said = str(error).replace(f"{inside}/{DVC_FILE}: ", "")
            raise RegistryError(f"{where}: {said}") from None
    return {out.path for stage in pipeline.stages for out in stage.outs if not out.cached}


def _inside(value: str) -> bool:
    """A path that stays in the repository: relative, no ``..``, no interpolation."""
    path = PurePosixPath(value)
    return not (path.is_absolute() or ".." in path.parts or "${" in value or "\\" in value)


def _files_dvc_reads(document: Any, where: str, wdir: str = ".") -> list[str]:
    """Every file a ``vars:`` list names, anywhere in the document (a stage's, a foreach's),
    relative to the repository; refused, naming the key, if it or a ``wdir`` leaves it."""
    found: list[str] = []
    if isinstance(document, list):
        for item in document:
            found += _files_dvc_reads(item, where, wdir)
        return found
    if not isinstance(document, dict):
        return found
    if "wdir" in document:
        if not isinstance(document["wdir"], str) or not _inside(document["wdir"]):
            raise RegistryError(
                f"{where}: wdir {str(document['wdir'])[:80]!r} leaves the repository. Fix: a "
                "stage's wdir is a folder of the repository; correct dvc.yaml in a new commit, "
                "or drop that commit's tag."
            )
        wdir = str(PurePosixPath(wdir) / document["wdir"])
    for entry in document.get("vars") or [] if isinstance(document.get("vars"), list) else []:
        if isinstance(entry, str):
            name = entry.split(":")[0]
            if not _inside(name):
                raise RegistryError(
                    f"{where}: vars: {name[:80]!r} is outside the repository. Fix: a file "
                    "under vars: must be in the repository; correct dvc.yaml in a new "
                    "commit, or drop that commit's tag."
                )
            found.append(str(PurePosixPath(wdir) / name))
    for key, value in document.items():
        if key != "vars":
            found += _files_dvc_reads(value, where, wdir)
    return found


def check_releases(only: list[str] | None = None) -> dict[str, list[str]]:
    """For every release tag (or those in ``only``), what of it the remote lacks: whole
    objects, and single files of a directory output."""
    repo = repo_root()
    require_full_history(repo)
    chosen = [r for r in releases(repo) if only is None or r.tag in only]
    per_release = {r.tag: cached_objects_at(repo, r.commit) for r in chosen}
    lacks = remote_lacks(repo, {md5 for objects in per_release.values() for md5 in objects})
    missing = {}
    for tag, objects in per_release.items():
        missing[tag] = []
        for md5, path in sorted(objects.items()):
            if lacks[md5] is None:
                missing[tag].append(f"{path} (md5 {md5})")
            else:
                missing[tag] += [f"{path}/{name} (in {path}, md5 {md5})" for name in lacks[md5]]
    return missing


def unpushed_commits(repo: Path) -> list[str]:
    """Commits of branches and tags on no remote-tracking branch (all of them when there is
    no git remote). Experiment refs (refs/exps) are not branches: gc protects them as DVC
    does, with --all-experiments."""
    listed = run(["git", "rev-list", "--branches", "--tags", "--not", "--remotes"], repo)
    return listed.stdout.split()


def gc() -> list[str]:
    """Collect the local DVC cache: remove only objects that no commit, tag, branch or the
    workspace references (leftovers of uncommitted runs and experiments).

    Before deleting anything it asks DVC for its plan (``--dry``) and refuses, deleting
    nothing, if the plan holds an object that a release or an unpushed commit needs: DVC's
    own flags have surprised users before (``--not-in-remote`` deletes *used* objects once
    they are in the remote)."""
    repo = repo_root()
    needed: dict[str, str] = {}
    keep = [r.commit for r in releases(repo)] + unpushed_commits(repo)
    for commit in dict.fromkeys(keep):
        needed.update(cached_objects_at(repo, commit))
    flags = [
        "--workspace",
        "--all-tags",
        "--all-branches",
        "--all-commits",
        "--all-experiments",
        "--force",
    ]
    planned = run(dvc_command("gc", *flags, "--dry"), repo)
    if planned.returncode != 0:
        raise RegistryError(f"`dvc gc --dry` failed: {planned.stderr.strip()}")
    doomed = re.findall(r"files/md5/([0-9a-f]{2})/([0-9a-f.a-z]+)", planned.stdout + planned.stderr)
    at_risk = {a + b: needed[a + b] for a, b in doomed if a + b in needed}
    # Safe to delete locally only if the DVC remote holds it: ask the remote, not git.
    lacks = remote_lacks(repo, set(at_risk)) if at_risk else {}
    endangered = sorted({path for md5, path in at_risk.items() if lacks.get(md5) != []})
    if endangered:
        raise RegistryError(
            "gc refused, nothing deleted: DVC would remove objects that a release or an "
            "unpushed commit needs and the DVC remote does not hold:\n"
            + "\n".join(f"  {path}" for path in endangered)
            + "\nFix: `dvc push --all-commits` (then `make gc` again)."
        )
    done = run(dvc_command("gc", *flags), repo)
    if done.returncode != 0:
        raise RegistryError(f"`dvc gc` failed: {done.stderr.strip()}")
    return [f"{a}{b}" for a, b in doomed]


def run_check_releases(args: argparse.Namespace) -> int:
    """`make check-releases`: each release complete in the remote, or what it lacks."""
    missing = check_releases()
    if not missing:
        print("no releases yet: nothing to check (`make release VERSION=v0.1.0` makes one)")
    for tag, objects in missing.items():
        print(f"{tag}: {'complete' if not objects else 'MISSING ' + ', '.join(objects)}")
    if any(missing.values()):
        print(
            "error: the remote lacks objects of released versions. Fix: `dvc push` them "
            "from a clone that has them (`dvc push --all-tags`)."
        )
        return 1
    return 0


def run_gc(args: argparse.Namespace) -> int:
    """`make gc`."""
    removed = gc()
    print(
        f"removed {len(removed)} cache objects; kept everything that releases, branches, the "
        "workspace and unpushed commits need"
    )
    return 0
