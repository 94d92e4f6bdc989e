"""`python -m devkit serve` as a user runs it: emulators, app on loopback, health 200, the environment's settings
over local.settings.json's, Ctrl-C leaves nothing behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devkit.emulators.launcher import free_port, port_in_use
from devkit.local_settings import load_local_settings

REPO = Path(__file__).resolve().parents[2]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(url: str, body: dict, key: str) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "x-api-key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# A user's own bootstrap key, set in the environment: it must replace local.settings.json's public default.
OWN_ADMIN_KEY = "e2e-own-admin-key-from-the-environment-0123"


def test_serve_answers_health_and_stops_cleanly_on_ctrl_c(tmp_path):
    app_port, azurite_port, cosmos_port = free_port(), free_port(), free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devkit", "serve", "--port", str(app_port), "--azurite-port", str(azurite_port),
             "--cosmos-port", str(cosmos_port)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ADMIN_API_KEY": OWN_ADMIN_KEY},
        )
        try:
            deadline = time.monotonic() + 60
            status, body = 0, {}
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status, body = get_json(f"http://127.0.0.1:{app_port}/api/health")
                    if status == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            assert status == 200, (tmp_path / "serve.log").read_text()
            assert {name: dep["status"] for name, dep in body["dependencies"].items()} == {
                "cosmos": "ok", "blob": "ok", "eventHub": "ok"}
            # The environment's admin key works and the file's default does not.
            tenants = f"http://127.0.0.1:{app_port}/api/v1/tenants"
            default_key = load_local_settings()["ADMIN_API_KEY"]
            assert default_key != OWN_ADMIN_KEY
            assert post_json(tenants, {"tenantId": "e2e-default", "name": "x"}, default_key) == 401
            assert post_json(tenants, {"tenantId": "e2e-own", "name": "x"}, OWN_ADMIN_KEY) == 201

            banner_deadline = time.monotonic() + 10  # printed just after uvicorn starts answering
            while "spaceflow is serving" not in (tmp_path / "serve.log").read_text():
                assert time.monotonic() < banner_deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.05)

            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
            for port in (app_port, azurite_port, cosmos_port):
                assert not port_in_use(port), f"port {port} still open after Ctrl-C"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
