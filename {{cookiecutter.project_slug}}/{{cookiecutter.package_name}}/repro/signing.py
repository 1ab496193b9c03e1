"""Signed release tags: who may release is who holds a key listed in ``.allowed_signers``.

A release tag is signed with git's SSH signing (``gpg.format ssh``), which works offline with
the keys people already have; ``.allowed_signers`` (committed, reviewed like code) lists the
keys whose release tags count. ``gpg`` works the same way with the signer's keyring. A project
may opt out (``release_signing = "off"`` in pyproject.toml's ``[tool.reproml]``): then any
tag with an honest statement counts as a release, whoever made it.
"""

import subprocess
import tomllib
from pathlib import Path

from .errors import RegistryError
from .records import git_environment

ALLOWED_SIGNERS = ".allowed_signers"
MODES = ("ssh", "gpg", "off")
FORMATS = {"ssh": "ssh", "gpg": "openpgp"}


def mode(repo: Path) -> str:
    """The project's choice: ``ssh`` (default), ``gpg`` or ``off``."""
    pyproject = repo / "pyproject.toml"
    settings = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    chosen = settings.get("reproml", {}).get("release_signing", "ssh")
    if chosen not in MODES:
        raise RegistryError(
            f"{pyproject}: [tool.reproml] release_signing = {chosen!r} is not one of "
            f"{', '.join(MODES)}"
        )
    return chosen


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=git_environment(repo)
    )


def _verify_options(repo: Path, chosen: str) -> list[str]:
    options = ["-c", f"gpg.format={FORMATS[chosen]}"]
    if chosen == "ssh":
        options += ["-c", f"gpg.ssh.allowedSignersFile={repo / ALLOWED_SIGNERS}"]
    return options


def signature_problem(repo: Path, tag: str) -> str | None:
    """Why ``tag`` is not signed by an allowed signer (None: it is, or signing is off)."""
    chosen = mode(repo)
    if chosen == "off":
        return None
    checked = _git(repo, *_verify_options(repo, chosen), "tag", "-v", tag)
    if checked.returncode == 0:
        return None
    said = checked.stderr.strip()
    if "no signature found" in said:
        return f"{tag} is not signed: it was not made by `make release`"
    if "No principal matched" in said or "not in the allowed" in said.lower():
        return f"{tag} is signed by a key that is not in {ALLOWED_SIGNERS}"
    return f"{tag}: its signature does not verify ({said.splitlines()[-1] if said else '?'})"


def sign(repo: Path, tag: str, commit: str, message: str) -> None:
    """Replace the (unsigned) tag GTO created by the same tag, signed; refuse, deleting the
    tag, if it cannot be signed or the key is not an allowed signer."""
    chosen = mode(repo)
    if chosen == "off":
        return
    message_file = repo / ".git" / "RELEASE_TAG_MESSAGE"
    message_file.write_text(message, encoding="utf-8")
    try:
        signed = _git(
            repo,
            "-c",
            f"gpg.format={FORMATS[chosen]}",
            "tag",
            "-s",
            "-f",
            "-a",
            tag,
            "-F",
            str(message_file),
            commit,
        )
    finally:
        message_file.unlink(missing_ok=True)
    problem = None
    if signed.returncode != 0:
        problem = (
            f"the tag could not be signed: {signed.stderr.strip()}\n"
            "Fix: point git at your key, e.g. `git config user.signingkey "
            "~/.ssh/id_ed25519.pub` (this repository only), and list it in "
            f"{ALLOWED_SIGNERS} as `<you@example.com> <the .pub line>`; or opt out with "
            '[tool.reproml] release_signing = "off" in pyproject.toml.'
        )
    else:
        problem = signature_problem(repo, tag)
        if problem:
            problem += f". Fix: add your public key to {ALLOWED_SIGNERS} and commit it."
    if problem:
        _git(repo, "tag", "-d", tag)
        raise RegistryError(f"release refused, no tag left: {problem}")
