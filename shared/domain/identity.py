"""Signed-in people: each tenant's OpenID Connect issuer (Entra ID in Azure) and the rules a bearer token must pass.

Pure: no I/O. The service (shared/services/identity.py) fetches the issuer's keys and checks the signature; what
an acceptable issuer, key location, token lifetime and user id look like is decided here.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared.domain.errors import FieldError, InvalidToken, Unauthenticated
from shared.domain.tenancy import Principal, Scope

# Asymmetric only: with HS* the "secret" would be the public key anyone can fetch, and `none` is no signature.
ALLOWED_ALGORITHMS = ("RS256", "ES256")
CLOCK_LEEWAY_S = 60  # clocks of the issuer and of our instances drift by seconds, not minutes
MAX_TOKEN_LENGTH = 8192  # Entra access tokens are 1-3 KB; bounded so garbage costs nothing to reject
MAX_URI_LENGTH = 512
MAX_KID_LENGTH = 256
MAX_AUDIENCE_LENGTH = 256
MAX_CLIENT_ID_LENGTH = 128
MAX_SCOPE_LENGTH = 256
MAX_SCOPES = 5
USER_ID_MAX_LENGTH = 128
# The user id as the SDK sends it and as it appears in /people/{userId}: printable ASCII, no spaces.
USER_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
_USER_ID = re.compile(USER_ID_PATTERN)
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
# A public client id as issuers hand them out (Entra: a GUID; others: names): it goes into the sign-in URL.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~:@+/-]{0,127}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
# One scope token (RFC 6749 3.3: printable ASCII but space, `"` and `\`).
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# What the dashboard asks for anyway: the person's id token (openid) and their name for the header (profile).
DASHBOARD_BASE_SCOPES = ("openid", "profile")

DEFAULT_USER_CLAIM = "sub"  # the one claim every OpenID Connect issuer must send
ENTRA_USER_CLAIM = "oid"  # Entra's `sub` differs per app registration; `oid` is the person's id in the directory
_ENTRA_HOSTS = ("login.microsoftonline.com", "sts.windows.net", "login.microsoftonline.us", "login.partner.microsoftonline.cn")
# Registered claims that say something about the token, not about who the person is.
_NOT_USER_CLAIMS = {"iss", "aud", "exp", "nbf", "iat", "jti", "azp", "nonce", "auth_time", "scp", "roles", "ver"}

EXPIRED = "the token has expired"
NOT_VALID = "the token is not valid"
NO_USER_ID = "the token carries no usable user id"

# What a signed-in person may do: read the building (live state, free rooms, routes, amenities) and use the
# co-worker finder as themselves. Nothing that an admin, an integrator or the SDK does.
SIGNED_IN_SCOPES = frozenset({Scope.read, Scope.people_as_self})


@dataclass(frozen=True)
class IdentityConfig:
    """Where a tenant's people sign in: tokens from `issuer` for `audience`, keys from `jwks_uri` (or, when None,
    from the issuer's discovery document), the person's id in claim `user_claim`. With `dashboard_client_id`, the
    dashboard signs people in itself (authorization code flow with PKCE, a public client registered at the
    issuer), asking for `dashboard_scope` on top of DASHBOARD_BASE_SCOPES."""

    tenant_id: str
    issuer: str
    audience: str
    jwks_uri: str | None
    user_claim: str
    updated_at: datetime
    dashboard_client_id: str | None = None
    dashboard_scope: str | None = None


@dataclass(frozen=True)
class DashboardSignIn:
    """What the dashboard needs to sign a tenant's people in; public (see docs/dashboard.md for what it tells)."""

    issuer: str
    client_id: str
    scope: str  # space-separated, DASHBOARD_BASE_SCOPES first


def dashboard_sign_in(config: IdentityConfig) -> DashboardSignIn | None:
    """The tenant's dashboard sign-in, or None when its identity configuration has no dashboard client."""
    if config.dashboard_client_id is None:
        return None
    extra = (config.dashboard_scope or "").split()
    scopes = list(DASHBOARD_BASE_SCOPES) + [s for s in extra if s not in DASHBOARD_BASE_SCOPES]
    return DashboardSignIn(config.issuer, config.dashboard_client_id, " ".join(scopes))


def is_entra_issuer(issuer: str) -> bool:
    host = (urlsplit(issuer).hostname or "").lower()
    return host in _ENTRA_HOSTS or host.endswith(".ciamlogin.com")


def default_user_claim(issuer: str) -> str:
    """`oid` for Entra ID issuers, `sub` for any other."""
    return ENTRA_USER_CLAIM if is_entra_issuer(issuer) else DEFAULT_USER_CLAIM


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uri_problem(url: str, allow_loopback: bool, *, issuer: bool = False) -> str | None:
    """Why `url` may not be an issuer or key location, or None. HTTPS only; plain HTTP only on loopback and only
    when `allow_loopback` (the devkit's issuer). An IP literal of a private, link-local or otherwise internal
    network is refused: an admin must not be able to make our instances call into their network."""
    if len(url) > MAX_URI_LENGTH or not _PRINTABLE.match(url):
        return f"at most {MAX_URI_LENGTH} printable characters, no spaces"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return "not a URL"
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "must have no user name, password or fragment"
    if issuer and parts.query:
        return "an issuer has no query string"
    loopback = is_loopback_host(host)
    if loopback:
        return None if allow_loopback else "loopback addresses are allowed only in local development"
    if parts.scheme != "https":
        return "must be an https:// URL (http only on loopback, in local development)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_global:
        return "must not name an internal network address"
    return None


def identity_problems(issuer: str, audience: str, jwks_uri: str | None, user_claim: str,
                      allow_loopback: bool, dashboard_client_id: str | None = None,
                      dashboard_scope: str | None = None) -> list[FieldError]:
    """Each field of an identity configuration that cannot be used."""
    errors = []
    if message := uri_problem(issuer, allow_loopback, issuer=True):
        errors.append(FieldError("issuer", message))
    if not audience or len(audience) > MAX_AUDIENCE_LENGTH or not _PRINTABLE.match(audience):
        errors.append(FieldError("audience", f"1 to {MAX_AUDIENCE_LENGTH} printable characters, no spaces"))
    if jwks_uri is not None and (message := uri_problem(jwks_uri, allow_loopback)):
        errors.append(FieldError("jwksUri", message))
    if not _CLAIM_NAME.match(user_claim) or user_claim in _NOT_USER_CLAIMS:
        errors.append(FieldError("userClaim", "the name of a claim that identifies the person, such as oid or sub"))
    return errors + dashboard_problems(issuer, dashboard_client_id, dashboard_scope)


def dashboard_problems(issuer: str, client_id: str | None, scope: str | None) -> list[FieldError]:
    """Each dashboard sign-in field that cannot be used: the client id goes into the sign-in URL, the scope is at
    most MAX_SCOPES scope tokens. Entra ID issues an access token for this API only for a scope the API exposes
    (without one the token is Microsoft Graph's, which the API refuses), so there the scope is required."""
    errors = []
    if client_id is not None and not _CLIENT_ID.match(client_id):
        errors.append(FieldError("dashboardClientId", f"1 to {MAX_CLIENT_ID_LENGTH} letters, digits and ._~:@+/- "
                                                      "(the application (client) id of the dashboard's registration)"))
    if scope is not None:
        tokens = scope.split(" ")
        if (not scope or len(scope) > MAX_SCOPE_LENGTH or len(tokens) > MAX_SCOPES
                or not all(_SCOPE_TOKEN.match(t) for t in tokens)):
            errors.append(FieldError("dashboardScope", f"1 to {MAX_SCOPES} scopes separated by one space, at most "
                                                       f"{MAX_SCOPE_LENGTH} characters, e.g. api://<app id>/access_as_user"))
        elif client_id is None:
            errors.append(FieldError("dashboardScope", "only with dashboardClientId"))
    elif client_id is not None and is_entra_issuer(issuer):
        errors.append(FieldError("dashboardScope", "Entra ID needs the scope the API exposes for the dashboard's "
                                                   "token, e.g. api://<app id>/access_as_user"))
    return errors


# An origin the dashboard's pages may connect to for sign-in (Content-Security-Policy connect-src): https, a host
# name (a leading `*.` for a family such as Entra External ID's *.ciamlogin.com) and a port; plain http only on
# loopback. Nothing else, so a setting cannot smuggle another directive (`;`) or a keyword into the policy.
_HTTPS_ORIGIN = re.compile(r"^https://(\*\.)?[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*"
                           r"(:[0-9]{1,5})?$")
_LOOPBACK_ORIGIN = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?$")
MAX_SIGN_IN_ORIGINS = 10


def sign_in_origins(text: str) -> tuple[str, ...]:
    """The origins of a comma- or space-separated list, lower-cased, without a trailing '/'; ValueError naming
    the first that is not an origin."""
    origins = [o.strip().lower().rstrip("/") for o in re.split(r"[,\s]+", text) if o.strip()]
    if len(origins) > MAX_SIGN_IN_ORIGINS:
        raise ValueError(f"at most {MAX_SIGN_IN_ORIGINS} origins")
    for origin in origins:
        if not (_HTTPS_ORIGIN.match(origin) or _LOOPBACK_ORIGIN.match(origin)):
            raise ValueError(f"{origin[:80]!r} is not an origin such as https://login.microsoftonline.com "
                             "(https, a host, an optional port, no path)")
    return tuple(dict.fromkeys(origins))


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery: the issuer without a trailing '/', then /.well-known/openid-configuration."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def issuer_key(issuer: str) -> str:
    """A fixed-length id for an issuer URL (which may hold characters a document id may not)."""
    return hashlib.sha256(issuer.encode()).hexdigest()


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header. Another scheme is Unauthenticated; a Bearer
    header whose token is not a compact JWS is InvalidToken."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("use 'Authorization: Bearer <token>' or an API key in the x-api-key header")
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.match(token):
        raise InvalidToken(NOT_VALID)
    return token


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def token_time_problem(claims: dict[str, Any], now: float, leeway_s: float = CLOCK_LEEWAY_S) -> str | None:
    """EXPIRED or NOT_VALID when the token is not valid at `now` (seconds since the epoch), else None. `exp` is
    required; `nbf` and `iat` are checked when present; `leeway_s` absorbs clock drift."""
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return NOT_VALID
    if now > exp + leeway_s:
        return EXPIRED
    for claim in ("nbf", "iat"):
        if claim in claims and (not _numeric(claims[claim]) or claims[claim] > now + leeway_s):
            return NOT_VALID
    return None


def user_id_from(claims: dict[str, Any], claim: str) -> str | None:
    """The person's id from the verified claims, when it is one the API can address (/people/{userId})."""
    value = claims.get(claim)
    if not isinstance(value, str) or not _USER_ID.match(value):
        return None
    return value


def is_user_id(text: str) -> bool:
    return bool(_USER_ID.match(text))


def signed_in_principal(tenant_id: str, user_id: str) -> Principal:
    """The principal of a person whose token was verified against their tenant's issuer."""
    return Principal(tenant_id=tenant_id, key_id=f"user:{user_id}", scopes=SIGNED_IN_SCOPES, user_id=user_id)
