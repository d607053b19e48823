// What the signed-in person may do: the role the server gives (admin > operator > viewer).
// The server enforces it on every route; the UI only leaves out what would be refused.

const RANK = { viewer: 1, operator: 2, admin: 3 };

/** The role of the signed-in user ("admin", "operator", "viewer") or null. */
export function roleOf(configuration) {
  const user = configuration && configuration.user;
  if (!user) return null;
  if (user.role && RANK[user.role]) return user.role;
  return user.is_admin ? 'admin' : null;
}

/** Whether the signed-in user has at least the role ``needed``. */
export function allows(configuration, needed) {
  const role = roleOf(configuration);
  return Boolean(role) && RANK[role] >= RANK[needed];
}

/** Instance state changes: operators and administrators. */
export function canChangeState(configuration) {
  return allows(configuration, 'operator');
}

/** Removing clusters, join tokens, settings, members, the audit log, the LXD UI: administrators. */
export function isAdmin(configuration) {
  return allows(configuration, 'admin');
}

export const ROLE_WORDS = {
  admin: 'Administrator',
  operator: 'Operator',
  viewer: 'Viewer',
};
