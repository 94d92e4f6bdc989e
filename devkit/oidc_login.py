"""The devkit issuer's browser sign-in: what the dashboard's authorization code flow with PKCE needs from an issuer,
as an SPA meets it at Entra ID. Devkit only (devkit/ is never deployed): anyone may sign in as anyone.

- `GET <issuer>/authorize`: checks the request (a loopback `/app/` redirect URI, the tenant's dashboard client id,
  `response_type=code`, `openid` in the scope, a PKCE S256 challenge) and shows a small "sign in as" page;
- `POST <issuer>/authorize`: the page's form, checked again, answers 303 to the redirect URI with a code and the
  state (in the fragment when `response_mode=fragment`, as the dashboard asks, so the code never reaches a server);
- `POST <issuer>/token`: `grant_type=authorization_code`; the code is single-use and lives CODE_TTL_S, and is
  exchanged only with the same client id, redirect URI and the verifier of its challenge. The answer has an access
  token for the tenant's audience with its user id claim, and an id token for the client with the nonce.

Errors before the redirect URI is known to be good are a 400 page, never a redirect (an open redirector otherwise).
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from devkit.identity import DEVKIT_AUDIENCE, DEVKIT_USER_CLAIM, IdentityLookup, KeyRing, issue_token
from shared.domain.identity import is_loopback_host, is_user_id

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

# The dashboard's client id at the devkit issuer (devkit seed and the demo configure it; the issuer expects it when
# it cannot read the tenant's configuration, with no app beside it), and the scope it asks for, shaped like Entra's.
DEVKIT_DASHBOARD_CLIENT_ID = "spaceflow-dashboard"
DEVKIT_DASHBOARD_SCOPE = f"{DEVKIT_AUDIENCE}/access_as_user"
DASHBOARD_PATH = "/app/"
CODE_TTL_S = 60.0  # a code is exchanged within a second of the redirect; a minute is plenty
MAX_PENDING_CODES = 1000
TOKEN_LIFETIME_S = 3600
MAX_FORM_BYTES = 16 * 1024
# RFC 7636: the verifier is 43-128 unreserved characters; the S256 challenge is 43 base64url characters.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
_PARAM = re.compile(r"^[\x20-\x7e]{1,512}$")  # state, nonce, scope: printable ASCII
# The page's own policy: nothing loads, nothing frames it (a sign-in form must not be clickjacked).
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


class LoginRefused(Exception):
    """A request the issuer will not serve; `error` is the OAuth error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Client:
    """What the issuer accepts for a tenant: the dashboard's client id, and the audience and user id claim its
    access tokens carry."""

    client_id: str
    audience: str = DEVKIT_AUDIENCE
    user_claim: str = DEVKIT_USER_CLAIM


@dataclass(frozen=True)
class AuthorizationRequest:
    tenant_id: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    response_mode: str  # query or fragment

    def fields(self) -> dict[str, str]:
        """The request as the form carries it to POST /authorize."""
        out = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
               "scope": self.scope, "code_challenge": self.code_challenge, "code_challenge_method": "S256",
               "response_mode": self.response_mode}
        if self.state is not None:
            out["state"] = self.state
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out


@dataclass(frozen=True)
class PendingCode:
    request: AuthorizationRequest
    user_id: str
    client: Client
    expires_at: float


class AuthorizationCodes:
    """Codes handed out and not yet exchanged: each is taken once (a second exchange finds nothing) and only within
    `ttl_s`. Bounded: past MAX_PENDING_CODES the oldest are dropped."""

    def __init__(self, ttl_s: float = CODE_TTL_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._pending: dict[str, PendingCode] = {}

    def issue(self, request: AuthorizationRequest, user_id: str, client: Client) -> str:
        now = self._monotonic()
        for code in [c for c, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[code]
        while len(self._pending) >= MAX_PENDING_CODES:
            del self._pending[next(iter(self._pending))]
        code = secrets.token_urlsafe(32)
        self._pending[code] = PendingCode(request, user_id, client, now + self._ttl_s)
        return code

    def redeem(self, code: str) -> PendingCode | None:
        """The code's grant, once; None for an unknown, used or expired code."""
        pending = self._pending.pop(code, None)
        if pending is None or pending.expires_at <= self._monotonic():
            return None
        return pending


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier: base64url(sha256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def redirect_uri_problem(uri: str) -> str | None:
    """Why the dashboard may not be sent back to `uri`: the devkit signs in only a dashboard served on loopback."""
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or not is_loopback_host(parts.hostname):
        return "the devkit signs in only a dashboard on loopback (http://127.0.0.1:<port>/app/)"
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return "no user name, query or fragment"
    if parts.path != DASHBOARD_PATH:
        return f"the dashboard's address ends in {DASHBOARD_PATH}"
    return None


def _one(params: dict[str, list[str]], name: str, required: bool = True) -> str | None:
    values = params.get(name, [])
    if len(values) > 1:
        raise LoginRefused("invalid_request", f"{name} is given more than once")
    if not values or values[0] == "":
        if required:
            raise LoginRefused("invalid_request", f"{name} is missing")
        return None
    return values[0]


async def client_for(tenant_id: str, issuer: str, identities: IdentityLookup | None) -> Client:
    """The tenant's dashboard client at this issuer: from its identity configuration when the issuer runs beside the
    app, else the devkit's fixed one."""
    if identities is None:
        return Client(DEVKIT_DASHBOARD_CLIENT_ID)
    config = await identities(tenant_id)
    if config is None or config.issuer != issuer or config.dashboard_client_id is None:
        raise LoginRefused("unauthorized_client", f"tenant '{tenant_id}' does not sign people in to the dashboard "
                                                  "at this issuer (its identity has no dashboardClientId)")
    return Client(config.dashboard_client_id, config.audience, config.user_claim)


def authorization_request(tenant_id: str, params: dict[str, list[str]], client: Client) -> AuthorizationRequest:
    """The parameters of GET/POST /authorize, checked; LoginRefused names the first that is wrong."""
    client_id = _one(params, "client_id")
    if client_id != client.client_id:
        raise LoginRefused("unauthorized_client", "unknown client_id for this tenant")
    redirect_uri = _one(params, "redirect_uri") or ""
    if problem := redirect_uri_problem(redirect_uri):
        raise LoginRefused("invalid_request", f"redirect_uri: {problem}")
    if _one(params, "response_type") != "code":
        raise LoginRefused("unsupported_response_type", "only response_type=code (the authorization code flow)")
    scope = _one(params, "scope") or ""
    if "openid" not in scope.split(" "):
        raise LoginRefused("invalid_scope", "the scope must include openid")
    challenge = _one(params, "code_challenge", required=False)
    if challenge is None or _one(params, "code_challenge_method", required=False) != "S256":
        raise LoginRefused("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
    if not _CHALLENGE.match(challenge):
        raise LoginRefused("invalid_request", "code_challenge is not an S256 challenge")
    state, nonce = _one(params, "state", required=False), _one(params, "nonce", required=False)
    for name, value in (("state", state), ("nonce", nonce), ("scope", scope)):
        if value is not None and not _PARAM.match(value):
            raise LoginRefused("invalid_request", f"{name} is at most 512 printable characters")
    response_mode = _one(params, "response_mode", required=False) or "query"
    if response_mode not in ("query", "fragment"):
        raise LoginRefused("invalid_request", "response_mode is query or fragment")
    return AuthorizationRequest(tenant_id, client_id, redirect_uri, scope, state, nonce, challenge, response_mode)


def redirect_with_code(request: AuthorizationRequest, code: str) -> str:
    answer = {"code": code, **({"state": request.state} if request.state is not None else {})}
    return request.redirect_uri + ("#" if request.response_mode == "fragment" else "?") + urlencode(answer)


def token_answer(ring: KeyRing, issuer: str, pending: PendingCode, *, now: float | None = None,
                 lifetime_s: int = TOKEN_LIFETIME_S) -> dict[str, Any]:
    """The token endpoint's answer: an access token for the API (the tenant's audience, the user id in its claim)
    and an id token for the dashboard (its client id as audience, the request's nonce)."""
    issued = int(time.time() if now is None else now)
    user_id, client, request = pending.user_id, pending.client, pending.request
    access = issue_token(ring, issuer, user_id, audience=client.audience, lifetime_s=lifetime_s, now=issued,
                         extra={client.user_claim: user_id, "azp": client.client_id, "scp": "access_as_user"})
    id_claims: dict[str, Any] = {
        "iss": issuer, "aud": client.client_id, "sub": user_id, "iat": issued, "nbf": issued,
        "exp": issued + lifetime_s, "auth_time": issued, "name": user_id.split("@")[0],
        "preferred_username": user_id}
    if request.nonce is not None:
        id_claims["nonce"] = request.nonce
    return {"access_token": access, "token_type": "Bearer", "expires_in": lifetime_s,
            "id_token": ring.sign(id_claims), "scope": request.scope}


def exchange(codes: AuthorizationCodes, tenant_id: str, params: dict[str, list[str]]) -> PendingCode:
    """POST /token, checked: the code's grant, or LoginRefused. The code is spent by any attempt, right or wrong
    (a code seen by someone else must not be tried again)."""
    if _one(params, "grant_type") != "authorization_code":
        raise LoginRefused("unsupported_grant_type", "only grant_type=authorization_code")
    code = _one(params, "code") or ""
    pending = codes.redeem(code)
    if pending is None or pending.request.tenant_id != tenant_id:
        raise LoginRefused("invalid_grant", "the code is unknown, used or expired")
    if _one(params, "client_id") != pending.request.client_id:
        raise LoginRefused("invalid_grant", "the code was issued to another client")
    if _one(params, "redirect_uri") != pending.request.redirect_uri:
        raise LoginRefused("invalid_grant", "redirect_uri differs from the authorization request's")
    verifier = _one(params, "code_verifier", required=False)
    if verifier is None or not _VERIFIER.match(verifier) or not secrets.compare_digest(
            s256(verifier), pending.request.code_challenge):
        raise LoginRefused("invalid_grant", "the code_verifier does not match the code_challenge")
    return pending


async def form_of(request: Request) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body, at most MAX_FORM_BYTES."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise LoginRefused("invalid_request", "the body is application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise LoginRefused("invalid_request", "the body is too large")
    try:
        return parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise LoginRefused("invalid_request", "the body is not URL-encoded ASCII") from None


def login_page(tenant_id: str, action: str, request: AuthorizationRequest, problem: str | None = None) -> str:
    hidden = "\n".join(f'    <input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                       for k, v in request.fields().items())
    note = f'<p role="alert" class="problem">{html.escape(problem)}</p>' if problem else ""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>devkit sign-in: {html.escape(tenant_id)}</title>
  <style>body {{ font: 16px system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; }}
  input[name=login] {{ width: 100%; padding: .4rem; margin: .3rem 0 1rem; }} .muted {{ color: #6b7280; }}
  .problem {{ color: #b91c1c; }}</style>
</head>
<body>
  <h1>Sign in to {html.escape(tenant_id)}</h1>
  <p class="muted">The devkit's OpenID Connect issuer, for local development only: there is no password, anyone may
  sign in as anyone.</p>
  {note}
  <form method="post" action="{html.escape(action)}">
{hidden}
    <label for="login">Sign in as (user id)</label>
    <input id="login" name="login" required maxlength="128" autocomplete="username" autofocus
           placeholder="ann@{html.escape(tenant_id)}.example">
    <button type="submit">Sign in</button>
  </form>
</body>
</html>
"""


def refused_page(refused: LoginRefused) -> Response:
    from starlette.responses import HTMLResponse

    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>devkit sign-in refused</title>"
            f"</head><body><h1>Sign-in refused</h1><p>{html.escape(refused.error)}: "
            f"{html.escape(refused.description)}</p></body></html>")
    return HTMLResponse(body, status_code=400, headers={"Content-Security-Policy": PAGE_POLICY})


def user_id_problem(login: str | None) -> str | None:
    if not login or not is_user_id(login):
        return "a user id is 1 to 128 printable characters without spaces, e.g. ann@example.com"
    return None
