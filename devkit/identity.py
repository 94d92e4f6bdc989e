"""The devkit's OpenID Connect issuer: test tokens from a local signing key, verified by the app exactly as it
verifies Entra ID's (discovery document, JWKS, RS256). Never deployed (devkit/ is in .funcignore).

`python -m devkit serve` serves one issuer per tenant under `/devkit/oidc/<tenantId>` beside the app (outside the
app's own middleware); `python -m devkit token` prints a token; `python -m devkit oidc-keys rotate|retire` rotates
the key. The keys live in one file (`.devkit/oidc-keys.json`, or `DEVKIT_OIDC_KEYS`) that every devkit process
reads, so a rotation takes effect at once in a running server.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devkit.emulators.launcher import REPO_ROOT
from shared.domain.identity import IdentityConfig

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

ISSUER_PATH = "/devkit/oidc"
DEVKIT_AUDIENCE = "api://spaceflow-devkit"
DEVKIT_USER_CLAIM = "oid"  # as in Entra ID, so the devkit exercises a configured claim
KEYS_ENV = "DEVKIT_OIDC_KEYS"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
# Reads a tenant's identity configuration (the app's, when the issuer runs beside it).
IdentityLookup = Callable[[str], Awaitable[IdentityConfig | None]]


def default_keys_path() -> Path:
    return Path(os.environ.get(KEYS_ENV) or REPO_ROOT / ".devkit" / "oidc-keys.json")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str  # RS256 or ES256
    private_pem: str

    @classmethod
    def generate(cls, alg: str = "RS256") -> SigningKey:
        if alg == "RS256":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"unsupported algorithm {alg}")
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return cls(kid=f"devkit-{secrets.token_hex(6)}", alg=alg, private_pem=pem)

    def private_key(self) -> Any:
        return serialization.load_pem_private_key(self.private_pem.encode(), password=None)

    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        jwk = algorithm.to_jwk(self.private_key().public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


class KeyRing:
    """The issuer's keys, oldest first: the newest signs, all are published until retired."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs a key")
        self.keys = list(keys)

    @classmethod
    def generate(cls, alg: str = "RS256") -> KeyRing:
        return cls([SigningKey.generate(alg)])

    @property
    def signing(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, alg: str | None = None) -> SigningKey:
        """A new key signs from now on; the old ones stay published, so tokens they signed stay valid."""
        key = SigningKey.generate(alg or self.signing.alg)
        self.keys.append(key)
        return key

    def retire(self) -> list[str]:
        """Stop publishing every key but the signing one; returns the kids retired."""
        retired = [k.kid for k in self.keys[:-1]]
        self.keys = [self.signing]
        return retired

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        key = next(k for k in self.keys if k.kid == kid) if kid else self.signing
        return jwt.encode(claims, key.private_key(), algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})

    def save(self, path: Path) -> None:
        """Replace the file atomically, so a reader never sees half of it."""
        temporary = self._write_temporary(path)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls([SigningKey(**k) for k in json.loads(path.read_text())["keys"]])

    @classmethod
    def load_or_create(cls, path: Path) -> KeyRing:
        """The ring in the file; a new one when there is none. Two processes starting at once agree on one ring:
        the file is created by a hard link, which fails when another process created it first."""
        if not path.exists():
            temporary = cls.generate()._write_temporary(path)
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return cls.load(path)

    def _write_temporary(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        # Private keys: readable by this user only.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"keys": [dataclasses.asdict(k) for k in self.keys]}, handle, indent=1)
        return temporary


def issuer_url(base_url: str, tenant_id: str) -> str:
    """The devkit issuer of one tenant: one issuer per tenant, as every Entra tenant has its own."""
    return f"{base_url.rstrip('/')}{ISSUER_PATH}/{tenant_id}"


def discovery_document(issuer: str) -> dict[str, Any]:
    return {"issuer": issuer, "jwks_uri": f"{issuer}/jwks", "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token", "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"], "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}


def issue_token(ring: KeyRing, issuer: str, user_id: str, *, audience: str = DEVKIT_AUDIENCE,
                lifetime_s: int = 3600, now: float | None = None, kid: str | None = None,
                extra: dict[str, Any] | None = None) -> str:
    """A signed access token for the person, like Entra's: `oid` and `sub` are the user id."""
    issued = int(time.time() if now is None else now)
    claims = {"iss": issuer, "aud": audience, "sub": user_id, "oid": user_id, "iat": issued, "nbf": issued,
              "exp": issued + lifetime_s, "name": user_id.split("@")[0]}
    return ring.sign({**claims, **(extra or {})}, kid=kid)


def issuer_app(keys_path: Path, identities: IdentityLookup | None = None) -> Starlette:
    """The issuers as a small ASGI app of `/devkit/oidc/<tenantId>`: discovery document, JWKS, and the browser
    sign-in (authorize, token: devkit/oidc_login.py). The key file is read on every request, so `devkit oidc-keys
    rotate` in another process shows at once. `identities` reads a tenant's identity configuration (the app's,
    when the issuer runs beside it): the dashboard client id it accepts, the audience and user id claim it signs."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    from devkit.oidc_login import (
        PAGE_POLICY,
        AuthorizationCodes,
        LoginRefused,
        authorization_request,
        client_for,
        exchange,
        form_of,
        login_page,
        redirect_with_code,
        refused_page,
        token_answer,
        user_id_problem,
    )

    codes = AuthorizationCodes()

    def issuer_of(request: Request) -> str | None:
        tenant_id = request.path_params["tenant"]
        if not _TENANT.match(tenant_id):
            return None
        # The issuer as the caller addressed it, so 127.0.0.1 and localhost each get a consistent document.
        return issuer_url(f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}", tenant_id)

    async def discovery(request: Request) -> JSONResponse:
        issuer = issuer_of(request)
        if issuer is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(discovery_document(issuer))

    async def jwks(request: Request) -> JSONResponse:
        if issuer_of(request) is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(KeyRing.load_or_create(keys_path).jwks())

    async def authorize(request: Request) -> Response:
        issuer = issuer_of(request)
        if issuer is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        tenant_id = request.path_params["tenant"]
        try:
            client = await client_for(tenant_id, issuer, identities)
            if request.method == "GET":
                asked = authorization_request(tenant_id, parse_qs(request.url.query, keep_blank_values=True), client)
                return HTMLResponse(login_page(tenant_id, request.url.path, asked),
                                    headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"})
            form = await form_of(request)
            asked = authorization_request(tenant_id, form, client)
        except LoginRefused as refused:
            return refused_page(refused)
        login = (form.get("login") or [""])[0].strip()
        if problem := user_id_problem(login):
            return HTMLResponse(login_page(tenant_id, request.url.path, asked, problem), status_code=400,
                                headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"})
        code = codes.issue(asked, login, client)
        return RedirectResponse(redirect_with_code(asked, code), status_code=303)

    async def token(request: Request) -> JSONResponse:
        issuer = issuer_of(request)
        if issuer is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            pending = exchange(codes, request.path_params["tenant"], await form_of(request))
        except LoginRefused as refused:
            return JSONResponse({"error": refused.error, "error_description": refused.description}, status_code=400,
                                headers=no_store)
        return JSONResponse(token_answer(KeyRing.load_or_create(keys_path), issuer, pending), headers=no_store)

    return Starlette(routes=[
        Route(ISSUER_PATH + "/{tenant}/.well-known/openid-configuration", discovery),
        Route(ISSUER_PATH + "/{tenant}/jwks", jwks),
        Route(ISSUER_PATH + "/{tenant}/authorize", authorize, methods=["GET", "POST"]),
        Route(ISSUER_PATH + "/{tenant}/token", token, methods=["POST"]),
    ])


def with_devkit_issuer(app: ASGIApp, keys_path: Path, identities: IdentityLookup | None = None) -> ASGIApp:
    """`app` with the devkit issuers beside it: their paths never reach the app (nor its middleware)."""
    issuers = issuer_app(keys_path, identities)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(ISSUER_PATH + "/"):
            await issuers(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


async def identity_of_the_app(tenant_id: str) -> IdentityConfig | None:
    """A tenant's identity configuration from the app running in this process (devkit serve, demo)."""
    from shared.wiring import get_context

    return await (await get_context()).tenants.get_identity(tenant_id)
