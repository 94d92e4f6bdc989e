"""`make demo --check` as a user runs it: emulators, the app, a simulated office posting real HTTP batches."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from devkit.emulators.launcher import free_port, port_in_use

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_a_short_office_day_end_to_end(tmp_path):
    ports = [free_port() for _ in range(3)]
    result = subprocess.run(
        [sys.executable, "-m", "devkit", "demo", "--people", "12", "--minutes", "8", "--speed", "24", "--check",
         "--port", str(ports[0]), "--azurite-port", str(ports[1]), "--cosmos-port", str(ports[2])],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,  # its exit code is asserted below
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stdout + result.stderr
    summary = json.loads(lines[-1])
    # --check's verdict follows the measured accuracy
    assert result.returncode == (0 if summary["room_accuracy"] >= 0.90 else 1), result.stderr
    assert summary["batches_posted"] > 300 and summary["http_errors"] == {}
    assert summary["pipeline"]["batches"] == summary["batches_posted"]  # every posted batch was processed
    assert summary["pipeline"]["unknown_building"] == 0
    assert summary["accuracy_samples"] > 50 and summary["room_accuracy"] >= 0.6
    assert "room accuracy" in result.stdout  # the console view (plain lines when not a terminal)
    assert "not a terminal" in result.stdout and "presence timeout" in result.stdout
    printed = dict(re.findall(r"^(?:keys:)?\s+(ingest|read|people|admin)\s+(\S+)$", result.stdout, re.MULTILINE))
    assert set(printed) == {"ingest", "read", "people", "admin"}, result.stdout
    building = re.search(r"building '([^']+)'", result.stdout)[1]
    assert f"dashboard: http://127.0.0.1:{ports[0]}/app/#key={printed['read']}&building={building}" in result.stdout
    # and one to sign in to as a person: the demo tenant's identity names the dashboard's client
    assert f"dashboard as a person: http://127.0.0.1:{ports[0]}/app/#tenant=demo-tenant&building={building} " \
        in result.stdout
    opted = re.search(r"co-worker finder: (\d+) of 12 people opted in", result.stdout)
    assert opted and int(opted[1]) >= 1, result.stdout
    # a webhook receiver subscribed through the API hears the rooms change, signatures checked on its side
    assert re.search(r"^webhook: http://127\.0\.0\.1:\d+/events is subscribed", result.stdout, re.MULTILINE)
    assert summary["events_received"] > 0 and summary["event_deliveries"]["delivered"] >= summary["events_received"]
    assert re.search(r"^  event \S+ space\.occupied spaces/\S+ \(.+: occupied, headcount \d+\)$", result.stdout,
                     re.MULTILINE), result.stdout
    # meeting rooms take bookings from the demo's own iCalendar feeds; the one booked before the day is a no-show
    assert re.search(r"^calendars: \d+ meeting rooms take their bookings from iCalendar feeds the demo serves at "
                     r"http://127\.0\.0\.1:\d+/rooms/", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^  no-show \S+ .+ \(booked \d\d:\d\d-\d\d:\d\d, released\)$", result.stdout, re.MULTILINE)
    assert "meeting rooms free for 30 min" in result.stdout
    assert summary["bookings"]["no_shows"] >= 1 and summary["bookings"]["started"] >= summary["bookings"]["no_shows"]
    for port in ports:
        assert not port_in_use(port), f"port {port} still open after the demo"


def test_a_taken_port_names_the_flag_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devkit", "demo", "--port", str(port), "--azurite-port", str(free_port()),
             "--cosmos-port", str(free_port())],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,  # its exit code is asserted below
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "--port" in result.stderr and "already in use" in result.stderr
