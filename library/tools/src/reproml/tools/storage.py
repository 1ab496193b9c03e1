"""What the DVC remote must hold, and a gc that never loses it: every object a release or an
unpushed commit references (``check-releases``, the release gate, ``make gc``)."""

import re
from pathlib import Path

from ..runtime.proc import run
from . import dvc_lock
from .commands import dvc_command
from .errors import RegistryError
from .git import show_yaml, tracked_at
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
    objects = {}
    dvc_yaml = show_yaml(repo, commit, DVC_FILE)
    uncached = set()
    for stage in (dvc_yaml.get("stages") or {}).values():
        for section in ("outs", "metrics", "plots"):
            for entry in stage.get(section) or []:
                if isinstance(entry, dict):
                    for key, options in entry.items():
                        if isinstance(options, dict) and options.get("cache") is False:
                            uncached.add(key)
    params = show_yaml(repo, commit, "params.yaml")
    uncached_paths = {_resolve(key, params) for key in uncached}
    for path, md5 in dvc_lock.outputs(dvc_lock.at_commit(repo, commit)).items():
        if path not in uncached_paths and md5:
            objects[md5] = path
    objects.update({md5: path for _, path, md5 in tracked_at(repo, commit)})
    return objects


def _resolve(key: str, params: dict) -> str:
    """A dvc.yaml path such as ``${paths.metrics}`` resolved against params.yaml."""
    match = re.fullmatch(r"\$\{([\w.]+)\}", key)
    if not match:
        return key
    value = params
    for part in match.group(1).split("."):
        value = value[part]
    return value


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
