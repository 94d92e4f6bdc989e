from __future__ import annotations

import json

import pytest

from devkit.datasets import DatasetError, load_dataset, measured_power_of, site_index

SITE = {
    "name": "tiny",
    "units": "m",
    "floors": [{"id": "0", "ordinal": 0}],
    "beacons": [{"id": "A", "x": 0, "y": 0, "floor": "0"}, {"id": "B", "x": 10, "y": 0, "floor": "0"}],
    "zones": [{"id": "Z1", "floor": "0", "polygon": [[0, -2], [10, -2], [10, 2], [0, 2]]}],
}


def _scan(i, split="test", **over):
    scan = {"id": f"s{i}", "device": "d", "split": split, "truth": {"x": 1.0, "y": 0.0, "floor": "0", "zone": "Z1"},
            "rssi": {"A": -60, "B": -75}}
    scan.update(over)
    return scan


def _write(tmp_path, site=SITE, scans=None, raw_lines=None):
    (tmp_path / "site.json").write_text(json.dumps(site))
    lines = raw_lines if raw_lines is not None else [json.dumps(s) for s in (scans or [_scan(1)])]
    (tmp_path / "scans.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_reads_a_valid_folder(tmp_path):
    ds = load_dataset(_write(tmp_path, scans=[_scan(1, beaconTxPowerDbm=-4), _scan(2, split="train")]))
    assert ds.name == "tiny" and len(ds.split("test")) == 1 and len(ds.split("train")) == 1
    assert measured_power_of(ds.split("test")[0]) == -45.0
    assert ds.has_zones and not ds.multi_floor
    index = site_index(ds)
    assert index.space_ids == ["Z1"]


def test_missing_file_is_named(tmp_path):
    (tmp_path / "site.json").write_text(json.dumps(SITE))
    with pytest.raises(DatasetError, match="scans.jsonl: missing"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"scans.jsonl:1: "),
        (json.dumps(_scan(1, rssi={"Q": -60})), r"scans.jsonl:1: rssi names unknown beacon\(s\) Q"),
        (json.dumps(_scan(1, split="dev")), r"scans.jsonl:1: split: split must be 'train' or 'test'"),
        (json.dumps(_scan(1, rssi={"A": "loud"})), r"scans.jsonl:1: rssi.A"),
        (json.dumps(_scan(1, truth={"x": 1, "y": 1, "floor": "7"})), r"truth.floor '7' is not a floor"),
        (json.dumps(_scan(1, truth={"x": 1, "floor": "0"})), r"truth needs both x and y"),
    ],
)
def test_bad_scan_lines_name_line_and_field(tmp_path, line, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(_write(tmp_path, raw_lines=[line]))


def test_bad_site_is_named(tmp_path):
    bad = dict(SITE, beacons=[{"id": "A", "x": 0, "y": 0, "floor": "9"}])
    with pytest.raises(DatasetError, match=r"beacons\[0\] 'A' is on unknown floor '9'"):
        load_dataset(_write(tmp_path, site=bad))
    bowtie = dict(SITE, zones=[{"id": "Z", "floor": "0", "polygon": [[0, 0], [4, 4], [4, 0], [0, 4]]}])
    with pytest.raises(DatasetError, match="self-intersecting"):
        load_dataset(_write(tmp_path, site=bowtie))


def test_no_test_split_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no scan has split 'test'"):
        load_dataset(_write(tmp_path, scans=[_scan(1, split="train")]))
