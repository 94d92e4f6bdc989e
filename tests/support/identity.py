"""A tenant's OpenID Connect issuer for tests: the devkit's key ring, its documents served from memory."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from devkit.identity import DEVKIT_AUDIENCE, KeyRing, SigningKey, discovery_document, issue_token, issuer_url
from shared.adapters.memory import InMemoryIssuerDocuments
from shared.domain.identity import discovery_url

BASE_URL = "http://127.0.0.1:7071"  # never connected to: documents come from InMemoryIssuerDocuments


@cache
def pooled_key(index: int, alg: str = "RS256") -> SigningKey:
    """Keys generated once per session (an RSA key takes a good part of a second on a busy machine)."""
    return SigningKey.generate(alg)


@dataclass
class FakeIssuer:
    """One tenant's issuer: `publish()` serves its discovery document and the ring's key set."""

    documents: InMemoryIssuerDocuments
    tenant_id: str
    ring: KeyRing = field(default_factory=lambda: KeyRing([pooled_key(0)]))
    base_url: str = BASE_URL
    audience: str = DEVKIT_AUDIENCE

    @property
    def issuer(self) -> str:
        return issuer_url(self.base_url, self.tenant_id)

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def publish(self) -> FakeIssuer:
        self.documents.serve(discovery_url(self.issuer), discovery_document(self.issuer))
        self.documents.serve(self.jwks_uri, self.ring.jwks())
        return self

    def token(self, user_id: str, **kwargs) -> str:
        kwargs.setdefault("audience", self.audience)
        return issue_token(self.ring, self.issuer, user_id, **kwargs)

    def bearer(self, user_id: str, **kwargs) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, **kwargs)}"}

    def jwks_fetches(self) -> int:
        return self.documents.fetched.count(self.jwks_uri)


async def configure_sign_in(api, tenant_id: str, admin_headers: dict[str, str],
                            documents: InMemoryIssuerDocuments) -> FakeIssuer:
    """Publish an issuer for the tenant and point the tenant's identity at it through the API (admin key)."""
    issuer = FakeIssuer(documents, tenant_id).publish()
    response = await api.put(f"/api/v1/tenants/{tenant_id}/identity", headers=admin_headers,
                             json={"issuer": issuer.issuer, "audience": issuer.audience, "userClaim": "oid"})
    assert response.status_code == 200, response.text
    return issuer
