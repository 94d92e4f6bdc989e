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
