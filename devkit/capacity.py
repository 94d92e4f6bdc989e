"""`python -m devkit capacity [--json]`: the capacity and cost model of docs/capacity.md, computed from its inputs.

Pure arithmetic, no I/O: `model(inputs, phones)` gives one column of the tables for a number of phones, and
`markdown(inputs)` renders the tables docs/capacity.md shows. Every input carries where it comes from (a benchmark
command, a document, a list price and its page) in SOURCES; when a benchmark's numbers change, pass the new ones
with `--set name=value` (or change the default here) and paste the tables again.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

PHONES = (1_000, 10_000, 100_000)
MB = 1_000_000  # Event Hubs' "1 MB/s" per throughput unit, taken as 10^6 bytes (the lower reading)
HOURS_PER_MONTH = 730.0
STANDARD_MAX_TU = 40  # 20 from the portal, up to 40 with a support request
STANDARD_MAX_PARTITIONS = 32
PIPELINE_CACHE_DEVICES = 50_000  # PipelineService(cache_size=...) default: devices one instance keeps in memory
SERVERLESS_MAX_RU_S = 5_000  # per container up to 50 GB (serverless-performance)
INGRESS_EVENT_BILLING_BYTES = 64 * 1024  # an ingress event is billed per 64 KB unit


@dataclass(frozen=True)
class Inputs:
    # traffic
    batch_interval_s: float = 30.0
    sightings_per_batch: float = 23.8
    event_body_bytes: float = 3_100.0
    busy_hours_per_month: float = 198.0
    arrival_hours_per_day: float = 1.0
    office_hours_per_day: float = 9.0
    # processing
    instance_sightings_per_s: float = 48_329.0
    scaling_efficiency: float = 0.88
    instance_utilization: float = 0.7
    memory_per_device_bytes: float = 2_707.0
    instance_base_memory_mb: float = 225.0
    instance_memory_mb: float = 2_048.0
    invocations_per_partition_per_s: float = 1.0
    ingest_cpu_s_per_request: float = 0.0023
    # Event Hubs
    tu_utilization: float = 0.8
    # Cosmos DB
    ru_per_sighting_arrivals: float = 0.274
    ru_per_sighting_steady: float = 0.025
    queries_per_s_per_1000_phones: float = 1.0
    ru_per_query: float = 7.0
    open_streams_per_building: float = 2.0
    stream_ru_s_per_1000_spaces: float = 18.3
    device_doc_bytes: float = 816.0
    space_doc_bytes: float = 763.0
    visit_doc_bytes: float = 336.0
    cosmos_system_bytes: float = 200.0
    phones_per_space: float = 2.5
    visits_per_phone_per_day: float = 10.0
    office_days_per_month: float = 22.0
    visits_retention_days: float = 90.0
    # Blob storage
    phones_per_building: float = 1_000.0
    rollup_bytes_per_space_hour: float = 60.0
    rollup_files_per_building_hour: float = 4.0
    dead_letter_share: float = 0.0001
    # list prices (USD, East US, pay as you go)
    price_tu_hour: float = 0.030
    price_million_ingress_events: float = 0.028
    price_gb_s: float = 0.000026
    price_million_executions: float = 0.40
    price_100_ru_s_hour_autoscale: float = 0.012
    price_million_ru_serverless: float = 0.25
    price_cosmos_gb_month: float = 0.25
    price_blob_gb_month: float = 0.0184
    price_blob_10k_writes: float = 0.05


# where each input comes from: the command that measured it, the document it is taken from, or the price page
SOURCES: dict[str, str] = {
    "batch_interval_s": "the SDK's cadence assumed in docs/deploy.md's high case (the simulator sends every 10 s)",
    "sightings_per_batch": "bench pipeline --json: sightings_per_batch (500 phones)",
    "event_body_bytes": "bench scale --json: event_body_bytes_mean (the ingest event body of a 23.8-sighting batch)",
    "busy_hours_per_month": "every phone in the office 9 h a day, 22 days a month (docs/deploy.md; an upper bound)",
    "arrival_hours_per_day": "assumption: the morning arrival hour runs at the arrivals' RU per sighting",
    "office_hours_per_day": "docs/deploy.md",
    "instance_sightings_per_s": "bench pipeline --json: cosmos_sightings_per_s, median of 9 runs in a fast and a "
                                "slow phase of this VM (41,172-59,168; one process against the Cosmos emulator on "
                                "the same 2 cores; in memory one core does 73,143-110,090/s)",
    "scaling_efficiency": "bench scale --json on an idle machine: 2 workers on 2 cores did 1.77 x one worker "
                          "(scaling_efficiency 0.883, cpu_scaling_efficiency 0.922; 0.918 / 0.923 at load 0.9; "
                          "0.99 / 1.03 before the fifth pass on processing), the lower taken",
    "instance_utilization": "assumption: plan the peak at 70 % of an instance (bursts, retries, redone devices)",
    "memory_per_device_bytes": "bench pipeline --json: memory_per_device_bytes (deep sizeof of the device "
                               "cache / devices; 5.2 KB before issue #15)",
    "instance_base_memory_mb": "bench scale --json: max_rss_mb of a worker (the interpreter, numpy, the app, "
                               "its events; the same with 500 or 125 devices)",
    "instance_memory_mb": "Bicep instanceMemoryMB default (Flex Consumption: 2,048 MB = 1 core)",
    "invocations_per_partition_per_s": "docs/deploy.md: one processing invocation per partition per second",
    "ingest_cpu_s_per_request": "bench scale --json: ingest.cpu_ms_per_request (0.30 ms, the route in "
                                "process) + 2 ms assumed for the Functions host, TLS and the Event Hubs send",
    "tu_utilization": "assumption: plan the peak at 80 % of the throughput units",
    "ru_per_sighting_arrivals": "bench pipeline --json: arrivals_est_ru_per_sighting (simulated minutes 0-3, "
                                "phones arriving; 0.095 over the whole run)",
    "ru_per_sighting_steady": "bench pipeline --json: steady_est_ru_per_sighting (simulated minute 3 on)",
    "queries_per_s_per_1000_phones": "assumption: dashboards, kiosks and apps asking for free rooms or occupancy",
    "ru_per_query": "bench queries --json: live.cosmos.free_rooms_read.est_ru_max, free rooms on the 1,990-space "
                    "tower as the Cosmos emulator returns the documents, by the 1 RU/KB rule (occupancy 6; 2.4 by "
                    "Azure's documented point-read costs)",
    "open_streams_per_building": "assumption: live dashboards (facilities, lobby screens) open all day per building",
    "stream_ru_s_per_1000_spaces": "bench queries --json: live.stream_poll quiet new est_ru (1 RU/KB rule) per "
                                   "2 s poll on the 1,990-space tower, / 2 s, / 1.99",
    "device_doc_bytes": "bench scale --json: documents_at_end.devices.bytes_mean",
    "space_doc_bytes": "bench scale --json: documents_at_end.spaces.bytes_mean (spaces, their outbox events, floor summaries)",
    "visit_doc_bytes": "bench scale --json: documents_at_end.visits.bytes_mean",
    "cosmos_system_bytes": "Cosmos DB adds _rid, _self, _etag, _attachments, _ts to every document",
    "phones_per_space": "assumption (the simulated office: 500 phones in ~200 rooms and passages)",
    "visits_per_phone_per_day": "docs/data-model.md: 10 visits a person a day",
    "office_days_per_month": "docs/deploy.md",
    "visits_retention_days": "Bicep visitsRetentionDays (default 0 keeps visits forever; 90 assumed here)",
    "phones_per_building": "assumption",
    "rollup_bytes_per_space_hour": "assumption (a Parquet row of a space's hour, compressed)",
    "rollup_files_per_building_hour": "docs/metrics.md: spaces, zones, collaboration Parquet and the manifest",
    "dead_letter_share": "assumption: events parked in dead letters (only on failures)",
    "price_tu_hour": "Event Hubs Standard, per TU-hour (azure.microsoft.com/pricing/details/event-hubs)",
    "price_million_ingress_events": "Event Hubs Standard, per million ingress events of up to 64 KB (same page)",
    "price_gb_s": "Functions Flex Consumption on demand, per GB-s (azure.microsoft.com/pricing/details/functions)",
    "price_million_executions": "Functions Flex Consumption on demand, per million executions (same page)",
    "price_100_ru_s_hour_autoscale": "Cosmos DB autoscale: 1.5 x $0.008 per 100 RU/s-hour (understand-your-bill)",
    "price_million_ru_serverless": "Cosmos DB serverless, per million RU (understand-your-bill)",
    "price_cosmos_gb_month": "Cosmos DB transactional storage, per GB-month (understand-your-bill)",
    "price_blob_gb_month": "Blob storage hot LRS, per GB-month (azure.microsoft.com/pricing/details/storage/blobs)",
    "price_blob_10k_writes": "Blob storage hot LRS, per 10,000 write operations (docs/deploy.md's figure)",
}


def _next_power_of_two(value: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, value))))


def model(inputs: Inputs, phones: int) -> dict[str, Any]:
    """One column of the tables: what `phones` phones need and cost in a month."""
    i = inputs
    if phones < 1:
        raise ValueError("phones must be at least 1")
    busy_s = i.busy_hours_per_month * 3600
    events_per_s = phones / i.batch_interval_s
    sightings_per_s = events_per_s * i.sightings_per_batch
    bytes_per_s = events_per_s * i.event_body_bytes
    events_month = events_per_s * busy_s
    sightings_month = sightings_per_s * busy_s

    # Event Hubs: throughput units by events and by bytes, partitions at least one per TU and two per instance
    tu = max(1, math.ceil(max(events_per_s / 1000, bytes_per_s / MB) / i.tu_utilization))
    instances = max(1, math.ceil(sightings_per_s / (i.instance_sightings_per_s * i.scaling_efficiency
                                                    * i.instance_utilization)))
    partitions = min(STANDARD_MAX_PARTITIONS, _next_power_of_two(max(4, tu, 2 * instances)))
    billed_events = events_month * math.ceil(i.event_body_bytes / INGRESS_EVENT_BILLING_BYTES)
    eventhubs_usd = tu * HOURS_PER_MONTH * i.price_tu_hour + billed_events / 1e6 * i.price_million_ingress_events

    # Functions: processing instances and their memory; HTTP ingest
    devices_per_instance = math.ceil(phones / instances)
    instance_mb = i.instance_base_memory_mb + devices_per_instance * i.memory_per_device_bytes / MB
    instance_gb = i.instance_memory_mb / 1024
    processing_gb_s = instances * busy_s * instance_gb  # upper bound: every instance executing all busy hours
    processing_executions = min(events_per_s, partitions * i.invocations_per_partition_per_s) * busy_s
    ingest_instances = max(1, math.ceil(events_per_s * i.ingest_cpu_s_per_request / i.instance_utilization))
    ingest_gb_s = ingest_instances * busy_s * instance_gb  # the same upper bound as processing
    processing_usd = processing_gb_s * i.price_gb_s + processing_executions / 1e6 * i.price_million_executions
    ingest_usd = ingest_gb_s * i.price_gb_s + events_month / 1e6 * i.price_million_executions
    functions_usd = processing_usd + ingest_usd

    # Cosmos DB: RU/s at the peak (arrivals), RU in a month, autoscale and serverless, storage
    spaces = phones / i.phones_per_space
    # each open stream polls its building's summaries and running bookings: a cost per space of the building, so
    # summed over the buildings it is the streams a building times all spaces
    stream_ru_s = i.open_streams_per_building * spaces / 1000 * i.stream_ru_s_per_1000_spaces
    query_ru_s = phones / 1000 * i.queries_per_s_per_1000_phones * i.ru_per_query + stream_ru_s
    peak_ru_s = sightings_per_s * i.ru_per_sighting_arrivals + query_ru_s
    steady_ru_s = sightings_per_s * i.ru_per_sighting_steady + query_ru_s
    autoscale_max = max(1000, math.ceil(peak_ru_s / 1000) * 1000)
    floor_ru_s = autoscale_max / 10
    arrival_h = i.busy_hours_per_month * i.arrival_hours_per_day / i.office_hours_per_day
    steady_h = i.busy_hours_per_month - arrival_h
    idle_h = HOURS_PER_MONTH - i.busy_hours_per_month
    autoscale_ru_s_hours = (arrival_h * max(peak_ru_s, floor_ru_s) + steady_h * max(steady_ru_s, floor_ru_s)
                            + idle_h * floor_ru_s)
    autoscale_usd = autoscale_ru_s_hours / 100 * i.price_100_ru_s_hour_autoscale
    ru_month = (arrival_h * peak_ru_s + steady_h * steady_ru_s) * 3600
    serverless_usd = ru_month / 1e6 * i.price_million_ru_serverless
    visits_kept = phones * i.visits_per_phone_per_day * i.visits_retention_days * i.office_days_per_month / 30.4
    cosmos_bytes = (phones * (i.device_doc_bytes + i.cosmos_system_bytes)
                    + spaces * (i.space_doc_bytes + i.cosmos_system_bytes)
                    + visits_kept * (i.visit_doc_bytes + i.cosmos_system_bytes))
    cosmos_gb = cosmos_bytes / 1e9
    cosmos_storage_usd = cosmos_gb * i.price_cosmos_gb_month

    # Blob: a month of Parquet rollups (hourly and daily rows of every space), dead letters, trigger checkpoints
    buildings = max(1, math.ceil(phones / i.phones_per_building))
    rollup_gb_month = spaces * (24 + 1) * 30.4 * i.rollup_bytes_per_space_hour / 1e9
    dead_letter_gb_month = events_month * i.dead_letter_share * i.event_body_bytes / 1e9
    blob_writes = (processing_executions  # one checkpoint per partition per invocation
                   + buildings * (24 + 1) * 30.4 * i.rollup_files_per_building_hour
                   + events_month * i.dead_letter_share)
    blob_usd = ((rollup_gb_month + dead_letter_gb_month) * i.price_blob_gb_month
                + blob_writes / 10_000 * i.price_blob_10k_writes)

    total_usd = eventhubs_usd + functions_usd + autoscale_usd + cosmos_storage_usd + blob_usd
    return {
        "phones": phones,
        "events_per_s": round(events_per_s, 1), "sightings_per_s": round(sightings_per_s),
        "ingress_mb_per_s": round(bytes_per_s / MB, 2),
        "events_month_millions": round(events_month / 1e6, 2),
        "sightings_month_millions": round(sightings_month / 1e6, 1),
        "eventhubs_tier": "Standard" if tu <= STANDARD_MAX_TU else "Premium or Dedicated",
        "throughput_units": tu, "partitions": partitions,
        "partitions_limit_reached": 2 * instances > STANDARD_MAX_PARTITIONS or tu > STANDARD_MAX_PARTITIONS,
        "processing_instances": instances, "ingest_instances": ingest_instances,
        "devices_per_instance": devices_per_instance,
        "instance_memory_used_mb": round(instance_mb),
        "instance_memory_fits": instance_mb <= i.instance_memory_mb,
        "device_cache_evicts": devices_per_instance > PIPELINE_CACHE_DEVICES,
        "peak_ru_s": round(peak_ru_s), "steady_ru_s": round(steady_ru_s), "query_ru_s": round(query_ru_s),
        "stream_ru_s": round(stream_ru_s, 1),
        "autoscale_max_ru_s": autoscale_max,
        "serverless_viable": peak_ru_s <= SERVERLESS_MAX_RU_S,
        "ru_month_millions": round(ru_month / 1e6, 1),
        "cosmos_storage_gb": round(cosmos_gb, 2),
        "blob_gb_added_month": round(rollup_gb_month + dead_letter_gb_month, 3),
        "blob_writes_month_millions": round(blob_writes / 1e6, 2),
        "usd_month": {
            "event_hubs": round(eventhubs_usd, 2), "functions": round(functions_usd, 2),
            "functions_processing": round(processing_usd, 2), "functions_ingest": round(ingest_usd, 2),
            "cosmos_autoscale": round(autoscale_usd, 2), "cosmos_storage": round(cosmos_storage_usd, 2),
            "blob": round(blob_usd, 2), "total": round(total_usd, 2),
            "cosmos_serverless_instead": round(serverless_usd, 2),
        },
        "usd_per_million_sightings": round(total_usd / (sightings_month / 1e6), 4),
        "usd_per_phone_month": round(total_usd / phones, 4),
    }


ROWS: list[tuple[str, str, str]] = [
    # (label, key or usd_month.key, how it is derived)
    ("batches (events) per second at the peak", "events_per_s", "phones / batch_interval_s"),
    ("sightings per second at the peak", "sightings_per_s", "events/s x sightings_per_batch"),
    ("ingress MB/s", "ingress_mb_per_s", "events/s x event_body_bytes / 10^6"),
    ("sightings a month (millions)", "sightings_month_millions", "sightings/s x busy_hours_per_month x 3600"),
    ("Event Hubs tier", "eventhubs_tier", "Standard up to 40 TUs"),
    ("throughput units", "throughput_units", "ceil(max(events/s / 1000, MB/s) / tu_utilization)"),
    ("partitions", "partitions", "power of 2 >= max(4, TUs, 2 x instances), at most 32"),
    ("processing instances (1 core, 2 GB)", "processing_instances",
     "ceil(sightings/s / (instance_sightings_per_s x scaling_efficiency x instance_utilization))"),
    ("devices cached per instance", "devices_per_instance", "phones / instances"),
    ("memory used per instance (MB)", "instance_memory_used_mb",
     "instance_base_memory_mb + devices x memory_per_device_bytes"),
    ("HTTP ingest instances", "ingest_instances", "ceil(events/s x ingest_cpu_s_per_request / instance_utilization)"),
    ("Cosmos RU/s at the peak (arrivals)", "peak_ru_s", "sightings/s x ru_per_sighting_arrivals + queries"),
    ("Cosmos RU/s steady", "steady_ru_s", "sightings/s x ru_per_sighting_steady + queries"),
    ("of which queries and live streams", "query_ru_s",
     "phones / 1000 x queries_per_s_per_1000_phones x ru_per_query + streams"),
    ("of which live streams", "stream_ru_s",
     "open_streams_per_building x spaces / 1000 x stream_ru_s_per_1000_spaces"),
    ("autoscale max RU/s", "autoscale_max_ru_s", "peak rounded up to 1,000"),
    ("serverless possible (peak <= 5,000 RU/s)", "serverless_viable", "a serverless container's limit"),
    ("Cosmos storage (GB)", "cosmos_storage_gb",
     "phones x device + spaces x space + visits kept x visit (each + system bytes)"),
    ("Blob GB added a month", "blob_gb_added_month", "rollups + dead letters"),
    ("Blob writes a month (millions)", "blob_writes_month_millions",
     "trigger checkpoints + rollup files + dead letters"),
    ("$ Event Hubs", "usd_month.event_hubs", "TUs x 730 h x price_tu_hour + events x price per million"),
    ("$ Functions", "usd_month.functions", "(processing + ingest GB-s) x price_gb_s + executions x price"),
    ("of which processing", "usd_month.functions_processing",
     "instances x busy seconds x GB (an upper bound) + one execution per partition per second"),
    ("of which HTTP ingest", "usd_month.functions_ingest", "ingest instances x busy seconds x GB + requests"),
    ("$ Cosmos DB autoscale", "usd_month.cosmos_autoscale",
     "sum over hours of max(RU/s used, 10 % of max) / 100 x price"),
    ("$ Cosmos DB storage", "usd_month.cosmos_storage", "GB x price_cosmos_gb_month"),
    ("$ Blob", "usd_month.blob", "GB x price + writes / 10,000 x price"),
    ("**$ a month**", "usd_month.total", "the five lines above"),
    ("$ per million sightings", "usd_per_million_sightings", "total / sightings a month"),
    ("$ per phone a month", "usd_per_phone_month", "total / phones"),
    ("*$ Cosmos DB serverless instead of autoscale*", "usd_month.cosmos_serverless_instead",
     "RU a month / 10^6 x price"),
]


def _value(column: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        column = column[part]
    return column


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(inputs: Inputs, phones: tuple[int, ...] = PHONES) -> str:
    columns = [model(inputs, count) for count in phones]
    lines = ["| | " + " | ".join(f"{count:,} phones" for count in phones) + " | how |",
             "|---|" + "---|" * len(phones) + "---|"]
    for label, key, how in ROWS:
        lines.append(f"| {label} | " + " | ".join(_format(_value(c, key)) for c in columns) + f" | {how} |")
    return "\n".join(lines)


def inputs_markdown(inputs: Inputs) -> str:
    lines = ["| input | value | source |", "|---|---|---|"]
    for field in dataclasses.fields(inputs):
        lines.append(f"| `{field.name}` | {getattr(inputs, field.name):,} | {SOURCES[field.name]} |")
    return "\n".join(lines)


def document_tables(inputs: Inputs, phones: tuple[int, ...] = PHONES) -> str:
    """What docs/capacity.md shows between its markers: the inputs, then the tables."""
    return inputs_markdown(inputs) + "\n\n" + markdown(inputs, phones)


def parse_overrides(pairs: list[str]) -> Inputs:
    """`name=value` pairs over the defaults; an unknown name or a value that is not a positive number is refused."""
    names = {field.name for field in dataclasses.fields(Inputs)}
    changes: dict[str, float] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in names:
            raise ValueError(f"--set {pair!r}: expected NAME=VALUE with NAME one of the inputs (`--markdown` lists them)")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--set {pair!r}: {text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"--set {pair!r}: must be a finite number, 0 or more")
        changes[name] = value
    return dataclasses.replace(Inputs(), **changes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the columns as JSON on one line")
    parser.add_argument("--markdown", action="store_true", help="print the inputs and the tables of docs/capacity.md")
    parser.add_argument("--phones", default=",".join(str(p) for p in PHONES), help="comma-separated phone counts")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override an input (repeatable), e.g. --set memory_per_device_bytes=3000")


def main(args: argparse.Namespace) -> int:
    try:
        inputs = parse_overrides(args.set)
        phones = tuple(int(p) for p in args.phones.split(",") if p.strip().isdigit())
        if len(phones) != len(args.phones.split(",")) or any(p < 1 for p in phones):
            raise ValueError(f"--phones {args.phones!r}: expected comma-separated counts of at least 1")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.markdown:
        print(document_tables(inputs, phones))
        return 0
    result = {"inputs": dataclasses.asdict(inputs), "columns": [model(inputs, p) for p in phones]}
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
