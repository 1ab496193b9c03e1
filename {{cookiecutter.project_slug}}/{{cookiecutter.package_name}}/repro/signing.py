"""Signatures: who may release, and whose rebuild and rollback records count, is who holds a
key listed in ``.allowed_signers``.

Release tags are signed with git's SSH signing (``gpg.format ssh``), which works offline with
the keys people already have; records (git notes) are signed with the same key through
``ssh-keygen -Y sign`` under their own namespace, so a record signature can never pass for a
tag's. ``.allowed_signers`` (committed, reviewed like code) lists the keys that count. ``gpg``
works the same way with the signer's keyring. A project may opt out (``release_signing =
"off"`` in pyproject.toml's ``[tool.reproml]``): then any tag with an honest statement counts
as a release and any well-formed note as a record, whoever made it.
"""

import os
import tempfile
import tomllib
from pathlib import Path

from .commands import git, run, secret_file
from .errors import RegistryError, SigningError

ALLOWED_SIGNERS = ".allowed_signers"
RECORD_NAMESPACE = "reproml-record"
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
    checked = git(repo, *_verify_options(repo, chosen), "tag", "-v", tag)
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
        signed = git(
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
        git(repo, "tag", "-d", tag)
        raise RegistryError(f"release refused, no tag left: {problem}")


SIGNING_KEY_FIX = (
    "Fix: point git at your key in this repository, `git config user.signingkey "
    "~/.ssh/id_ed25519.pub` (in CI, a key from a secret), and list it in "
    f"{ALLOWED_SIGNERS}"
)


def _config(repo: Path, key: str, default: str = "") -> str:
    return git(repo, "config", key).stdout.strip() or default


def _ssh_key_file(repo: Path, scratch: Path) -> str:
    """The file ``ssh-keygen -f`` signs with: git's ``user.signingkey`` as git reads it (a
    path, or a literal public key whose private half is in ssh-agent)."""
    key = _config(repo, "user.signingkey")
    if not key:
        raise SigningError(f"git has no user.signingkey. {SIGNING_KEY_FIX}")
    literal = key.removeprefix("key::")
    if literal.startswith(("ssh-", "ecdsa-", "sk-")):
        public = scratch / "signing-key.pub"
        public.write_text(literal + "\n", encoding="utf-8")
        return str(public)
    return os.path.expanduser(key)


def sign_text(repo: Path, text: str) -> str:
    """An armored signature of ``text`` by this repository's signing key (records only)."""
    chosen = mode(repo)
    with tempfile.TemporaryDirectory() as scratch:
        if chosen == "ssh":
            program = _config(repo, "gpg.ssh.program", "ssh-keygen")
            key = _ssh_key_file(repo, Path(scratch))
            command = [program, "-Y", "sign", "-q", "-n", RECORD_NAMESPACE, "-f", key]
        else:
            command = [_config(repo, "gpg.program", "gpg"), "--batch", "--armor", "--detach-sign"]
            if key := _config(repo, "user.signingkey"):
                command += ["--local-user", key]
        signed = run(command, cwd=repo, input=text)
    if signed.returncode != 0 or "BEGIN" not in signed.stdout:
        said = (signed.stderr.strip().splitlines() or ["no signature written"])[-1]
        raise SigningError(f"could not sign the record ({said}). {SIGNING_KEY_FIX}")
    return signed.stdout


def text_signer(repo: Path, text: str, signature: str) -> tuple[str | None, str | None]:
    """``(who signed text, None)`` if ``signature`` is a valid signature of ``text`` by a key
    that counts here, else ``(None, why not)``."""
    chosen = mode(repo)
    with tempfile.TemporaryDirectory() as scratch:
        signature_file = Path(scratch) / "record.sig"
        signature_file.write_text(signature, encoding="utf-8")
        if chosen == "gpg":
            program = _config(repo, "gpg.program", "gpg")
            checked = run(
                [program, "--batch", "--status-fd", "1", "--verify", str(signature_file), "-"],
                cwd=repo,
                input=text,
            )
            good = [line for line in checked.stdout.splitlines() if "GOODSIG" in line]
            if checked.returncode == 0 and good:
                return good[0].split(maxsplit=3)[-1], None
            return None, "its gpg signature does not verify against your keyring"
        program = _config(repo, "gpg.ssh.program", "ssh-keygen")
        allowed = str(repo / ALLOWED_SIGNERS)
        found = run(
            [program, "-Y", "find-principals", "-s", str(signature_file), "-f", allowed],
            cwd=repo,
        )
        principals = found.stdout.split()
        if found.returncode != 0 or not principals:
            return None, f"it is signed by a key that is not in {ALLOWED_SIGNERS}"
        verify = [program, "-Y", "verify", "-f", allowed, "-n", RECORD_NAMESPACE]
        for principal in principals:
            checked = run(
                [*verify, "-I", principal, "-s", str(signature_file)],
                cwd=repo,
                input=text,
            )
            if checked.returncode == 0:
                return principal, None
        return None, "its signature does not match its content (edited after signing)"


KEY_VARIABLE = "REPROML_SIGNING_KEY"


def use_key_from_environment(repo: Path) -> str:
    """Make this clone sign with the private key in ``$REPROML_SIGNING_KEY`` (a CI secret,
    the key itself or, as GitLab's "File" variables give it, the path of a file holding it):
    written under ``.git/`` (never committed, owner-only), and set in this repository's git
    config only. Without the variable nothing changes: releases are refused and records stay
    unsigned (not counted), and the message says so."""
    secret = os.environ.get(KEY_VARIABLE, "")
    if secret and "\n" not in secret.strip() and Path(secret).is_file():
        secret = Path(secret).read_text(encoding="utf-8")  # a GitLab "File" variable
    chosen = mode(repo)
    if chosen == "off":
        return f'release_signing = "off": {KEY_VARIABLE} is not needed'
    if not secret.strip():
        return (
            f"warning: {KEY_VARIABLE} is not set: releases from this job are refused and its "
            "rebuild records are not counted. Fix: store the private key as a CI secret named "
            f"{KEY_VARIABLE}, and its public half in {ALLOWED_SIGNERS}."
        )
    if chosen == "gpg":
        imported = run(["gpg", "--batch", "--import"], cwd=repo, input=secret)
        if imported.returncode != 0:
            raise SigningError(f"{KEY_VARIABLE}: gpg could not import it: {imported.stderr}")
        return "imported the signing key into gpg's keyring"
    key = secret_file(repo, "reproml-signing-key", secret)
    public = run(["ssh-keygen", "-y", "-f", str(key)], cwd=repo)
    if public.returncode != 0:
        key.unlink()
        raise SigningError(
            f"{KEY_VARIABLE} is not an unencrypted OpenSSH private key "
            f"({public.stderr.strip()}). Fix: store the whole private key file, "
            "BEGIN and END lines included, with no passphrase."
        )
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key))
    return f"this clone now signs with {public.stdout.split()[0]} key from {KEY_VARIABLE}"
