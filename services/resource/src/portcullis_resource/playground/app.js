// Portcullis token playground. Tokens are kept in these variables only:
// never in storage, cookies or the URL.
"use strict";

const state = { accessToken: null, refreshToken: null, lastPatId: null };
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
  if (result.ok) setTokens(result.body);
  else $("token-response").textContent = JSON.stringify(result.body, null, 2);
});

$("refresh").addEventListener("click", async () => {
  const result = await call("POST /api/oauth/refresh", "POST", "/api/oauth/refresh", {
    json: { refresh_token: state.refreshToken || "" },
  });
  if (result.ok) setTokens(result.body);
});

$("revoke").addEventListener("click", async () => {
  // The token stays in memory, so the next call shows it refused.
  await call("POST /api/oauth/revoke", "POST", "/api/oauth/revoke", { json: { token: state.accessToken || "" } });
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
