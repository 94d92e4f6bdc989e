// "Sign in with your organization": the OpenID Connect authorization code flow with PKCE, as a single-page app does
// it, through oidc-client-ts (vendored browser build, the global `oidc`): discovery, PKCE, state and nonce, the code
// exchange. The tenant's issuer, the dashboard's client id and the scope come from GET /api/v1/tenants/{t}/signin.
//
// Where things live: the tokens in sessionStorage only (oidc-client-ts's user store; gone with the tab); the access
// token in the Authorization header only (api.js authHeaders). The issuer sends the code back in the URL fragment
// (response_mode=fragment), which the browser never sends to a server, and the page takes it out of the address bar
// before it exchanges it.
const oidc = window.oidc;
const SIGN_IN = "spaceflow.signIn"; // {tenant, issuer, clientId, scope}: the sign-in under way or done in this tab
const REDIRECT_URI = `${location.origin}/app/`; // what the dashboard's registration at the issuer must name
const $ = (id) => document.getElementById(id);

let manager = null;
let user = null;
let signIn = readSignIn();

function readSignIn() {
  try { return JSON.parse(sessionStorage.getItem(SIGN_IN) || "null"); } catch { return null; }
}

function managerFor(found) {
  const store = new oidc.WebStorageStateStore({ store: sessionStorage });
  return new oidc.UserManager({
    authority: found.issuer, client_id: found.clientId, scope: found.scope, redirect_uri: REDIRECT_URI,
    response_type: "code", response_mode: "fragment", userStore: store, stateStore: store,
    loadUserInfo: false, automaticSilentRenew: false, monitorSession: false, filterProtocolClaims: true,
  });
}

function nonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The access token of the person signed in, or null (then the API key is the credential). An expired token is
// still sent: the API answers 401, and that sends the person back to sign in.
export function bearerToken() { return user ? user.access_token : null; }
export function signedIn() { return user !== null; }

function showWho() {
  const who = $("who");
  if (user) {
    const profile = user.profile || {};
    who.textContent = `Signed in as ${profile.name || profile.preferred_username || profile.sub}`;
    who.title = `${profile.preferred_username || profile.sub} (tenant ${signIn.tenant})`;
  }
  who.hidden = !user;
  $("signout").hidden = !user;
  $("org-form").hidden = Boolean(user) || $("key-form").hidden;
}

// Back from the issuer (#code=...&state=... or #error=...&state=...): exchange the code and return where the
// person was ({building, floor}). Else pick up this tab's earlier sign-in. Returns {} when nobody is signed in.
export async function resumeSignIn() {
  const answer = new URLSearchParams(location.hash.slice(1));
  if (answer.has("state") && (answer.has("code") || answer.has("error"))) {
    const url = location.href;
    history.replaceState(null, "", location.pathname + location.search); // the code leaves the address bar now
    if (!signIn) throw new Error("a sign-in answer arrived, but no sign-in was started in this tab");
    manager = managerFor(signIn);
    try {
      user = await manager.signinRedirectCallback(url); // checks state and nonce, redeems the code with PKCE
    } catch (e) {
      user = null;
      throw new Error(`sign-in failed: ${e.error_description || e.message || e}`);
    }
    showWho();
    return { wanted: user.state || {} };
  }
  if (signIn) {
    manager = managerFor(signIn);
    user = (await manager.getUser()) || null;
    showWho();
  }
  return {};
}

async function startSignIn(tenant) {
  const response = await fetch(`/api/v1/tenants/${encodeURIComponent(tenant)}/signin`,
    { headers: { accept: "application/json" } });
  if (response.status === 404 || response.status === 400) {
    throw new Error(`'${tenant}' does not sign people in to the dashboard: check the tenant id, or use an API key`);
  }
  if (!response.ok) throw new Error(`the sign-in could not start (${response.status}): try again`);
  const found = await response.json();
  signIn = { tenant, issuer: found.issuer, clientId: found.clientId, scope: found.scope };
  sessionStorage.setItem(SIGN_IN, JSON.stringify(signIn));
  manager = managerFor(signIn);
  const here = new URLSearchParams(location.hash.slice(1));
  await manager.signinRedirect({ state: { building: here.get("building"), floor: here.get("floor") },
                                 nonce: nonce() });
}

// Drop the person's tokens (this tab only: their session at the issuer is theirs to end there).
export async function signOut() {
  const leaving = manager;
  user = null;
  manager = null;
  showWho();
  if (leaving) await leaving.removeUser();
}

// The organization form and the sign-out button. `onSignedOut` puts the page back to the choice of sign-in;
// `onError` shows what went wrong.
export function mountSignIn({ onSignedOut, onError }) {
  const tenant = new URLSearchParams(location.hash.slice(1)).get("tenant") || (signIn && signIn.tenant);
  if (tenant) $("tenant-input").value = tenant;
  $("org-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startSignIn($("tenant-input").value.trim()).catch(onError);
  });
  $("signout").addEventListener("click", () => { signOut().finally(onSignedOut); });
  // the org form shows and hides with the key form (app.js asks for a credential through the key form)
  new MutationObserver(showWho).observe($("key-form"), { attributes: true, attributeFilter: ["hidden"] });
  showWho();
}
