"""Event subscriptions (tenant admin key): webhooks signed per Standard Webhooks, a customer's Event Hub, the
deployment's Event Grid topic; their deliveries and replays (docs/events.md)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from functions.deps import require
from functions.routes.models import PROBLEMS, PathId
from shared.domain.events import EventType
from shared.domain.subscriptions import MAX_URL_LENGTH, Delivery, EventHubTarget, Subscription, SubscriptionStatus
from shared.domain.tenancy import Principal, Scope
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/subscriptions", tags=["events"], responses=PROBLEMS)


class EventHubIn(BaseModel):
    namespace: str = Field(max_length=128, description="<name>.servicebus.windows.net: the customer's namespace, "
                                                        "where our managed identity holds Azure Event Hubs Data Sender")
    hub: str = Field(max_length=256)
    model_config = {"extra": "forbid"}


class SubscriptionIn(BaseModel):
    url: str | None = Field(default=None, max_length=MAX_URL_LENGTH,
                            description="a webhook: https to a public address; each event is POSTed, signed")
    event_hub: EventHubIn | None = Field(default=None, alias="eventHub", description="or a customer's Event Hub")
    event_grid: Literal[True] | None = Field(default=None, alias="eventGrid",
                                             description="or the deployment's Event Grid topic (CloudEvents schema)")
    types: list[EventType] | None = Field(default=None, max_length=len(EventType),
                                          description="full CloudEvents types; omitted: all")
    building_id: str | None = Field(default=None, alias="buildingId", min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$",
                                    description="only this building's events; omitted: every building")
    model_config = {"extra": "forbid", "populate_by_name": True}


class SubscriptionPatchIn(BaseModel):
    paused: bool | None = Field(default=None, description="true pauses; false resumes (and re-enables a disabled "
                                                          "subscription: its held deliveries go again)")
    types: list[EventType] | None = Field(default=None, max_length=len(EventType))
    model_config = {"extra": "forbid"}


class SubscriptionOut(BaseModel):
    id: str
    url: str | None
    event_hub: EventHubIn | None = Field(alias="eventHub")
    event_grid: bool = Field(alias="eventGrid")
    types: list[EventType] = Field(description="empty: all types")
    building_id: str | None = Field(alias="buildingId")
    status: SubscriptionStatus
    disabled_reason: str | None = Field(alias="disabledReason", description="why we disabled it")
    disabled_at: datetime | None = Field(alias="disabledAt")
    created_at: datetime = Field(alias="createdAt")
    secret_expiries: list[datetime | None] = Field(
        alias="secretExpiries", description="when each signing secret stops signing (null: the current one)")
    model_config = {"populate_by_name": True}


class NewSubscriptionOut(SubscriptionOut):
    secret: str | None = Field(description="the Standard Webhooks signing secret (whsec_...), shown only here")


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    continuation_token: str | None = Field(default=None, alias="continuationToken",
                                           description="always null: a tenant has at most 200 subscriptions")
    model_config = {"populate_by_name": True}


class RotatedSecretOut(BaseModel):
    secret: str = Field(description="the new signing secret, shown only here")
    previous_valid_until: datetime | None = Field(alias="previousValidUntil",
                                                  description="the previous secret signs beside it until then")
    model_config = {"populate_by_name": True}


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None = Field(alias="statusCode", description="null: no answer (timeout, refused)")
    latency_ms: float = Field(alias="latencyMs")
    error: str | None
    model_config = {"populate_by_name": True}


class DeliveryOut(BaseModel):
    event_id: str = Field(alias="eventId")
    type: EventType
    subject: str
    time: datetime
    status: str = Field(description="pending, delivered, or held (the subscription is paused or disabled)")
    next_attempt_at: datetime | None = Field(alias="nextAttemptAt")
    delivered_at: datetime | None = Field(alias="deliveredAt")
    attempts: list[AttemptOut]
    model_config = {"populate_by_name": True}


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    continuation_token: str | None = Field(default=None, alias="continuationToken",
                                           description="always null: the newest `limit`")
    model_config = {"populate_by_name": True}


class ReplayOut(BaseModel):
    queued: int = Field(description="events queued for delivery again")


def _out(s: Subscription, cls: type[SubscriptionOut] = SubscriptionOut, **extra: object) -> SubscriptionOut:
    hub = EventHubIn(namespace=s.event_hub.namespace, hub=s.event_hub.hub) if s.event_hub else None
    return cls(id=s.subscription_id, url=s.url, event_hub=hub, event_grid=s.sink.value == "eventGrid",
               types=sorted(s.types, key=lambda t: t.value), building_id=s.building_id, status=s.status,
               disabled_reason=s.disabled_reason, disabled_at=s.disabled_at, created_at=s.created_at,
               secret_expiries=[x.expires_at for x in s.secrets], **extra)


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(event_id=d.event_id, type=d.event.type, subject=d.event.subject, time=d.event.time,
                       status=d.status.value, next_attempt_at=d.next_attempt_at if d.status.value == "pending" else None,
                       delivered_at=d.delivered_at,
                       attempts=[AttemptOut(at=r.at, status_code=r.status_code, latency_ms=round(r.latency_ms, 1),
                                            error=r.error) for r in d.log])


@router.post("", status_code=201, response_model=NewSubscriptionOut, response_model_by_alias=True,
             summary="Subscribe a webhook, an Event Hub or the Event Grid topic to the tenant's events")
async def create_subscription(body: SubscriptionIn, who: Principal = Depends(require(Scope.admin)),
                              context: AppContext = Depends(get_context)) -> SubscriptionOut:
    hub = EventHubTarget(body.event_hub.namespace, body.event_hub.hub) if body.event_hub else None
    subscription, secret = await context.subscriptions.create(
        who.tenant_id, url=body.url, event_hub=hub, event_grid=bool(body.event_grid), types=body.types,
        building_id=body.building_id)
    return _out(subscription, NewSubscriptionOut, secret=secret)


@router.get("", response_model=SubscriptionPage, response_model_by_alias=True,
            summary="The tenant's subscriptions (never their secrets)")
async def list_subscriptions(who: Principal = Depends(require(Scope.admin)),
                             context: AppContext = Depends(get_context)) -> SubscriptionPage:
    return SubscriptionPage(items=[_out(s) for s in await context.subscriptions.list_for_tenant(who.tenant_id)])


@router.get("/{subscriptionId}", response_model=SubscriptionOut, response_model_by_alias=True,
            summary="One subscription: its target, types, status and why it was disabled")
async def get_subscription(subscriptionId: PathId, who: Principal = Depends(require(Scope.admin)),
                           context: AppContext = Depends(get_context)) -> SubscriptionOut:
    return _out(await context.subscriptions.get(who.tenant_id, subscriptionId))


@router.patch("/{subscriptionId}", response_model=SubscriptionOut, response_model_by_alias=True,
              summary="Pause or resume (re-enables a disabled one), or change the types")
async def patch_subscription(subscriptionId: PathId, body: SubscriptionPatchIn,
                             who: Principal = Depends(require(Scope.admin)),
                             context: AppContext = Depends(get_context)) -> SubscriptionOut:
    return _out(await context.subscriptions.update(who.tenant_id, subscriptionId, paused=body.paused,
                                                   types=body.types))


@router.delete("/{subscriptionId}", status_code=204, response_class=Response,
               summary="Unsubscribe: nothing more is delivered, pending deliveries are dropped")
async def delete_subscription(subscriptionId: PathId, who: Principal = Depends(require(Scope.admin)),
                              context: AppContext = Depends(get_context)) -> Response:
    await context.subscriptions.delete(who.tenant_id, subscriptionId)
    return Response(status_code=204)


@router.post("/{subscriptionId}/rotate-secret", response_model=RotatedSecretOut, response_model_by_alias=True,
             summary="A new signing secret; the previous one keeps signing beside it for 24 hours")
async def rotate_secret(subscriptionId: PathId, who: Principal = Depends(require(Scope.admin)),
                        context: AppContext = Depends(get_context)) -> RotatedSecretOut:
    subscription, secret = await context.subscriptions.rotate_secret(who.tenant_id, subscriptionId)
    previous = [x.expires_at for x in subscription.secrets if x.expires_at is not None]
    return RotatedSecretOut(secret=secret, previous_valid_until=max(previous) if previous else None)


@router.get("/{subscriptionId}/deliveries", response_model=DeliveryPage, response_model_by_alias=True,
            summary="The newest deliveries: status, attempts with status codes and latency")
async def list_deliveries(subscriptionId: PathId, limit: int = Query(default=50, ge=1, le=500),
                          who: Principal = Depends(require(Scope.admin)),
                          context: AppContext = Depends(get_context)) -> DeliveryPage:
    deliveries = await context.subscriptions.deliveries(who.tenant_id, subscriptionId, limit)
    return DeliveryPage(items=[_delivery_out(d) for d in deliveries])


@router.post("/{subscriptionId}/replay", status_code=202, response_model=ReplayOut,
             summary="Deliver again every event since `from` (within the last 7 days), in order per space")
async def replay(subscriptionId: PathId,
                 start: AwareDatetime = Query(alias="from", description="RFC 3339 with a time zone"),
                 who: Principal = Depends(require(Scope.admin)),
                 context: AppContext = Depends(get_context)) -> ReplayOut:
    return ReplayOut(queued=await context.subscriptions.replay(who.tenant_id, subscriptionId, start))


