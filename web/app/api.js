// The gateway's JSON API, with the bearer token the user pasted on the
// login screen. The token lives in sessionStorage: it is gone when the tab
// closes, and no other site or tab can read it.

const TOKEN_KEY = 'levee.token';
const SCOPE_KEY = 'levee.scope';
const PAGE_LIMIT = 500; // the API's largest page

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code || ''} ${typeof detail === 'string' ? detail : ''}`.trim());
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value, scope) {
  sessionStorage.setItem(TOKEN_KEY, value);
  sessionStorage.setItem(SCOPE_KEY, scope);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SCOPE_KEY);
}

// The region prefix of the token (what GET /api/v1/stats answered at login).
export function scope() {
  return sessionStorage.getItem(SCOPE_KEY) || '';
}

// GET path?params as JSON; params with null or undefined values are left
// out. Throws ApiError with the API's {"error", "detail"}.
export async function get(path, params = {}, bearer = token()) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, String(v));
  }
  const res = await fetch(url, {
    headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
    cache: 'no-store',
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body && body.error, body && body.detail);
  return body;
}

// Every item of a paged list, following next_cursor, up to max items.
// Returns {items, complete}: complete is false when max cut the list short.
export async function all(path, params = {}, max = 10000) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(path, { ...params, limit: PAGE_LIMIT, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return { items: items.slice(0, max), complete: !cursor };
}
