"""Start the local emulators (Azurite blob, the Cosmos DB server) on loopback and stop them cleanly.

Each launcher waits for readiness by a real SDK call, prints the emulator's log when it fails to start, and
stops the process group with terminate, then kill.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.cosmos.aio import CosmosClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "node_modules"
LOOPBACK = "127.0.0.1"

# The well-known development credentials of the emulators: public values, not secrets.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COSMOS_EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


class EmulatorStartError(RuntimeError):
    """An emulator did not become ready; the message carries the tail of its log."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def azurite_connection_string(port: int, host: str = LOOPBACK) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
    )


def cosmos_connection_string(port: int, host: str = LOOPBACK) -> str:
    return f"AccountEndpoint=https://{host}:{port}/;AccountKey={COSMOS_EMULATOR_KEY};"


@dataclass
class RunningEmulator:
    """A started emulator process; `stop()` ends it and everything it spawned."""

    name: str
    port: int
    connection_string: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_in_s: float
    _stopped: bool = field(default=False, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        _stop_process_group(self.process, timeout)


def _stop_process_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec so that the kernel sends it SIGTERM if we die without stopping it (even by
    SIGKILL); None where there is no prctl (not Linux: stop() still ends the emulators on every normal exit).

    libc is loaded here, in the parent: between fork and exec the child of a threaded process must not import or
    dlopen (a lock held by another thread at the fork is never released in the child); it only makes the call."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None

    def set_parent_death_signal() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_parent_death_signal


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise EmulatorStartError("node is not on PATH: run `make setup` (the emulators are npm packages)")
    return node


def _require_package(relative: str) -> Path:
    path = NODE_MODULES / relative
    if not path.exists():
        raise EmulatorStartError(f"{path} is missing: run `make setup` (npm ci installs the emulators)")
    return path


def _start(
    name: str, argv: list[str], port: int, connection_string: str, ready: Callable[[], None], timeout: float,
    log_dir: Path | None,
) -> RunningEmulator:
    if port_in_use(port):
        raise EmulatorStartError(f"{name}: port {port} on {LOOPBACK} is already in use")
    # The log folder doubles as the working directory, so nothing an emulator writes lands in the checkout.
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="spaceflow-emulators-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    started = time.perf_counter()
    die_with_parent = _die_with_parent()
    with open(log_path, "wb") as log:
        # A process group of its own, so stop() also ends anything the emulator spawns and Ctrl-C in a terminal
        # reaches our handler first (we then stop the emulators in order).
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=log_dir, start_new_session=True,
                                   preexec_fn=die_with_parent)  # noqa: PLW1509 - one prctl call, nothing more
    emulator = RunningEmulator(name, port, connection_string, process, log_path, 0.0)
    deadline = started + timeout
    last_error: Exception | None = None
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            break
        try:
            if port_in_use(port):
                ready()
                emulator.started_in_s = round(time.perf_counter() - started, 3)
                return emulator
        except Exception as exc:  # noqa: BLE001 - readiness probes fail in many ways until the server is up
            last_error = exc
        time.sleep(0.05)
    emulator.stop()
    reason = f"exited with code {process.returncode}" if process.returncode is not None else f"not ready after {timeout:.0f} s"
    detail = f" (last probe error: {last_error!r})" if last_error else ""
    message = f"{name} on port {port} {reason}{detail}. Its log ({log_path}):\n{emulator.log_tail()}"
    print(message, file=sys.stderr)
    raise EmulatorStartError(message)


def start_azurite(port: int | None = None, timeout: float = 30.0, log_dir: Path | None = None) -> RunningEmulator:
    """Azurite's blob service, in memory, on loopback."""
    from azure.storage.blob import BlobServiceClient

    port = port or free_port()
    script = _require_package("azurite/dist/src/blob/main.js")
    argv = [
        _node(), str(script), "--blobHost", LOOPBACK, "--blobPort", str(port), "--inMemoryPersistence",
        # azure-storage-blob 12.31 sends an API version newer than Azurite 3.35 knows.
        "--skipApiVersionCheck", "--disableTelemetry", "--silent",
    ]
    connection_string = azurite_connection_string(port)

    def ready() -> None:
        client = BlobServiceClient.from_connection_string(connection_string)
        next(iter(client.list_containers(results_per_page=1)), None)
        client.close()

    return _start("azurite", argv, port, connection_string, ready, timeout, log_dir)


def start_cosmos(port: int | None = None, timeout: float = 30.0, log_dir: Path | None = None) -> RunningEmulator:
    """The Cosmos DB wire-protocol server (HTTPS, self-signed) with spaceflow's fixes, on loopback."""
    port = port or free_port()
    _require_package("@vercel/cosmosdb-server/lib/index.js")
    script = REPO_ROOT / "devkit" / "emulators" / "cosmos_server.js"
    argv = [_node(), str(script), "--port", str(port), "--host", LOOPBACK]
    connection_string = cosmos_connection_string(port)

    def ready() -> None:
        import json
        import ssl
        import urllib.request

        # A real call: the database account read every SDK client starts with (GET /). The certificate is
        # self-signed, so no verification on this loopback probe.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(f"https://{LOOPBACK}:{port}/", timeout=2, context=context) as response:
            account = json.loads(response.read())
        if "writableLocations" not in account:
            raise RuntimeError(f"not a Cosmos database account: {sorted(account)[:5]}")

    return _start("cosmos", argv, port, connection_string, ready, timeout, log_dir)


@contextlib.contextmanager
def running_emulators(azurite_port: int | None = None, cosmos_port: int | None = None) -> Iterator[
    tuple[RunningEmulator, RunningEmulator]
]:
    """Both emulators for the duration of the block; on any error the one already started is stopped."""
    azurite = start_azurite(azurite_port)
    try:
        cosmos = start_cosmos(cosmos_port)
    except BaseException:
        azurite.stop()
        raise
    try:
        yield azurite, cosmos
    finally:
        cosmos.stop()
        azurite.stop()


def cosmos_aio_client(port: int) -> CosmosClient:
    """An async Cosmos client for the local server: its key, no TLS verification (self-signed), no regions."""
    from azure.cosmos.aio import CosmosClient

    return CosmosClient(f"https://{LOOPBACK}:{port}/", credential=COSMOS_EMULATOR_KEY, connection_verify=False,
                        enable_endpoint_discovery=False)
