"""The one place that asks the DVC remote what it holds.

First a probe (can the remote be read at all, within a bounded time?), so that a missing
credential, a dead endpoint or a missing bucket is named as such, never reported as missing
objects; then one batched lookup, directory outputs expanded to their files. Run in a child
process of this environment's DVC, in the given checkout (its ``.dvc/config.local`` holds
the credentials).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from ..runtime.proc import run
from .commands import dvc_command
from .errors import RemoteError
from .git import secret_file
from .provenance import public_url

# Run by this environment's DVC before any lookup: can the default remote be read at all?
# A missing credential, a dead endpoint or a missing bucket raise here, where a lookup would
# only say "not there" for every object.
_REMOTE_PROBE = """
import json, posixpath
from dvc.repo import Repo
odb = Repo(".").cloud.get_remote_odb(None, hash_name="md5")
try:
    found = odb.fs.exists(odb.path)
    buckets = odb.fs.protocol in ("s3", "gs", "gcs", "azure", "az", "abfs")
    root = odb.path.strip("/").split("/")[0] if buckets else None
    if not found and root and not odb.fs.exists(root):
        found = "no-bucket"
except Exception as error:
    print(json.dumps({"error": type(error).__name__, "detail": str(error)[:400],
                      "protocol": odb.fs.protocol}))
else:
    print(json.dumps({"error": None, "bucket": root if found == "no-bucket" else None}))
"""
# Then, for each object: None if the remote lacks it, else what it lacks of it: nothing for a
# file; for a directory (``.dir``), the files of its manifest that the remote does not hold.
_REMOTE_QUERY = """
import json, sys
from dvc.repo import Repo
from dvc_data.hashfile.hash_info import HashInfo
from dvc_data.hashfile.tree import Tree
odb = Repo(".").cloud.get_remote_odb(None, hash_name="md5")
wanted = json.load(sys.stdin)
present = set(odb.oids_exist(wanted))
trees = {md5: Tree.load(odb, HashInfo("md5", md5)) for md5 in present if md5.endswith(".dir")}
files = {info.value for tree in trees.values() for _, _, info in tree}
held = set(odb.oids_exist(sorted(files))) if files else set()
print(json.dumps({
    md5: None if md5 not in present else [
        "/".join(key) for key, _, info in trees.get(md5, ()) if info.value not in held
    ]
    for md5 in wanted
}))
"""
# Fetch objects (directories: the manifest, then its files) into this checkout's DVC cache.
_REMOTE_FETCH = """
import json, sys
from dvc.repo import Repo
from dvc_data.hashfile.hash_info import HashInfo
from dvc_data.hashfile.tree import Tree
repo = Repo(".")
wanted = json.load(sys.stdin)
repo.cloud.pull([HashInfo("md5", md5) for md5 in wanted])
local = repo.cache.local
files = [
    info
    for md5 in wanted
    if md5.endswith(".dir") and local.exists(md5)
    for _, _, info in Tree.load(local, HashInfo("md5", md5))
]
if files:
    repo.cloud.pull(files)
"""
REMOTE_PROBE_SECONDS = float(os.environ.get("REPRO_REMOTE_TIMEOUT", "30"))
_CREDENTIAL_ERRORS = ("Credential", "Auth", "Permission", "Forbidden", "AccessDenied", "Signature")
# What each kind of remote reads its credentials from: .dvc/config.local, or the environment.
_CREDENTIALS = {
    "s3": "access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    "azure": "connection_string (or AZURE_STORAGE_CONNECTION_STRING)",
    "gs": "credentialpath (or GOOGLE_APPLICATION_CREDENTIALS)",
    "ssh": "user and keyfile",
}
_FIX_REACH = (
    "Fix: check the remote's URL and endpoint (`dvc remote list`, `dvc config -l`) and that "
    "this machine can reach it."
)


def _remote_url(repo: Path) -> str:
    listed = run(dvc_command("remote", "list"), cwd=repo).stdout.split()
    return public_url(listed[1]) if len(listed) > 1 else "the default remote"


def probe_remote(repo: Path) -> None:
    """Raise a named RegistryError, within REMOTE_PROBE_SECONDS, unless the DVC remote can be
    read: so that a wrong key or a dead endpoint is never reported as missing objects."""
    probed = run([sys.executable, "-c", _REMOTE_PROBE], cwd=repo, timeout=REMOTE_PROBE_SECONDS)
    where = _remote_url(repo)
    if probed.returncode is None:
        raise RemoteError(
            f"the DVC remote {where} did not answer within {REMOTE_PROBE_SECONDS:.0f} s "
            f"(REPRO_REMOTE_TIMEOUT). {_FIX_REACH}"
        )
    if probed.returncode != 0:
        said = probed.stderr.strip().splitlines()
        raise RemoteError(f"could not open the DVC remote {where}: {said[-1] if said else '?'}")
    answer = json.loads(probed.stdout.strip().splitlines()[-1])
    if answer.get("bucket"):
        raise RemoteError(
            f"the DVC remote {where} names the bucket or container {answer['bucket']!r}, which "
            "does not exist. Fix: create it (DVC does not create buckets), then `dvc push`."
        )
    if answer["error"]:
        name, detail = answer["error"], answer["detail"]
        credentials = any(word.lower() in (name + detail).lower() for word in _CREDENTIAL_ERRORS)
        settings = _CREDENTIALS.get(answer.get("protocol"), "its credentials")
        fix = (
            f"Fix: set {settings} for this clone: `dvc remote modify --local storage <key> "
            "<value>` writes .dvc/config.local, which git never holds."
            if credentials
            else _FIX_REACH
        )
        kind = "refused this clone's credentials" if credentials else "could not be reached"
        raise RemoteError(f"the DVC remote {where} {kind} ({name}: {detail}). {fix}")


def remote_lacks(repo: Path, md5s: set[str]) -> dict[str, list[str] | None]:
    """Ask the DVC remote which of these objects (and which files of a directory) it lacks."""
    probe_remote(repo)
    found = run([sys.executable, "-c", _REMOTE_QUERY], cwd=repo, input=json.dumps(sorted(md5s)))
    if found.returncode != 0:
        raise RemoteError(f"could not query the DVC remote: {found.stderr.strip()[-500:]}")
    return json.loads(found.stdout)


def fetch_objects(repo: Path, md5s: list[str]) -> None:
    """Bring these objects from the DVC remote into ``repo``'s cache, with this environment's
    DVC and ``repo``'s credentials (a rebuild's own checkout never gets them). What the remote
    lacks is simply not fetched: the caller checks its cache afterwards and names it."""
    probe_remote(repo)
    fetched = run([sys.executable, "-c", _REMOTE_FETCH], cwd=repo, input=json.dumps(md5s))
    if fetched.returncode != 0:
        raise RemoteError(f"could not fetch from the DVC remote: {fetched.stderr.strip()[-500:]}")


# ---- credentials for CI, from its secrets ------------------------------------------------

# Secrets a CI job may set, and what each becomes in this clone's .dvc/config.local. s3 and
# azure read their own variables (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
# AZURE_STORAGE_CONNECTION_STRING) directly, so only what needs a file or a key is here.
CI_VARIABLES = {
    "DVC_REMOTE_ENDPOINT_URL": "endpointurl (s3 or gcs: an S3-compatible store or emulator)",
    "DVC_REMOTE_ALLOW_ANONYMOUS": "allow_anonymous_login (gcs: a public bucket or an emulator)",
    "GCS_CREDENTIALS_JSON": "credentialpath (gcs: the service account key, written to a file)",
    "SSH_PRIVATE_KEY": "keyfile (ssh: the key, written to a file)",
    "SSH_USER": "user (ssh)",
    "SSH_KNOWN_HOSTS": "the server's host key, added to ~/.ssh/known_hosts (ssh)",
}


def credentials_from_environment(repo: Path, environ: dict | None = None) -> list[str]:
    """Write the CI secrets found in the environment into this clone's .dvc/config.local
    (remote ``storage``); returns one line per setting made, naming none of the values."""
    environ = os.environ if environ is None else environ
    local: dict[str, str] = {}
    done = []
    if environ.get("DVC_REMOTE_ENDPOINT_URL"):
        local["endpointurl"] = environ["DVC_REMOTE_ENDPOINT_URL"]
    if environ.get("DVC_REMOTE_ALLOW_ANONYMOUS", "").lower() in ("1", "true", "yes"):
        local["allow_anonymous_login"] = "true"
    if environ.get("GCS_CREDENTIALS_JSON"):
        key = secret_file(repo, "reproml-gcs-key.json", environ["GCS_CREDENTIALS_JSON"])
        local["credentialpath"] = str(key)
    if environ.get("SSH_PRIVATE_KEY"):
        local["keyfile"] = str(secret_file(repo, "reproml-ssh-key", environ["SSH_PRIVATE_KEY"]))
    if environ.get("SSH_USER"):
        local["user"] = environ["SSH_USER"]
    for key, value in local.items():
        command = dvc_command("remote", "modify", "--local", "storage")
        changed = run([*command, key, value], cwd=repo)
        if changed.returncode != 0:
            raise RemoteError(f"could not set {key} for the remote: {changed.stderr.strip()}")
        done.append(f"set {key} in .dvc/config.local")
    if environ.get("SSH_KNOWN_HOSTS"):
        known = Path(os.path.expanduser("~/.ssh/known_hosts"))
        known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with known.open("a", encoding="utf-8") as handle:
            handle.write(environ["SSH_KNOWN_HOSTS"].strip() + "\n")
        done.append(f"added the server's host key to {known}")
    for variable in ("AWS_ACCESS_KEY_ID", "AZURE_STORAGE_CONNECTION_STRING"):
        if environ.get(variable):
            done.append(f"{variable} is set (DVC reads it from the environment)")
    return done or [
        "no remote credentials in the environment: set the CI secrets docs/ci.md lists "
        "for your remote"
    ]


def run_remote_credentials(args: argparse.Namespace) -> int:
    """`make remote-credentials` (CI)."""
    from .registry import repo_root

    for line in credentials_from_environment(repo_root()):
        print(line)
    return 0
