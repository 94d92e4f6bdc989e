"""One id pattern for every path id (shared/domain/tenancy.py), and one for user ids: what ingest accepts, the
people finder and teams can name, and nothing that could address something else in a store."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared.domain.errors import ContractViolation
from shared.domain.sightings import parse_sightings_batch
from shared.domain.site import Identifier
from shared.domain.teams import TeamIn
from shared.domain.tenancy import ID_MAX_LENGTH, USER_ID_MAX_LENGTH, is_id, is_tenant_id, is_user_id
from tests.support.batches import sdk_batch

HOSTILE = [".", "..", "a/b", "a|b", "a#b", "a?b", "a\\b", "hq\n", "", " hq", "-hq", "é"]


@pytest.mark.parametrize("text", HOSTILE)
def test_no_id_pattern_takes_what_could_address_something_else(text):
    assert not is_id(text) and not is_user_id(text) and not is_tenant_id(text)


def test_ids_are_bounded_and_user_ids_may_be_email_addresses():
    assert is_id("b" * ID_MAX_LENGTH) and not is_id("b" * (ID_MAX_LENGTH + 1))
    assert is_user_id("ann+desk@acme.example") and is_user_id("u" * USER_ID_MAX_LENGTH)
    assert not is_user_id("u" * (USER_ID_MAX_LENGTH + 1))
    assert not is_id("ann@acme.example")  # '@' is for user ids only


@given(st.text(max_size=70) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,70}", fullmatch=True))
def test_site_ids_are_exactly_the_path_ids(text):
    # Every building, floor and space id a site model accepts can be named in a URL, and nothing else.
    try:
        TypeAdapter(Identifier).validate_python(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == is_id(text)


@given(st.text(max_size=130) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,130}", fullmatch=True))
def test_ingest_and_teams_take_exactly_the_user_ids_the_people_finder_can_look_up(text):
    now = datetime.now(UTC)
    try:
        parse_sightings_batch(sdk_batch(now, userId=text), now)
        ingested = True
    except ContractViolation:
        ingested = False
    try:
        TeamIn.model_validate({"members": [text]})
        member = True
    except ValidationError:
        member = False
    assert ingested == member == is_user_id(text)
