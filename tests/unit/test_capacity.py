"""The capacity model's arithmetic on a case computed by hand, and docs/capacity.md in step with the model."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from devkit.capacity import Inputs, document_tables, model, parse_overrides

# Round numbers so that every line below can be checked with pencil and paper.
HAND = Inputs(
    batch_interval_s=10, sightings_per_batch=20, event_body_bytes=2000, busy_hours_per_month=100,
    arrival_hours_per_day=1, office_hours_per_day=10, instance_sightings_per_s=1000, scaling_efficiency=1,
    instance_utilization=0.5, memory_per_device_bytes=1000, instance_base_memory_mb=100, instance_memory_mb=1024,
    invocations_per_partition_per_s=1, ingest_cpu_s_per_request=0.01, tu_utilization=0.5,
    ru_per_sighting_arrivals=0.5, ru_per_sighting_steady=0.1, queries_per_s_per_1000_phones=1, ru_per_query=10,
    open_streams_per_building=0, stream_ru_s_per_1000_spaces=20,
    device_doc_bytes=800, space_doc_bytes=300, visit_doc_bytes=100, cosmos_system_bytes=100, phones_per_space=2,
    visits_per_phone_per_day=10, office_days_per_month=30.4, visits_retention_days=10, phones_per_building=1000,
    rollup_bytes_per_space_hour=100, rollup_files_per_building_hour=4, dead_letter_share=0,
    price_tu_hour=0.03, price_million_ingress_events=0.028, price_gb_s=0.00002, price_million_executions=0.4,
    price_100_ru_s_hour_autoscale=0.012, price_million_ru_serverless=0.25, price_cosmos_gb_month=0.25,
    price_blob_gb_month=0.02, price_blob_10k_writes=0.05,
)


def test_a_thousand_phones_computed_by_hand() -> None:
    c = model(HAND, 1000)
    # 1,000 phones / 10 s = 100 events/s, x 20 = 2,000 sightings/s, x 2,000 B = 0.2 MB/s; 100 h = 360,000 s
    assert (c["events_per_s"], c["sightings_per_s"], c["ingress_mb_per_s"]) == (100, 2000, 0.2)
    assert (c["events_month_millions"], c["sightings_month_millions"]) == (36, 720)
    # TUs: max(0.1, 0.2) / 0.5 -> 1; instances: 2,000 / (1,000 x 0.5) = 4; partitions: 2 x 4 = 8
    assert (c["throughput_units"], c["processing_instances"], c["partitions"]) == (1, 4, 8)
    assert c["eventhubs_tier"] == "Standard" and not c["partitions_limit_reached"]
    # 250 devices an instance x 1,000 B = 0.25 MB over a 100 MB base; HTTP: 100 x 0.01 / 0.5 = 2 instances
    assert (c["devices_per_instance"], c["instance_memory_used_mb"], c["ingest_instances"]) == (250, 100, 2)
    # RU/s: queries 1 x 1 x 10 = 10; peak 2,000 x 0.5 + 10 = 1,010; steady 2,000 x 0.1 + 10 = 210 -> max 2,000
    assert (c["query_ru_s"], c["peak_ru_s"], c["steady_ru_s"], c["autoscale_max_ru_s"]) == (10, 1010, 210, 2000)
    # RU a month: (10 h x 1,010 + 90 h x 210) x 3,600 = 104.4 M
    assert c["ru_month_millions"] == 104.4 and c["serverless_viable"] is True
    # storage: 1,000 x 900 + 500 x 400 + 100,000 visits kept x 200 = 21.1 MB
    assert c["cosmos_storage_gb"] == 0.02
    usd = c["usd_month"]
    assert usd["event_hubs"] == 22.91  # 1 TU x 730 h x 0.03 = 21.90 + 36 M events x 0.028 = 1.008
    # GB-s: (4 + 2 instances) x 360,000 x 1 GB = 2.16 M x 0.00002 = 43.2; executions: (8 x 360,000 + 36 M)
    # = 38.88 M x 0.40 = 15.552
    assert usd["functions"] == 58.75
    assert (usd["functions_processing"], usd["functions_ingest"]) == (29.95, 28.8)  # 28.8 + 1.152; 14.4 + 14.4
    # 10 h x 1,010 + 90 h x 210 + 630 h x 200 (10 % of 2,000) = 155,000 RU/s-hours / 100 x 0.012
    assert usd["cosmos_autoscale"] == 18.6
    assert usd["cosmos_serverless_instead"] == 26.1  # 104.4 M RU x 0.25
    # rollups: 500 spaces x 25 x 30.4 x 100 B = 0.038 GB x 0.02; writes: 2.88 M checkpoints + 25 x 30.4 x 4 files
    assert usd["blob"] == pytest.approx(14.42, abs=0.005)  # 0.00076 + 288.304 x 0.05
    assert usd["total"] == 114.68  # 22.908 + 58.752 + 18.6 + 0.0053 + 14.416
    assert c["usd_per_million_sightings"] == 0.1593  # 114.68 / 720


def test_live_streams_add_their_polls_to_the_query_load() -> None:
    import dataclasses

    c = model(dataclasses.replace(HAND, open_streams_per_building=3), 1000)
    # 1,000 phones / 2 = 500 spaces; 3 streams x 500 / 1000 x 20 RU/s = 30 RU/s on top of the 10 of the queries
    assert (c["stream_ru_s"], c["query_ru_s"], c["peak_ru_s"], c["steady_ru_s"]) == (30, 40, 1040, 240)


def test_beyond_standard_limits_the_model_says_so() -> None:
    c = model(HAND, 200_000)  # 20,000 events/s, 40 MB/s -> 80 TUs; 800 instances
    assert c["throughput_units"] == 80 and c["eventhubs_tier"] == "Premium or Dedicated"
    assert c["partitions"] == 32 and c["partitions_limit_reached"] is True
    assert c["serverless_viable"] is False


def test_overrides_are_checked() -> None:
    assert parse_overrides(["memory_per_device_bytes=3000"]).memory_per_device_bytes == 3000
    for bad in ["nope=1", "memory_per_device_bytes", "ru_per_query=x", "ru_per_query=-1", "ru_per_query=inf"]:
        with pytest.raises(ValueError):
            parse_overrides([bad])
    with pytest.raises(ValueError):
        model(HAND, 0)


def test_docs_capacity_shows_the_tables_the_model_computes() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "capacity.md").read_text()
    block = re.search(r"<!-- capacity:tables -->\n(.*?)\n<!-- /capacity:tables -->", doc, re.DOTALL)
    assert block is not None, "docs/capacity.md lost its generated tables"
    assert block.group(1) == document_tables(Inputs()), "regenerate: python -m devkit capacity --markdown"
