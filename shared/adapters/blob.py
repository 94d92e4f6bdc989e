"""Blob storage adapters: the service client factory, container bootstrap and the BlobStore."""
from __future__ import annotations

import logging
from typing import Any, TypedDict

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient

from shared.domain.ports import DependencyUnavailable
from shared.settings import ANALYTICS_STORAGE_PREFIX, Settings

logger = logging.getLogger(__name__)


# The SDK's default retries wait about 15, 18 and 24 s: a put to an unreachable account is reported after a minute
# and a half, which stalls a dead-letter write and an analytics request alike. Outages are ridden out a layer up
# (the processing trigger's retry policy, the API caller's Retry-After), so the SDK only smooths over a hiccup:
# two retries, after about 3 and 5 s (initial + base^n, +-1 s).
class BlobRetryOptions(TypedDict):
    """The SDK's ExponentialRetry settings, passed to the service client as keyword arguments."""

    retry_total: int
    initial_backoff: int
    increment_base: int
    random_jitter_range: int


BLOB_RETRY_OPTIONS: BlobRetryOptions = {"retry_total": 2, "initial_backoff": 1, "increment_base": 2,
                                        "random_jitter_range": 1}


def create_blob_service(settings: Settings, credential: Any | None = None) -> BlobServiceClient:
    """Service client from a connection string (local) or the service URI + managed identity (Azure)."""
    if settings.analytics_storage_connection_string:
        return BlobServiceClient.from_connection_string(settings.analytics_storage_connection_string,
                                                        **BLOB_RETRY_OPTIONS)
    if credential is None:
        raise ValueError("a credential is needed to connect to Blob storage by service URI")
    if not settings.analytics_storage_service_uri:  # Settings checks one of the two is set
        raise ValueError(f"{ANALYTICS_STORAGE_PREFIX}__serviceUri (or {ANALYTICS_STORAGE_PREFIX}) is not set")
    return BlobServiceClient(settings.analytics_storage_service_uri, credential=credential, **BLOB_RETRY_OPTIONS)


async def ensure_blob_containers(service: BlobServiceClient, names: list[str]) -> None:
    """Create the containers when missing; existing containers and their blobs are left alone."""
    for name in names:
        try:
            await service.create_container(name)
        except ResourceExistsError:
            pass
    logger.info("blob containers ready: %s", ", ".join(names))


class AzureBlobStore:
    def __init__(self, service: BlobServiceClient, probe_container: str | None = None) -> None:
        self._service = service
        # Health reads this container's properties: allowed by the data roles the app's identity holds, unlike
        # account-level calls.
        self._probe_container = probe_container

    async def put(self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write the blob; a container that is missing (deleted, a restored account) is created first, so that a
        dead letter or a rollup is never refused for want of its container."""
        blob = self._service.get_blob_client(container, name)
        settings = ContentSettings(content_type=content_type)
        try:
            try:
                await blob.upload_blob(data, overwrite=True, content_settings=settings)
            except ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) != "ContainerNotFound":
                    raise
                logger.warning("blob container %s does not exist: creating it", container)
                await ensure_blob_containers(self._service, [container])
                await blob.upload_blob(data, overwrite=True, content_settings=settings)
        except AzureError as exc:
            raise DependencyUnavailable("blob", type(exc).__name__) from exc

    async def get(self, container: str, name: str) -> bytes | None:
        try:
            downloader = await self._service.get_blob_client(container, name).download_blob()
            return await downloader.readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise DependencyUnavailable("blob", type(exc).__name__) from exc

    async def list_names(self, container: str, prefix: str = "") -> list[str]:
        client = self._service.get_container_client(container)
        try:
            return sorted([blob.name async for blob in client.list_blobs(name_starts_with=prefix or None)])
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise DependencyUnavailable("blob", type(exc).__name__) from exc

    async def delete(self, container: str, name: str) -> bool:
        try:
            await self._service.get_blob_client(container, name).delete_blob()
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise DependencyUnavailable("blob", type(exc).__name__) from exc
        return True

    async def check(self) -> None:
        try:
            if self._probe_container:
                await self._service.get_container_client(self._probe_container).get_container_properties()
            else:
                await self._service.get_account_information()
        except AzureError as exc:
            raise DependencyUnavailable("blob", type(exc).__name__) from exc
