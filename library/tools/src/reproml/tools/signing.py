"""Signatures: who may release, assign a registry stage, or have a rebuild or rollback record
counted, is who holds a key listed in ``.allowed_signers`` **as committed on the default
branch** (not the working tree's copy, nor a branch under review: those are what an attacker
who can push a branch would edit).

Tags (releases and registry-stage assignments) are signed with git's SSH signing; records
(git notes) with the same kind of key through ``ssh-keygen -Y sign`` under their own namespace
(``reproml-record``), so a record signature can never pass for a tag's, and a key listed with
``namespaces="reproml-record"`` (CI's) can sign records but never a release. Verification is
done here, not by ``git tag -v``: git picks the verifier from the signature's own armour, so an
OpenPGP signature would be checked against a gpg keyring even in ssh mode. Here a signature of
another kind than the project's mode is refused outright.

``gpg`` mode counts an OpenPGP signature only from a key pinned in ``.allowed_signers``
(``<who> openpgp <FINGERPRINT>``) or one gpg trusts fully. ``release_signing = "off"`` (in the
default branch's pyproject.toml, ``[tool.reproml]``) counts any tag with an honest statement
and any well-formed record, whoever made it.
"""

import argparse
import atexit
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..runtime.errors import ConfigError
from ..runtime.proc import run
from .errors import RegistryError, SigningError
from .git import git, owner_only_file, secret_file
from .settings import parse

ALLOWED_SIGNERS = ".allowed_signers"
RECORD_NAMESPACE = "reproml-record"
TAG_NAMESPACE = "git"
MODES = ("ssh", "gpg", "off")
FORMATS = {"ssh": "ssh", "gpg": "openpgp"}
DEFAULT_BRANCH = "main"
KEY_VARIABLE = "REPROML_SIGNING_KEY"
# git appends a tag's signature to its message; the last such line starts it.
_SIGNATURE_START = re.compile(
    rb"^-----BEGIN (SSH SIGNATURE|PGP SIGNATURE|PGP MESSAGE|SIGNED MESSAGE)-----\r?$", re.M
)
_KINDS = {b"SSH SIGNATURE": "ssh", b"PGP SIGNATURE": "gpg", b"PGP MESSAGE": "gpg"}
_KIND_NAMES = {"ssh": "SSH", "gpg": "OpenPGP", "x509": "X.509"}

# ---- the trust root: the default branch ----------------------------------------------------

_trusted: dict[Path, tuple[str, Path]] = {}
_scratch: list[Path] = []  # made on first use: most commands never verify or sign anything


def _scratch_dir() -> Path:
    if not _scratch:
        _scratch.append(Path(tempfile.mkdtemp(prefix="reproml-trust-")))
        atexit.register(shutil.rmtree, _scratch[0], True)
    return _scratch[0]


def default_branch(repo: Path) -> str:
    """The name of the default branch, from a source no branch push can change: CI's own word
    (``REPROML_DEFAULT_BRANCH``, or GitLab's ``CI_DEFAULT_BRANCH``), ``origin/HEAD`` (set from
    the server at clone time), the server itself (``git ls-remote --symref``); with no origin
    to ask, a local ``main``. Never a guess: an attacker may push a branch of any other name."""
    for variable in ("REPROML_DEFAULT_BRANCH", "CI_DEFAULT_BRANCH"):
        if os.environ.get(variable, "").strip():
            return os.environ[variable].strip()
    head = git(repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD").stdout.strip()
    if head:
        return head.removeprefix("refs/remotes/origin/")
    if git(repo, "remote", "get-url", "origin").returncode == 0:
        asked = git(repo, "ls-remote", "--symref", "origin", "HEAD")
        for line in asked.stdout.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
    if (
        git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{DEFAULT_BRANCH}").returncode
        == 0
    ):
        return DEFAULT_BRANCH
    raise SigningError(
        "cannot tell which branch is the default one, whose .allowed_signers decides what counts "
        "as signed. Fix: `git remote set-head origin --auto` (or set REPROML_DEFAULT_BRANCH)."
    )


def trusted_ref(repo: Path) -> str:
    """The ref whose files decide what counts: the local default branch (the user's own), else
    origin's copy of it (CI checkouts of a pull request have no local one), fetched if need be."""
    branch = default_branch(repo)
    candidates = (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}")
    for ref in candidates:
        if git(repo, "rev-parse", "--verify", "--quiet", ref).returncode == 0:
            return ref
    fetch = ["fetch", "--quiet", "--no-tags", "origin", f"+{candidates[0]}:{candidates[1]}"]
    if git(repo, *fetch).returncode == 0:
        return candidates[1]
    raise SigningError(
        f"no branch {branch!r} here, and origin's could not be fetched: what counts as signed "
        f"is read from {ALLOWED_SIGNERS} on the default branch. Fix: `git fetch origin {branch}`."
    )


def _trusted_state(repo: Path) -> tuple[str, Path]:
    """``(mode, allowed signers file)`` as the default branch commits them, read once."""
    repo = repo.resolve()
    if repo not in _trusted:
        ref = trusted_ref(repo)
        shown = git(repo, "show", f"{ref}:pyproject.toml")
        where = f"pyproject.toml on {ref.removeprefix('refs/')}"
        try:
            chosen = parse(shown.stdout if shown.returncode == 0 else "", where)
        except ConfigError as error:
            raise RegistryError(str(error)) from None
        chosen = chosen.get("release_signing", "ssh")
        if chosen not in MODES:
            raise RegistryError(
                f"{where}: [tool.reproml] release_signing = {chosen!r} is not one of "
                f"{', '.join(MODES)}"
            )
        allowed = _scratch_dir() / f"allowed_signers-{len(_trusted)}"
        listed = git(repo, "show", f"{ref}:{ALLOWED_SIGNERS}")
        allowed.write_text(listed.stdout if listed.returncode == 0 else "", encoding="utf-8")
        _trusted[repo] = (chosen, allowed)
    return _trusted[repo]


def mode(repo: Path) -> str:
    """The project's choice on its default branch: ``ssh`` (default), ``gpg`` or ``off``."""
    return _trusted_state(repo)[0]


# ---- verifying -----------------------------------------------------------------------------


def split_signed(data: bytes) -> tuple[bytes, bytes, str] | None:
    """``(payload, signature, kind)`` of a signed git object's text, or None if unsigned."""
    starts = list(_SIGNATURE_START.finditer(data))
    if not starts:
        return None
    start = starts[-1]
    return data[: start.start()], data[start.start() :], _KINDS.get(start.group(1), "x509")


def _ssh_signer(
    repo: Path, payload: bytes, signature: bytes, namespace: str, allowed: str | None = None
):
    allowed = allowed or str(_trusted_state(repo)[1])
    program = "ssh-keygen"
    with tempfile.TemporaryDirectory() as scratch:
        signature_file = Path(scratch) / "signature"
        signature_file.write_bytes(signature)
        found = run([program, "-Y", "find-principals", "-s", str(signature_file), "-f", allowed])
        principals = found.stdout.split()
        if found.returncode != 0 or not principals:
            return None, f"signed by a key that is not in {ALLOWED_SIGNERS} on the default branch"
        said = ""
        for principal in principals:
            checked = run(
                [
                    program,
                    "-Y",
                    "verify",
                    "-f",
                    allowed,
                    "-n",
                    namespace,
                    "-I",
                    principal,
                    "-s",
                    str(signature_file),
                ],
                input=payload.decode("utf-8", "surrogateescape"),
                errors="surrogateescape",
            )
            if checked.returncode == 0:
                return principal, None
            said += checked.stdout + checked.stderr
    if "not permitted for use in signature namespace" in said:
        what = "releases or stage assignments" if namespace == TAG_NAMESPACE else "records"
        return None, (
            f"signed by {principals[0]}, whose key {ALLOWED_SIGNERS} does not allow to sign "
            f"{what} (its namespaces= option: a CI key signs records only)"
        )
    return None, "its signature does not match its content (edited after signing)"


def _gpg_signer(repo: Path, payload: bytes, signature: bytes):
    pinned = {}
    for line in _trusted_state(repo)[1].read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == "openpgp":
            pinned[fields[2].upper()] = fields[0]
    with tempfile.TemporaryDirectory() as scratch:
        signature_file, payload_file = Path(scratch) / "signature", Path(scratch) / "payload"
        signature_file.write_bytes(signature)
        payload_file.write_bytes(payload)
        command = ["gpg", "--batch", "--status-fd", "1", "--verify"]
        checked = run([*command, str(signature_file), str(payload_file)])
    status = [line.split() for line in checked.stdout.splitlines() if line.startswith("[GNUPG:]")]
    valid = next((line for line in status if line[1] == "VALIDSIG"), None)
    if checked.returncode != 0 or valid is None:
        return None, "its OpenPGP signature does not verify"
    fingerprints = {valid[2].upper(), valid[-1].upper()}  # the signing key and its primary
    if fingerprints & set(pinned):
        return pinned[min(fingerprints & set(pinned))], None
    if any(line[1] in ("TRUST_FULLY", "TRUST_ULTIMATE") for line in status):
        good = next((line for line in status if line[1] == "GOODSIG"), valid)
        return " ".join(good[3:]) or valid[2], None
    return None, (
        f"signed by OpenPGP key {valid[2]}, which is neither pinned in {ALLOWED_SIGNERS} "
        "(`<who> openpgp <FINGERPRINT>`) nor fully trusted by gpg"
    )


def signer(repo: Path, payload: bytes, signature: bytes, kind: str, namespace: str):
    """``(who signed payload, None)`` if ``signature`` is of the project's kind and by a key that
    counts for ``namespace``, else ``(None, why not)``."""
    chosen = mode(repo)
    if kind != chosen:
        return None, (
            f"signed with {_KIND_NAMES.get(kind, kind)}, but this project counts only "
            f"{_KIND_NAMES[chosen]} signatures (release_signing = {chosen!r})"
        )
    if chosen == "ssh":
        return _ssh_signer(repo, payload, signature, namespace)
    return _gpg_signer(repo, payload, signature)


def tag_signer(repo: Path, tag: str) -> tuple[str | None, str | None]:
    """``(who signed tag, None)``, or ``(None, why it does not count)``. With signing off,
    every annotated tag counts (``("anyone", None)``)."""
    shown = run(["git", "cat-file", "tag", f"refs/tags/{tag}"], cwd=repo, errors="surrogateescape")
    if shown.returncode != 0:
        return None, f"{tag} is a lightweight tag, not an annotated, signed one"
    # GTO reads the name inside the tag object, and git peels a tag of a tag: what counts must
    # be a tag of a commit, under its own name (a signed tag copied to another name is not).
    headers = dict(
        line.split(" ", 1) for line in shown.stdout.split("\n\n", 1)[0].splitlines() if " " in line
    )
    if headers.get("type") != "commit":
        return None, f"{tag} points at a {headers.get('type', '?')}, not at a commit"
    if headers.get("tag") != tag:
        return None, f"{tag} is a tag object named {headers.get('tag')!r}, not {tag!r}"
    if mode(repo) == "off":
        return "anyone", None
    signed = split_signed(shown.stdout.encode("utf-8", "surrogateescape"))
    if signed is None:
        return None, f"{tag} is not signed: it was not made by `make release` or `make promote`"
    who, problem = signer(repo, *signed, namespace=TAG_NAMESPACE)
    return who, f"{tag}: {problem}" if problem else None


def signature_problem(repo: Path, tag: str) -> str | None:
    """Why ``tag`` does not count as signed (None: it does, or signing is off)."""
    return tag_signer(repo, tag)[1]


def text_signer(repo: Path, text: str, signature: str) -> tuple[str | None, str | None]:
    """``(who signed text, None)`` if ``signature`` is a valid record signature of ``text`` by
    a key that counts here, else ``(None, why not)``."""
    data = signature.encode("utf-8")
    found = split_signed(data)
    kind = found[2] if found else "x509"
    return signer(repo, text.encode("utf-8"), data, kind, RECORD_NAMESPACE)


def once_allowed_signer(repo: Path, text: str, signature: str) -> str | None:
    """Who signed ``text`` (a record) with a key some earlier ``.allowed_signers`` of the
    default branch listed, or None. A record so signed, by a key since removed, is the
    project's own claim that no longer counts, not one someone made up (ssh mode only)."""
    if mode(repo) != "ssh" or not isinstance(signature, str):
        return None
    found = split_signed(signature.encode("utf-8", "surrogateescape"))
    if not found or found[2] != "ssh":
        return None
    who, _ = _ssh_signer(
        repo,
        text.encode("utf-8", "surrogateescape"),
        found[1],
        RECORD_NAMESPACE,
        str(_ever_allowed(repo)),
    )
    return who


_ever: dict[Path, Path] = {}


def _ever_allowed(repo: Path) -> Path:
    """Every key any version of ``.allowed_signers`` on the default branch listed."""
    repo = repo.resolve()
    if repo not in _ever:
        ref = trusted_ref(repo)
        listed = git(repo, "log", "--format=%H", "-n", "500", ref, "--", ALLOWED_SIGNERS)
        lines = set()
        for commit in listed.stdout.split():
            shown = git(repo, "show", f"{commit}:{ALLOWED_SIGNERS}")
            lines.update(shown.stdout.splitlines() if shown.returncode == 0 else [])
        _ever[repo] = _scratch_dir() / f"ever_allowed_signers-{len(_ever)}"
        _ever[repo].write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return _ever[repo]


# ---- signing -------------------------------------------------------------------------------

SIGNING_KEY_FIX = (
    "Fix: point git at your key in this repository, `git config user.signingkey "
    "~/.ssh/id_ed25519.pub` (in CI: the key in the secret REPROML_SIGNING_KEY), and list it "
    f"in {ALLOWED_SIGNERS} on the default branch"
)
# The key CI hands to this process (REPROML_SIGNING_KEY), held in memory only: taken out of
# the environment when the command starts, so no child process (a rebuild's stages) inherits
# it, and written to an owner-only file only for the one call that signs.
_held_key: str | None = None


def hold_key_from_environment() -> None:
    """Take ``$REPROML_SIGNING_KEY`` (the key itself, or the path of a file holding it, as
    GitLab's "File" variables give it) out of the environment and keep it for signing."""
    global _held_key
    secret = os.environ.pop(KEY_VARIABLE, "")
    if secret and "\n" not in secret.strip() and len(secret) < 4096:
        try:
            if Path(secret).is_file():  # a GitLab "File" variable: the path of the key
                secret = Path(secret).read_text(encoding="utf-8")
        except OSError:
            pass  # not a path: the key itself, checked where it is used
    if secret.strip():
        _held_key = secret.strip() + "\n"


@contextmanager
def _held_key_file():
    """The held key as a path, written owner-only into a temporary folder for the duration of
    one call (None without a held key: git's configured ``user.signingkey`` signs)."""
    if _held_key is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="reproml-key-") as scratch:
        yield str(owner_only_file(Path(scratch) / "key", _held_key))


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
    with tempfile.TemporaryDirectory() as scratch, _held_key_file() as held:
        if chosen == "ssh":
            key = held or _ssh_key_file(repo, Path(scratch))
            command = ["ssh-keygen", "-Y", "sign", "-q", "-n", RECORD_NAMESPACE, "-f", key]
        else:
            command = [_config(repo, "gpg.program", "gpg"), "--batch", "--armor", "--detach-sign"]
            if key := _config(repo, "user.signingkey"):
                command += ["--local-user", key]
        signed = run(command, cwd=repo, input=text)
    if signed.returncode != 0 or "BEGIN" not in signed.stdout:
        said = (signed.stderr.strip().splitlines() or ["no signature written"])[-1]
        raise SigningError(f"could not sign the record ({said}). {SIGNING_KEY_FIX}")
    return signed.stdout


def create_signed_tag(repo: Path, tag: str, commit: str, message: str) -> None:
    """Create ``tag`` (annotated, ``message``) on ``commit``, signed; refuse, leaving no tag,
    if it cannot be signed or its signature would not count."""
    chosen = mode(repo)
    message_file = _scratch_dir() / "tag-message"
    message_file.write_text(message, encoding="utf-8")
    sign = ["-s"] if chosen != "off" else []
    with _held_key_file() as held:
        options = ["-c", f"gpg.format={FORMATS.get(chosen, 'ssh')}"]
        if held and chosen == "ssh":
            options += ["-c", f"user.signingkey={held}"]
        made = git(repo, *options, "tag", *sign, "-a", tag, "-F", str(message_file), commit)
    message_file.unlink(missing_ok=True)
    problem = None
    if made.returncode != 0:
        problem = (
            f"the tag could not be made or signed: {made.stderr.strip()}\n{SIGNING_KEY_FIX}; or "
            'opt out with [tool.reproml] release_signing = "off" in pyproject.toml.'
        )
    elif chosen != "off":
        problem = signature_problem(repo, tag)
        if problem:
            problem += f". Fix: add your public key to {ALLOWED_SIGNERS} on the default branch."
    if problem:
        git(repo, "tag", "-d", tag)
        raise RegistryError(f"refused, no tag left: {problem}")


def use_key_from_environment(repo: Path) -> str:
    """Make this clone sign with the private key in ``$REPROML_SIGNING_KEY`` (written under
    ``.git/``, owner-only, and set in this repository's git config only), and say which
    ``.allowed_signers`` line lets it sign records but not releases. For a person releasing
    from a fresh clone; CI's rebuild jobs hand the key to the command itself instead, so it is
    never on disk while a rebuild runs."""
    hold_key_from_environment()
    chosen = mode(repo)
    if chosen == "off":
        return f'release_signing = "off": {KEY_VARIABLE} is not needed'
    if _held_key is None:
        return (
            f"warning: {KEY_VARIABLE} is not set: releases from this job are refused and its "
            "rebuild records are not counted. Fix: store the private key as a CI secret named "
            f"{KEY_VARIABLE}, and its public half in {ALLOWED_SIGNERS}."
        )
    if chosen == "gpg":
        imported = run(["gpg", "--batch", "--import"], cwd=repo, input=_held_key)
        if imported.returncode != 0:
            raise SigningError(f"{KEY_VARIABLE}: gpg could not import it: {imported.stderr}")
        return "imported the signing key into gpg's keyring"
    key = secret_file(repo, "reproml-signing-key", _held_key)
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
    line = f'ci@reproml namespaces="{RECORD_NAMESPACE}" {" ".join(public.stdout.split()[:2])}'
    return (
        f"this clone now signs with the {public.stdout.split()[0]} key from {KEY_VARIABLE}.\n"
        f"For CI's key, list it in {ALLOWED_SIGNERS} (on the default branch) so that it can sign "
        f"rebuild records but never a release or a stage assignment:\n  {line}"
    )


def run_signing_key(args: argparse.Namespace) -> int:
    """`make signing-key` (CI)."""
    from .registry import repo_root

    print(use_key_from_environment(repo_root()))
    return 0
