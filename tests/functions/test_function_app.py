"""The function app's bindings, read once from the decorated functions, and each trigger called directly."""
from __future__ import annotations

import asyncio
import gzip
import inspect
import json
from datetime import UTC, datetime

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from functions.timers import TIMER_SCHEDULE_SETTINGS
from shared.domain.ingest_event import decode_ingest_event
from shared.domain.ports import DependencyUnavailable
from shared.domain.tenancy import Scope
from shared.services.stream import Cursor, StreamService
from tests.functions.conftest import LOCAL_VALUES, REPO
from tests.functions.test_query_api import new_tenant
from tests.functions.test_stream import T0, FakeTime, events, occupy
from tests.support.batches import ingest_event_body, sdk_batch
from tests.support.pipeline import add_small_site
from tests.support.sites import small_site


def bindings(function) -> list[dict]:
    return json.loads(function.get_function_json())["bindings"]


def setting_name(value: str) -> str:
    assert value.startswith("%") and value.endswith("%"), f"{value} should come from an app setting"
    return value.strip("%")


def test_the_app_has_exactly_the_expected_functions(functions_by_name):
    assert set(functions_by_name) == {"http_app_func", "process_sightings", "presence_sweep", "hourly_rollup",
                                      "daily_rollup", "event_delivery", "relay_space_events", "relay_beacon_events",
                                      "no_shows", "booking_sync", "graph_renewal"}


def test_http_is_one_anonymous_catch_all_route_for_fastapi(functions_by_name):
    trigger = bindings(functions_by_name["http_app_func"])[0]
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "{*route}"
    assert trigger["authLevel"] == "ANONYMOUS"  # our API keys are checked by FastAPI, not the host's keys
    assert {"GET", "POST", "PUT", "DELETE"} <= set(trigger["methods"])


def test_event_hub_trigger_reads_batches_with_names_from_settings(functions_by_name):
    [trigger] = bindings(functions_by_name["process_sightings"])
    assert trigger["type"] == "eventHubTrigger"
    assert trigger["cardinality"].lower() == "many"
    assert trigger["connection"] == "EVENTHUB"
    assert LOCAL_VALUES[setting_name(trigger["eventHubName"])] == "sightings"
    assert LOCAL_VALUES[setting_name(trigger["consumerGroup"])] == "spaceflow-processor"


def test_event_hub_trigger_is_retried_with_the_processing_policy(functions_by_name):
    from shared.domain.retry import PROCESSING_RETRY

    function = functions_by_name["process_sightings"]
    policy = function.get_settings_dict("retry_policy")
    assert policy is not None, "without a retry policy a failed invocation's events are skipped at the checkpoint"
    assert {k: policy[k] for k in ("strategy", "max_retry_count", "minimum_interval", "maximum_interval")} == (
        PROCESSING_RETRY.function_retry_arguments())
    # The host's retry count comes in `context`; the Python worker loads the function only if that parameter is
    # annotated with azure.functions.Context itself.
    import typing

    assert typing.get_type_hints(function.get_user_function())["context"] is func.Context


async def test_event_hub_trigger_fails_the_invocation_for_a_retry_until_its_last_attempt(functions_by_name,
                                                                                       memory_context):
    from types import SimpleNamespace

    from shared.services.processing import EventsNotSecured

    now = datetime.now(UTC)
    events = [func.EventHubEvent(body=b"garbage", enqueued_time=now, sequence_number=5, offset="1", partition_key="x")]

    async def blob_down(*args, **kwargs):
        raise DependencyUnavailable("blob", "ServiceRequestError")

    memory_context.blobs.put = blob_down
    trigger = functions_by_name["process_sightings"].get_user_function()

    def host(retry_count: int) -> SimpleNamespace:
        return SimpleNamespace(retry_context=SimpleNamespace(retry_count=retry_count, max_retry_count=16))

    with pytest.raises(EventsNotSecured):
        await trigger(events, host(0))
    assert (memory_context.processing.retries, memory_context.processing.lost) == (1, 0)
    with pytest.raises(EventsNotSecured):
        await trigger(events, host(16))
    assert memory_context.processing.lost == 1


def test_timer_schedules_come_from_settings(functions_by_name):
    from shared.domain.ncrontab import parse_ncrontab

    for name, job in (("presence_sweep", "presence-sweep"), ("hourly_rollup", "hourly-rollup"),
                      ("daily_rollup", "daily-rollup"), ("event_delivery", "event-delivery"),
                      ("no_shows", "no-shows"), ("booking_sync", "booking-sync"),
                      ("graph_renewal", "graph-renewal")):
        [trigger] = bindings(functions_by_name[name])
        assert trigger["type"] == "timerTrigger"
        setting = setting_name(trigger["schedule"])
        assert setting == TIMER_SCHEDULE_SETTINGS[job]
        parse_ncrontab(LOCAL_VALUES[setting])


def test_host_json_fits_the_asgi_app_and_the_event_hub_limits():
    host = json.loads((REPO / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["version"].startswith("[4.")
    assert host["extensions"]["http"]["routePrefix"] == ""  # FastAPI's routes carry /api themselves
    assert host["extensions"]["eventHubs"]["maxEventBatchSize"] == 100
    assert host["extensions"]["eventHubs"]["prefetchCount"] >= host["extensions"]["eventHubs"]["maxEventBatchSize"]
    assert host["telemetryMode"] == "OpenTelemetry"


def test_a_stream_ends_before_the_host_ends_its_invocation():
    # With HTTP streams the host completes an HTTP invocation when the forwarded response has ended, so the
    # function timeout bounds a whole stream: the bridge's wait for the answer to start, then the stream's life.
    from functions.asgi_bridge import START_TIMEOUT_S
    from functions.gate import BODY_DEADLINE_S
    from shared.services.stream import MAX_STREAM_SECONDS

    hours, minutes, seconds = json.loads((REPO / "host.json").read_text())["functionTimeout"].split(":")
    timeout_s = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    assert timeout_s >= BODY_DEADLINE_S + START_TIMEOUT_S + MAX_STREAM_SECONDS + 60


async def test_health_is_plain_json_through_the_function(worker, memory_context):
    response = await worker.get("/api/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["dependencies"]) == {"cosmos", "blob", "eventHub"}


async def test_health_is_503_naming_the_dependency_that_is_down(worker, memory_context):
    memory_context.publisher.fail_with = DependencyUnavailable("event hub", "ConnectError")
    response = await worker.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["dependencies"]["eventHub"]["status"] == "down"
    assert "ConnectError" in body["dependencies"]["eventHub"]["detail"]
    assert body["dependencies"]["cosmos"]["status"] == "ok"


async def test_unknown_routes_answer_problem_json(worker, memory_context):
    # Without a credential every route but health and the docs is 401, unknown ones too: a stranger cannot tell
    # which paths exist. With one, an unknown route is the 404 it is.
    anonymous = await worker.get("/api/nowhere")
    assert anonymous.status_code == 401 and anonymous.json()["status"] == 401
    response = await worker.get("/api/nowhere", headers={"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_a_gzip_sightings_batch_is_posted_through_the_function(worker, memory_context):
    await add_small_site(memory_context.site_models)
    key, _ = await memory_context.auth.mint_key("tenant-a", {Scope.ingest})
    batch = sdk_batch(datetime.now(UTC))
    response = await worker.post("/api/v1/sightings", content=gzip.compress(json.dumps(batch).encode()),
                                 headers={"x-api-key": key, "content-encoding": "gzip",
                                          "content-type": "application/json"})
    assert response.status_code == 202, response.text
    assert response.json()["batchId"] == batch["batchId"] and response.json()["accepted"] == 1
    [event] = memory_context.publisher.published
    assert str(decode_ingest_event(event.body).parsed.batch.batch_id) == batch["batchId"]
    # a body over the route's limit is answered by the app's own gate and body rules
    too_large = await worker.post("/api/v1/sightings", content=b" " * (1024 * 1024 + 1),
                                  headers={"x-api-key": key, "content-type": "application/json"})
    assert too_large.status_code == 413 and too_large.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def acme(api, memory_context):
    keys = await new_tenant(api, "acme")
    assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])).status_code == 201
    return keys


async def test_the_stream_sends_its_snapshot_then_a_change_made_after_it_while_the_app_runs(worker, acme,
                                                                                           memory_context):
    fake = FakeTime()
    memory_context.stream = StreamService(memory_context.queries, clock=fake.clock, sleep=fake.sleep)
    snapshot_seen = asyncio.Event()

    async def change_once_the_client_has_the_snapshot() -> None:  # the stream's first sleep
        await snapshot_seen.wait()  # were the answer buffered until the app ends, this would never come
        await occupy(memory_context, "r-oak", 2, T0)

    fake.at[1] = change_once_the_client_has_the_snapshot
    received = b""
    async with asyncio.timeout(20):
        async with worker.stream("GET", "/api/v1/buildings/hq/stream", params={"maxSeconds": 40},
                                 headers=acme["read"]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-length" not in response.headers
            async for chunk in response.aiter_raw():
                received += chunk
                if b"event: snapshot" in received and not snapshot_seen.is_set():
                    assert memory_context.stream.open_streams == 1  # the app is still running
                    assert b"event: space" not in received
                    snapshot_seen.set()
    got = events(received.decode())
    assert got[0] == {"retry": "2000"} and got[1]["event"] == "snapshot"
    assert {s["id"] for s in json.loads(got[1]["data"])["items"]} == {"r-oak", "k-0", "o-1"}
    assert got[2]["event"] == "space" and got[2]["id"] == str(Cursor(T0, "r-oak"))
    assert json.loads(got[2]["data"])["headcount"] == 2
    assert got[3:] == [{"comment": "keepalive"}] * 2  # then nothing changed for the rest of the 40 s
    assert memory_context.stream.open_streams == 0


async def test_a_client_that_leaves_ends_the_stream_and_gives_its_place_back(worker, functions_by_name, acme,
                                                                            memory_context):
    fake = FakeTime()
    memory_context.stream = StreamService(memory_context.queries, clock=fake.clock, sleep=fake.sleep)
    parked = asyncio.Event()

    async def wait_for_ever() -> None:  # the stream sleeps between polls; the client leaves meanwhile
        parked.set()
        await asyncio.Event().wait()

    fake.at[1] = wait_for_ever
    async with asyncio.timeout(20):
        async with worker.stream("GET", "/api/v1/buildings/hq/stream", headers=acme["read"]) as response:
            async for chunk in response.aiter_raw():
                if b"event: snapshot" in chunk:
                    break
            await parked.wait()
            assert memory_context.stream.open_streams == 1
        # the connection is closed: the worker's server hears it, the bridge tells the app and cancels it
        while memory_context.stream.open_streams or [t for t in asyncio.all_tasks()
                                                     if t.get_name().startswith("asgi-bridge")]:
            await asyncio.sleep(0.01)


def test_the_http_function_takes_and_gives_the_types_the_worker_checks(functions_by_name):
    """At indexing the worker (bindings/meta.py) asks the extension whether the trigger parameter's type is its
    Request and the return type one of its responses; with HTTP streams on, a classic HttpRequest is refused."""
    import typing

    from azurefunctions.extensions.base import HttpV2FeatureChecker, RequestTrackerMeta, ResponseTrackerMeta

    function = functions_by_name["http_app_func"].get_user_function()
    hints = typing.get_type_hints(function)
    assert HttpV2FeatureChecker.http_v2_enabled()  # importing function_app imported the extension
    assert RequestTrackerMeta.check_type(hints["req"])
    assert not RequestTrackerMeta.check_type(func.HttpRequest)
    assert ResponseTrackerMeta.check_type(hints["return"])
    assert inspect.iscoroutinefunction(function)  # a sync one would run in the worker's thread pool

async def test_event_hub_trigger_processes_and_dead_letters(functions_by_name, memory_context):
    now = datetime.now(UTC)
    good = ingest_event_body(now)
    events = [
        func.EventHubEvent(body=good, enqueued_time=now, sequence_number=10, offset="100", partition_key="install-0001"),
        func.EventHubEvent(body=b"garbage", enqueued_time=now, sequence_number=11, offset="200", partition_key="x"),
    ]
    await functions_by_name["process_sightings"].get_user_function()(events)
    assert memory_context.pipeline.stats.batches == 1
    [letter_name] = await memory_context.blobs.list_names("deadletter")
    letter = json.loads(await memory_context.blobs.get("deadletter", letter_name))
    assert letter["sequenceNumber"] == 11 and letter["partitionKey"] == "x"


async def test_timer_trigger_runs_its_job(functions_by_name, memory_context):
    runs = []

    async def job(now):
        runs.append(now)

    memory_context.scheduled.register("hourly-rollup", job)
    timer = TimerRequest(past_due=False)
    await functions_by_name["hourly_rollup"].get_user_function()(timer)
    await functions_by_name["daily_rollup"].get_user_function()(timer)  # the daily rollup: no building, no work
    assert len(runs) == 1 and runs[0].tzinfo is not None


def test_importing_the_app_connects_to_nothing():
    # Importing in a fresh interpreter with no settings at all must succeed: clients are built on first use.
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import function_app; print(len(function_app.app.get_functions()))"],
                            cwd=REPO, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "11"


def test_the_change_feed_triggers_read_the_outbox_containers_with_the_identity(functions_by_name):
    from shared.adapters.cosmos import BEACONS, LEASES, SPACES

    for name, container, prefix in (("relay_space_events", SPACES, "spaces-"),
                                    ("relay_beacon_events", BEACONS, "beacons-")):
        [trigger] = bindings(functions_by_name[name])
        assert trigger["type"] == "cosmosDBTrigger"
        assert (trigger["containerName"], trigger["leaseContainerName"], trigger["leaseContainerPrefix"]) == (
            container, LEASES, prefix)
        assert trigger["connection"] == "COSMOS" and setting_name(trigger["databaseName"]) == "COSMOS_DATABASE"
        assert trigger["createLeaseContainerIfNotExists"] is False  # Bicep creates it; the identity cannot


async def test_the_change_feed_relays_only_outbox_documents_and_delivers_them(functions_by_name, memory_context):
    from shared.adapters import documents
    from shared.domain.events import SpaceFacts, space_events
    from shared.domain.presence import OccupancyChange, SpaceState, apply_occupancy
    from shared.domain.tenancy import BuildingRef

    building = BuildingRef("acme", "hq")
    empty = SpaceState.empty(building, "r-oak")
    after = apply_occupancy(empty, OccupancyChange(building, "r-oak", "phone", "enter", datetime.now(UTC)))
    state, events = space_events(empty, after, SpaceFacts.unknown("r-oak"))
    await memory_context.live_state.save_space(state, events)
    changed = [documents.space_to_doc(state), documents.outbox_to_doc(events[0])]
    trigger = functions_by_name["relay_space_events"].get_user_function()
    await trigger(func.DocumentList([func.Document.from_dict(doc) for doc in changed]))
    assert await memory_context.outbox.pending() == []
    assert [e.id for e in await memory_context.event_log.since("acme", None, events[0].time)] == [events[0].id]
    await trigger(func.DocumentList([func.Document.from_dict(documents.space_to_doc(state))]))  # no outbox: nothing


@pytest.mark.parametrize(("value", "complains"), [(None, True), ("0", True), ("1", False), ("true", False)])
def test_under_the_host_the_app_says_when_http_streams_cannot_start(value, complains):
    # Without PYTHON_ENABLE_INIT_INDEXING=1 the worker starts no HTTP server and each HTTP invocation waits for
    # a request that never comes: the app's log says why.
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "FUNCTIONS_WORKER_RUNTIME": "python",
           **({"PYTHON_ENABLE_INIT_INDEXING": value} if value is not None else {})}
    result = subprocess.run([sys.executable, "-c", "import function_app"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert ("PYTHON_ENABLE_INIT_INDEXING is not 1" in result.stderr) is complains
