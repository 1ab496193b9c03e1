"""Storage servers on loopback for the remote tests, each started from a registry package by
the tests themselves and stopped afterwards: moto (s3), Azurite (azure, from npm), an asyncssh
SFTP server (ssh) and gcp-storage-emulator (gcs).

Each ``start_*`` returns a ``Server``: how a baked project reaches it (the remote URL in
``.dvc/config``; the credentials, and the loopback endpoint, for ``.dvc/config.local``; any
environment variables), and ``stop()``. A server whose package cannot be installed here
raises ``Unavailable`` with the reason, which the tests report as a skip.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
TOOLS = Path(sys.executable).parent
AZURITE = "azurite@3.37.0"
NPM_PREFIX = Path(os.environ.get("REPROML_NPM_PREFIX", TEMPLATE / ".cache" / "npm"))
BUCKET = "reproml"
# The SFTP account; not a word the commands print (the tests look for it in their output).
SSH_USER = "ci-runner"
# Azurite's documented development account (public, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# gcsfs must not probe the cloud: no GCE metadata server, no gRPC bucket-type probe.
GCS_ENVIRONMENT = {"NO_GCE_CHECK": "true", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


class Unavailable(Exception):
    """The server's package could not be installed or started here; the message says why."""


@dataclass
class Server:
    kind: str
    url: str
    credentials: dict[str, str]
    # Per-clone settings that are not secrets (the loopback endpoint), also in config.local.
    settings: dict[str, str] = field(default_factory=dict)
    # What a clone without usable credentials has: none, except where the server would take
    # an anonymous caller (the gcs emulator), which then gets a key file that does not exist.
    unusable_credentials: dict[str, str] = field(default_factory=dict)
    # The same access as CI secrets: what `make remote-credentials` reads.
    ci_secrets: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    # Deletes one object (by md5) from the server's storage.
    delete_object: object = None
    log: Path | None = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"the server exited: {log.read_text()[-800:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    process.kill()
    raise Unavailable(f"the server did not listen on 127.0.0.1:{port} within {seconds} s")


def _spawn(command: list[str], log: Path, port: int, **kwargs) -> subprocess.Popen:
    handle = log.open("w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, **kwargs)
    _wait_for(port, process, log)
    return process


def object_key(md5: str) -> str:
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def start_s3(scratch: Path, project_python: Path) -> Server:
    moto = TOOLS / "moto_server"
    if not moto.is_file():
        raise Unavailable("moto_server is not installed (moto[server] in the template's lock)")
    port = free_port()
    log = scratch / "moto.log"
    process = _spawn([str(moto), "-H", "127.0.0.1", "-p", str(port)], log, port)
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"))

    def delete_object(md5: str) -> None:  # signed, as moto wants, by the project's s3fs
        script = (
            "import s3fs, sys; s3fs.S3FileSystem(key='testing', secret='testing', "
            "client_kwargs={'endpoint_url': sys.argv[1]}).rm(sys.argv[2])"
        )
        key = f"{BUCKET}/store/{object_key(md5)}"
        subprocess.run([str(project_python), "-c", script, endpoint, key], check=True)

    return Server(
        "s3",
        f"s3://{BUCKET}/store",
        {"access_key_id": "testing", "secret_access_key": "testing"},
        settings={"endpointurl": endpoint},
        ci_secrets={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "DVC_REMOTE_ENDPOINT_URL": endpoint,
        },
        process=process,
        delete_object=delete_object,
        log=log,
    )


def npm_tool(package: str, command: str) -> Path:
    """``command`` from the pinned npm ``package`` (``name@version``), installed once into a
    prefix of its own under NPM_PREFIX (parallel test workers never share one)."""
    prefix = NPM_PREFIX / package.replace("@", "-")
    binary = prefix / "node_modules" / ".bin" / command
    if binary.is_file():
        return binary
    npm = shutil.which("npm")
    if not npm:
        raise Unavailable(f"npm is not installed, so {package} (an npm package) cannot be")
    command_line = [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix"]
    installed = subprocess.run(
        [*command_line, str(prefix), package], capture_output=True, text=True
    )
    if installed.returncode != 0 or not binary.is_file():
        raise Unavailable(f"`npm install {package}` failed: {installed.stderr.strip()[-500:]}")
    return binary


def start_azure(scratch: Path, project_python: Path) -> Server:
    azurite = npm_tool(AZURITE, "azurite-blob")
    port = free_port()
    log = scratch / "azurite.log"
    workspace = scratch / "azurite"
    workspace.mkdir()
    command = [str(azurite), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    # --disableTelemetry: without it Azurite tries to send telemetry off this machine.
    command += ["--location", str(workspace), "--silent", "--disableTelemetry", "--loose"]
    process = _spawn([*command, "--skipApiVersionCheck"], log, port)
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
    blob = "from azure.storage.blob import BlobServiceClient as C; import sys; "
    client = "c = C.from_connection_string(sys.argv[1]); "
    subprocess.run(
        [str(project_python), "-c", blob + client + f"c.create_container({BUCKET!r})", connection],
        check=True,
        capture_output=True,
    )

    def delete_object(md5: str) -> None:
        script = blob + client + f"c.get_container_client({BUCKET!r}).delete_blob(sys.argv[2])"
        key = f"store/{object_key(md5)}"
        subprocess.run([str(project_python), "-c", script, connection, key], check=True)

    return Server(
        "azure",
        f"azure://{BUCKET}/store",
        {"connection_string": connection},
        ci_secrets={"AZURE_STORAGE_CONNECTION_STRING": connection},
        process=process,
        delete_object=delete_object,
        log=log,
    )


SFTP_SERVER = """
import asyncio, sys
import asyncssh

async def main(port, host_key, client_key, root):
    await asyncssh.listen(
        "127.0.0.1", port, server_host_keys=[host_key], authorized_client_keys=client_key,
        sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=root),
        allow_scp=False, process_factory=None,
    )
    await asyncio.Future()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
"""


def start_ssh(scratch: Path, project_python: Path, home: Path) -> Server:
    """An SFTP server of asyncssh (in every lock of an ssh project) with a key of its own;
    the client trusts it through ``home``'s known_hosts, a temporary HOME, never ~/.ssh."""
    keys = scratch / "ssh-keys"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    root = scratch / "sftp-root"
    (root / "store").mkdir(parents=True)
    port = free_port()
    log = scratch / "sftp.log"
    command = [str(project_python), "-c", SFTP_SERVER, str(port)]
    command += [str(keys / "host"), str(keys / "client.pub"), str(root)]
    process = _spawn(command, log, port)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    host_key = (keys / "host.pub").read_text().split()
    known_host = f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}"
    (ssh_dir / "known_hosts").write_text(known_host + "\n")

    def delete_object(md5: str) -> None:
        (root / "store" / object_key(md5)).unlink()

    return Server(
        "ssh",
        f"ssh://127.0.0.1:{port}/store",
        {"user": SSH_USER, "keyfile": str(keys / "client")},
        env={"HOME": str(home)},
        ci_secrets={
            "SSH_PRIVATE_KEY": (keys / "client").read_text(),
            "SSH_USER": SSH_USER,
            "SSH_KNOWN_HOSTS": known_host,
        },
        process=process,
        delete_object=delete_object,
        log=log,
    )


def start_gcs(scratch: Path) -> Server:
    emulator = TOOLS / "gcp-storage-emulator"
    if not emulator.is_file():
        raise Unavailable("gcp-storage-emulator is not installed (in the template's lock)")
    port = free_port()
    log = scratch / "gcs.log"
    command = [str(emulator), "start", "--host", "127.0.0.1", "--port", str(port)]
    process = _spawn([*command, "--in-memory", "--default-bucket", BUCKET], log, port)
    endpoint = f"http://127.0.0.1:{port}"

    def delete_object(md5: str) -> None:
        name = urllib.request.quote(f"store/{object_key(md5)}", safe="")
        request = f"{endpoint}/storage/v1/b/{BUCKET}/o/{name}"
        urllib.request.urlopen(urllib.request.Request(request, method="DELETE"))

    return Server(
        "gcs",
        f"gs://{BUCKET}/store",
        {"allow_anonymous_login": "true"},
        settings={"endpointurl": endpoint},
        unusable_credentials={"credentialpath": str(scratch / "no-such-key.json")},
        ci_secrets={"DVC_REMOTE_ENDPOINT_URL": endpoint, "DVC_REMOTE_ALLOW_ANONYMOUS": "true"},
        env=GCS_ENVIRONMENT,
        process=process,
        delete_object=delete_object,
        log=log,
    )
