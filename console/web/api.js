// The /v1/ API, with the token from the session and errors in plain words.

const TOKEN = 'tessera.token';
const ROLE = 'tessera.role';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get role() { return sessionStorage.getItem(ROLE); },
  get admin() { return sessionStorage.getItem(ROLE) === 'admin'; },
  set(token, role) { sessionStorage.setItem(TOKEN, token); sessionStorage.setItem(ROLE, role); },
  clear() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(ROLE); },
};

// ApiError carries the HTTP status, the server's message and a sentence a
// marketer understands.
export class ApiError extends Error {
  constructor(status, detail, message, body) {
    super(message);
    this.status = status;
    this.detail = detail;
    this.body = body || {};
  }
}

// plain turns a status into words; what names the thing asked for
// ("a customer with that email").
function plain(status, what) {
  switch (status) {
    case 0: return "We couldn't reach tessera. Check your connection and try again.";
    case 401: return 'Your sign-in is no longer valid. Please sign in again.';
    case 403: return "Your access doesn't allow this: it needs an administrator's token.";
    case 404: return what ? `We couldn't find ${what}.` : "We couldn't find that.";
    case 503: return 'tessera is still starting up. Try again in a moment.';
    case 400: return 'That request was not accepted.';
    default: return 'Something went wrong on the server. Try again; if it keeps happening, tell your administrator.';
  }
}

// call sends a request to path and returns the decoded JSON. opts.what
// names the thing for a 404 message; opts.token overrides the session's.
export async function call(method, path, body, opts = {}) {
  const headers = {Authorization: `Bearer ${opts.token || session.token || ''}`};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new ApiError(0, String(e), plain(0));
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = {error: text}; }
  }
  if (!resp.ok) {
    const detail = (data && data.error) || resp.statusText;
    const err = new ApiError(resp.status, detail, plain(resp.status, opts.what), data);
    if (resp.status === 401 && !opts.token) window.dispatchEvent(new CustomEvent('tessera:signedout'));
    throw err;
  }
  return data;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body, opts);
export const put = (path, body, opts) => call('PUT', path, body, opts);
