// The JSON API, called with the token kept in this tab's sessionStorage (never a cookie or localStorage:
// the token should die with the tab and never ride along on a request the page did not make).

const TOKEN_KEY = "civicsoc.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function signInUrl(reason) {
  const params = new URLSearchParams({ next: location.pathname + location.search });
  if (reason) params.set("reason", reason);
  return "/ui/signin?" + params.toString();
}

/** Send the visitor to the sign-in page unless this tab holds a token (and never resolve: the page is leaving). */
export async function requireToken() {
  if (!token()) {
    location.replace(signInUrl());
    await new Promise(() => {});
  }
}

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }

  /** FastAPI's own answer for a path it has no route for (a route of ours that is not found says more). */
  get noRoute() {
    return this.status === 404 && this.detail === "Not Found";
  }
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc: ["body", "status"], msg: "..."}]
    return detail.map((item) => `${(item.loc || []).filter((p) => p !== "body").join(".")}: ${item.msg}`).join("; ");
  }
  return JSON.stringify(detail);
}

function bareVersion(etag) {
  return (etag || "").replace(/^W\//, "").replace(/"/g, "");
}

/**
 * One API call. Returns {data, version, response}; throws ApiError for any answer but 2xx.
 * options: method, query (URLSearchParams or object), body (JSON), ifMatch (a version), raw (keep the body).
 */
export async function request(path, options = {}) {
  const { method = "GET", query, body, ifMatch, raw = false } = options;
  const headers = { Authorization: `Bearer ${token() || ""}`, Accept: raw ? "*/*" : "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = `"${ifMatch}"`;
  let url = path;
  if (query) {
    const params = query instanceof URLSearchParams ? query : new URLSearchParams(query);
    const text = params.toString();
    if (text) url += "?" + text;
  }
  const response = await fetch(url, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store", credentials: "omit", redirect: "error",
  });
  if (response.status === 401) {
    forgetToken();
    location.assign(signInUrl("expired"));
    throw new ApiError(401, "your sign-in is no longer valid", path);
  }
  if (!response.ok) {
    let detail = response.statusText || `HTTP ${response.status}`;
    try {
      const answer = await response.json();
      if (answer && answer.detail !== undefined) detail = describe(answer.detail);
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, detail, path);
  }
  const version = bareVersion(response.headers.get("ETag"));
  if (raw) return { data: null, version, response };
  const data = response.status === 204 ? null : await response.json();
  return { data, version, response };
}

/** The JSON body of a GET (or other call) alone. */
export async function api(path, options = {}) {
  return (await request(path, options)).data;
}
