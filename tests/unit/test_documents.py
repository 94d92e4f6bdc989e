"""Stored documents -> presence objects: a time the object needs is read, or its absence named."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.adapters import documents
from shared.domain.people import Tenant


def test_a_required_time_is_read_back_as_written():
    tenant = Tenant(tenant_id="t1", name="T", created_at=datetime(2024, 5, 1, 8, 30, tzinfo=UTC))
    assert documents.tenant_from_doc(documents.tenant_to_doc(tenant)) == tenant


@pytest.mark.parametrize("doc", [{"id": "tenant", "tenantId": "t1", "name": "T"},
                                 {"id": "tenant", "tenantId": "t1", "name": "T", "createdAt": None},
                                 {"id": "tenant", "tenantId": "t1", "name": "T", "createdAt": ""}])
def test_a_missing_required_time_is_named(doc):
    with pytest.raises(documents.MissingField, match="document 'tenant' has no 'createdAt', a required time"):
        documents.tenant_from_doc(doc)
    with pytest.raises(KeyError):  # what the plain doc["createdAt"] raised for an absent one
        documents.tenant_from_doc(doc)


def test_beacon_health_keeps_its_drift_and_reads_older_documents():
    from shared.domain.presence import BeaconDrift, BeaconHealth

    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    health = BeaconHealth("tenant-a", "hq", "b1", at, 2900, None, 21.5, at, BeaconDrift(-3.25, 4.5, 0.8, 420, at, True))
    assert documents.beacon_from_doc(documents.beacon_to_doc(health)) == health
    settling = BeaconHealth("tenant-a", "hq", "b1", at, drift=BeaconDrift(1.5, None, 2.0, 12, at))
    assert documents.beacon_from_doc(documents.beacon_to_doc(settling)) == settling
    older = {k: v for k, v in documents.beacon_to_doc(health).items() if k != "drift"}
    assert documents.beacon_from_doc(older).drift is None  # written before self-calibration
    broken = {**documents.beacon_to_doc(health), "drift": {"levelDb": "x", "at": "2026-12-01T09:00:00Z"}}
    assert documents.beacon_from_doc(broken).drift is None
