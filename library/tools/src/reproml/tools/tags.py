"""The registry's git tags as GTO reads them, but only the tags that count.

Anyone who can push to origin can push a tag. GTO itself trusts every tag: an unsigned
``model#prod#9`` would show a version in prod, and a stray ``model@v9.9.9`` on a commit that
already has a release stops ``gto show`` with "Multiple versions". So GTO is shown a scratch
repository (the project's objects, borrowed through git's alternates, no copy) holding only
the tags whose signature counts (``signing.tag_signer``); every other tag of the artifact is
named as ignored, with the reason. Tags GTO makes (``gto register``, ``gto assign``, ...) are
made in such a scratch repository too, then re-created signed in the project, so a stray tag
never blocks them and a failed one leaves nothing behind.
"""

import argparse
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.proc import run
from . import signing
from .commands import console_script
from .errors import RegistryError
from .git import git, is_utf8

# GTO needs an identity to make a tag in the scratch repository; the signed tag the project
# keeps is made by git with the user's own.
_SCRATCH_IDENTITY = {
    f"GIT_{who}_{what}": value
    for who in ("AUTHOR", "COMMITTER")
    for what, value in (("NAME", "reproml"), ("EMAIL", "reproml@localhost"))
}


_verdicts: dict[tuple[Path, str, str], tuple[str | None, str | None]] = {}


@dataclass
class ArtifactTags:
    """Every tag of one artifact: ``{tag: (tag object or commit, commit)}``, and which count."""

    found: dict[str, tuple[str, str]] = field(default_factory=dict)
    signers: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)


def _parse(tag: str) -> dict:
    from gto.tag import parse_name

    return parse_name(tag, raise_on_fail=False) or {}


def artifact_name(tag: str) -> str | None:
    """The artifact a registry tag is about (``model`` for ``model#prod#1``), or None."""
    return _parse(tag).get("name")


def registers_a_version(tag: str) -> bool:
    """Whether GTO reads ``tag`` as a version's registration (``model@v1.0.0``, ``...#2``)."""
    from gto.constants import Action

    return _parse(tag).get("action") == Action.REGISTER


def artifact_tags(repo: Path, name: str) -> ArtifactTags:
    """The artifact's tags (GTO's names), each checked: signed by a key that counts, or not."""
    listed = git(
        repo,
        "for-each-ref",
        "refs/tags",
        "--format=%(refname:strip=2) %(objectname)",
        errors="surrogateescape",  # anyone may push a tag whose name is not UTF-8
    )
    tags = ArtifactTags()
    for tag, target in (line.split(" ", 1) for line in listed.stdout.splitlines()):
        if not tag.isprintable() or not is_utf8(tag):
            continue  # never one of GTO's names: not this artifact's
        if artifact_name(tag) != name:
            continue
        if (repo, tag, target) not in _verdicts:  # a tag object never changes: check it once
            _verdicts[repo, tag, target] = signing.tag_signer(repo, tag)
        who, problem = _verdicts[repo, tag, target]
        if problem:
            tags.ignored[tag] = problem
        else:
            tags.signers[tag] = who
        # Fully peeled (a tag of a tag of a commit): the placeholder of an ignored tag must
        # be a plain commit, or GTO would read the inner tag object as a tag of its own.
        peeled = git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}" + "^{commit}")
        if peeled.returncode == 0:
            tags.found[tag] = (target, peeled.stdout.strip())
        else:
            tags.signers.pop(tag, None)
    return tags


@contextmanager
def gto_repository(repo: Path, tags: ArtifactTags):
    """A bare scratch repository sharing ``repo``'s objects, with the tags that count as they
    are and every other tag of the artifact as a lightweight tag (GTO ignores those, but still
    counts their names, so a tag it makes never takes the name of one already pushed)."""
    scratch = Path(tempfile.mkdtemp(prefix="reproml-gto-"))
    try:
        git(scratch, "init", "--quiet", "--bare", str(scratch))
        objects = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
        alternates = scratch / "objects" / "info" / "alternates"
        alternates.write_text(str(Path(objects.stdout.strip()) / "objects") + "\n")
        updates = "".join(
            f"create refs/tags/{tag} {target if tag in tags.signers else commit}\n"
            for tag, (target, commit) in tags.found.items()
        )
        made = run(["git", "update-ref", "--stdin"], cwd=scratch, input=updates)
        if made.returncode != 0:
            raise RegistryError(f"could not prepare the registry's tags: {made.stderr.strip()}")
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def gto_show(repo: Path, name: str, tags: ArtifactTags) -> list[dict]:
    """``gto show <name>`` over the tags that count."""
    from gto import api
    from gto.exceptions import ArtifactNotFound, GTOException

    if not tags.signers:
        return []
    with gto_repository(repo, tags) as scratch:
        try:
            return api.show(str(scratch), name)
        except ArtifactNotFound:
            return []
        except GTOException as error:
            raise RegistryError(
                f"GTO cannot read the signed tags of {name}: {error}\nFix: delete the "
                "offending tag (`git tag -d <tag>`, and on origin `git push origin "
                ":refs/tags/<tag>`)."
            ) from None


def make_signed(repo: Path, name: str, action: list[str]) -> str:
    """Run a GTO action that creates a tag (``register``, ``assign``, ``unassign``,
    ``deregister``, ``deprecate``) over the tags that count, then create that tag, signed, in
    ``repo``. Returns the tag's name; on any failure no tag is left."""
    tags = artifact_tags(repo, name)
    with gto_repository(repo, tags) as scratch:
        made = run(
            [console_script("gto"), *action, "--repo", str(scratch)], cwd=repo, env=_gto_env()
        )
        if made.returncode != 0:
            said = (made.stdout + made.stderr).strip()
            raise RegistryError(f"`gto {' '.join(action)}` failed, no tag left: {said}")
        listed = git(
            scratch,
            "for-each-ref",
            "refs/tags",
            "--format=%(refname:strip=2)%00%(objecttype)%00%(*objectname)",
        )
        new = [
            line.split("\0")
            for line in listed.stdout.splitlines()
            if line.split("\0")[0] not in tags.found
        ]
        if len(new) != 1 or new[0][1] != "tag":
            raise RegistryError(f"`gto {' '.join(action)}` made no annotated tag, no tag left")
        tag, _, commit = new[0]
        message = git(scratch, "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)")
    refuse_blocked(repo, tag)
    # The newest claims this one follows, under its signature (claims.py).
    from . import claims  # claims reads the tags: imported here, not at the top

    follows = claims.trailer(claims.heads(repo))
    text = message.stdout.rstrip("\n") + "\n" + (f"\n{follows}" if follows else "")
    signing.create_signed_tag(repo, tag, commit, text)
    return tag


def refuse_blocked(repo: Path, tag: str) -> None:
    """Git keeps tags as paths: a tag ``model@v1.0.0/x`` (here or on origin, where anyone may
    have pushed it) makes ``model@v1.0.0`` impossible to create, push or fetch. Refuse before
    creating it, naming the blocking tag, rather than leave a tag that cannot be pushed."""
    here = git(repo, "for-each-ref", "--format=%(refname:strip=2)", f"refs/tags/{tag}/")
    blocking = {name: "here" for name in here.stdout.split()}
    if git(repo, "remote", "get-url", "origin").returncode == 0:
        listed = git(repo, "ls-remote", "--tags", "origin", f"refs/tags/{tag}/*")
        for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
            name = line.split()[-1].removeprefix("refs/tags/").removesuffix("^{}")
            blocking[name] = "on origin" if name not in blocking else "here and on origin"
    if blocking:
        first, where = sorted(blocking.items())[0]
        raise RegistryError(
            f"{tag} cannot be created: the tag {first} exists {where}, and git cannot hold a "
            f"tag and a folder of tags of one name. Fix: if {first} is not yours, delete it "
            f"(`git tag -d {first}`; `git push origin :refs/tags/{first}`); or choose another "
            "version. No tag was made."
        )


def unreadable_names(names) -> list[str]:
    """Of tag names, those GTO cannot read as a registry tag (``model@v1.0.0/x``): pushed by
    anyone, they are named and passed over, never asked for."""
    return sorted(name for name in names if not _parse(name))


def _gto_env() -> dict:
    return {**os.environ, **_SCRATCH_IDENTITY}


def run_gto(args: argparse.Namespace) -> int:
    """`make gto`: a GTO action that makes a tag, the tag re-created signed."""
    from .registry import artifact, repo_root

    repo = repo_root()
    name, _ = artifact(repo)
    print(f"made {make_signed(repo, name, args.gto_args)}, signed")
    return 0
