// The Management API: LXD-style envelopes, the session cookie and the CSRF header.

const CSRF_HEADER = 'X-CSRF-Token';
const TIMEOUT_MS = 20000;
// A change waits for LXD's operation (and a bulk one for many); the server bounds both.
const CHANGE_TIMEOUT_MS = 180000;
let csrfToken = '';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }

  /** The field a 400 names at the start of its message ("memory_threshold must be …"). */
  field(fields) {
    if (this.status !== 400) return null;
    return fields.find((name) => this.message.startsWith(`${name} `) || this.message.startsWith(`${name}:`)) || null;
  }
}

export function setCsrfToken(token) {
  csrfToken = token || '';
}

async function request(method, path, body, { timeoutMs = TIMEOUT_MS } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers[CSRF_HEADER] = csrfToken;
  const controller = new AbortController();
  const timer = window.setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      signal: controller.signal,
    });
  } catch (error) {
    const timedOut = error && error.name === 'AbortError';
    throw new ApiError(0, timedOut
      ? 'The Cluster Manager took too long to answer. Try again in a moment.'
      : 'Cannot reach the Cluster Manager. Check your network connection and try again.');
  } finally {
    window.clearTimeout(timer);
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    envelope = null;
  }
  if (!response.ok || !envelope || envelope.type === 'error') {
    const message = (envelope && envelope.error) || `The Cluster Manager answered ${response.status} ${response.statusText}`.trim();
    const error = new ApiError(response.status, message);
    if (response.status === 401 && path !== '/1.0/configuration') {
      window.dispatchEvent(new CustomEvent('mcm:signed-out', { detail: message }));
    }
    throw error;
  }
  return envelope.metadata;
}

/**
 * Sign out: POST /oidc/logout with the CSRF header ends the session on every unit, then the
 * browser goes where the answer says (the identity provider's sign-out page, or /).
 */
export async function signOut() {
  const answer = await request('POST', '/oidc/logout');
  window.location.assign((answer && answer.redirect) || '/');
}

function clusterPath(name) {
  return `/1.0/remote-cluster/${encodeURIComponent(name)}`;
}

export const api = {
  configuration: () => request('GET', '/1.0/configuration'),
  overview: (query) => request('GET', query ? `/1.0/overview?${new URLSearchParams(query)}` : '/1.0/overview'),
  clusters: (query) => request('GET', `/1.0/remote-cluster?${new URLSearchParams(query)}`),
  cluster: (name) => request('GET', `/1.0/remote-cluster/${encodeURIComponent(name)}`),
  updateCluster: (name, changes) => request('PATCH', `/1.0/remote-cluster/${encodeURIComponent(name)}`, changes),
  removeCluster: (name) => request('DELETE', `/1.0/remote-cluster/${encodeURIComponent(name)}`),
  bulkRemove: (names) => request('POST', '/1.0/remote-cluster/bulk/remove', { names }),
  bulkThresholds: (names, thresholds) => request('POST', '/1.0/remote-cluster/bulk/thresholds', { names, ...thresholds }),
  settings: () => request('GET', '/1.0/settings'),
  updateSettings: (changes) => request('PATCH', '/1.0/settings', changes),
  tokens: () => request('GET', '/1.0/remote-cluster-join-token'),
  createToken: (token) => request('POST', '/1.0/remote-cluster-join-token', token),
  revokeToken: (name) => request('DELETE', `/1.0/remote-cluster-join-token/${encodeURIComponent(name)}`),
  instances: (cluster) => request('GET', `${clusterPath(cluster)}/instances`),
  instanceState: (cluster, instance, change) => request('PUT', `${clusterPath(cluster)}/instances/${encodeURIComponent(instance)}/state`, change, { timeoutMs: CHANGE_TIMEOUT_MS }),
  members: (cluster) => request('GET', `${clusterPath(cluster)}/members`),
  memberState: (cluster, member, action) => request('POST', `${clusterPath(cluster)}/members/${encodeURIComponent(member)}/state`, { action }, { timeoutMs: CHANGE_TIMEOUT_MS }),
  warnings: (cluster) => request('GET', `${clusterPath(cluster)}/warnings`),
  fleetInstances: (query) => request('GET', `/1.0/instances?${new URLSearchParams(query)}`, undefined, { timeoutMs: 60000 }),
  bulkState: (change) => request('POST', '/1.0/instances/bulk/state', change, { timeoutMs: CHANGE_TIMEOUT_MS }),
  audit: (query) => request('GET', `/1.0/audit?${new URLSearchParams(query)}`),
};

/** The manager's own route to a cluster's LXD UI (through the tunnel, the session the only credential). */
export function lxdUiPath(cluster) {
  return `/lxd-ui/${encodeURIComponent(cluster)}/`;
}
