// Portcullis token playground. Tokens are kept in these variables only:
// never in storage, cookies or the URL. "Sign in with Portcullis" keeps its PKCE
// verifier and state in sessionStorage across the round trip to the auth service,
// and removes them as soon as it is back.
"use strict";

const state = { accessToken: null, refreshToken: null, lastPatId: null, via: "password" };
const PKCE_KEY = "portcullis-playground-pkce";
const $ = (id) => document.getElementById(id);

function decodeSegment(segment) {
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function decodeToken(token) {
  const [header, payload] = token.split(".");
  try {
    return { header: decodeSegment(header), payload: decodeSegment(payload) };
  } catch (error) {
    return { error: "not a JWT" };
  }
}

function show(label, response, body) {
  const status = $("api-status");
  status.textContent = `${label}: ${response.status} ${response.statusText}`;
  status.className = "status " + (response.ok ? "ok" : "error");
  $("api-response").textContent = body === "" ? "(empty body)" : JSON.stringify(body, null, 2);
  const entry = document.createElement("li");
  entry.textContent = `${label} → ${response.status}`;
  $("log").prepend(entry);
}

async function call(label, method, path, { json, bearer } = {}) {
  const headers = {};
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers["Authorization"] = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  } catch (error) {
    $("api-status").textContent = `${label}: network error`;
    $("api-status").className = "status error";
    return { ok: false, body: null };
  }
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : ""; } catch (error) { /* plain text */ }
  show(label, response, body);
  return { ok: response.ok, status: response.status, body };
}

function setTokens(body) {
  state.accessToken = body.access_token || null;
  state.refreshToken = body.refresh_token || state.refreshToken;
  const shown = { ...body };
  $("token-response").textContent = JSON.stringify(shown, null, 2);
  $("decoded-token").textContent = state.accessToken
    ? JSON.stringify(decodeToken(state.accessToken), null, 2)
    : "No token.";
  for (const id of ["refresh", "revoke", "logout"]) $(id).disabled = !state.accessToken;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await call("POST /api/oauth/password/token", "POST", "/api/oauth/password/token", {
    json: { username: $("username").value, password: $("password").value, scope: $("scope").value },
  });
  $("password").value = "";
  state.via = "password";
  if (result.ok) setTokens(result.body);
  else $("token-response").textContent = JSON.stringify(result.body, null, 2);
});

// Tokens from the code flow belong to the playground's own client: they are
// refreshed and revoked as that client, through its own proxy routes.
const routes = {
  password: { refresh: "/api/oauth/refresh", revoke: "/api/oauth/revoke" },
  code: { refresh: "/api/oauth/code/refresh", revoke: "/api/oauth/code/revoke" },
};

$("refresh").addEventListener("click", async () => {
  const path = routes[state.via].refresh;
  const result = await call(`POST ${path}`, "POST", path, {
    json: { refresh_token: state.refreshToken || "" },
  });
  if (result.ok) setTokens(result.body);
});

$("revoke").addEventListener("click", async () => {
  // The token stays in memory, so the next call shows it refused.
  const path = routes[state.via].revoke;
  await call(`POST ${path}`, "POST", path, { json: { token: state.accessToken || "" } });
});

$("logout").addEventListener("click", async () => {
  await call("POST /api/oauth/logout", "POST", "/api/oauth/logout", { bearer: state.accessToken });
});

$("list-posts").addEventListener("click", () => call("GET /api/posts", "GET", "/api/posts", { bearer: state.accessToken }));
$("me").addEventListener("click", () => call("GET /api/me", "GET", "/api/me", { bearer: state.accessToken }));

$("post-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await call("POST /api/posts", "POST", "/api/posts", {
    json: { title: $("post-title").value, body: $("post-body").value },
    bearer: state.accessToken,
  });
});

$("pat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const scopes = $("pat-scopes").value.split(/\s+/).filter(Boolean);
  const result = await call("POST personal access token", "POST", "/api/oauth/personal-access-tokens", {
    json: { name: $("pat-name").value, scopes },
    bearer: state.accessToken,
  });
  if (result.ok) {
    state.lastPatId = result.body.id;
    $("revoke-pat").disabled = false;
  }
});

$("revoke-pat").addEventListener("click", async () => {
  if (!state.lastPatId) return;
  const result = await call("DELETE personal access token", "DELETE", `/api/oauth/personal-access-tokens/${state.lastPatId}`, {
    bearer: state.accessToken,
  });
  if (result.ok) {
    state.lastPatId = null;
    $("revoke-pat").disabled = true;
  }
});

// --- Sign in with Portcullis: authorization code flow with PKCE (RFC 7636) ----------

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function s256(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

const redirectUri = () => `${location.origin}/playground/`;

async function startSignIn(config) {
  const verifier = randomString(32);
  const flowState = randomString(16);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state: flowState }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: $("scope").value,
    state: flowState,
    code_challenge: await s256(verifier),
    code_challenge_method: "S256",
  });
  location.assign(`${config.authorize_url}?${params}`);
}

async function finishSignIn(config) {
  const answer = new URLSearchParams(location.search);
  if (!answer.has("code") && !answer.has("error")) return;
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", location.pathname);  // the code leaves the address bar
  const label = "Sign in with Portcullis";
  if (!saved || answer.get("state") !== saved.state || answer.get("iss") !== config.issuer) {
    $("token-response").textContent = `${label}: the answer does not belong to this page's request.`;
    return;
  }
  if (answer.has("error")) {
    $("token-response").textContent = `${label}: ${answer.get("error")} (${answer.get("error_description") || ""})`;
    return;
  }
  const result = await call("POST /api/oauth/code/token", "POST", "/api/oauth/code/token", {
    json: { code: answer.get("code"), code_verifier: saved.verifier, redirect_uri: redirectUri() },
  });
  state.via = "code";
  if (result.ok) setTokens(result.body);
}

(async () => {
  const response = await fetch("/playground/config.json");
  const config = await response.json();
  if (!config.client_id) return;
  const button = $("sign-in-portcullis");
  button.hidden = false;
  button.addEventListener("click", () => startSignIn(config));
  await finishSignIn(config);
})();
