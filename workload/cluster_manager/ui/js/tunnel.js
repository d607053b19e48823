// The reverse tunnel a cluster opens to the manager: what to tell the operator when it is not there.

import { h } from './dom.js';
import { copyButton, notice } from './components.js';

export const TUNNEL_COMMAND = 'microcloud cluster-manager set reverse_tunnel true';

/** The command enabling the tunnel, in a code block with a copy button. */
export function tunnelCommand(id = 'tunnel-command') {
  return h('div', { class: 'copy-row tunnel-command' },
    h('pre', { class: 'code', 'aria-label': 'Command enabling the reverse tunnel' }, h('code', { id }, TUNNEL_COMMAND)),
    copyButton(() => TUNNEL_COMMAND, 'Copy the command enabling the reverse tunnel'));
}

/**
 * "Tunnel not connected": the Cluster Manager reaches a cluster's LXD only through the tunnel the
 * cluster opens; the exact command that opens it, copyable.
 */
export function tunnelNotice({ cluster = '', detail = '' } = {}) {
  const who = cluster ? `${cluster}’s` : 'a cluster’s';
  return h('div', { class: 'tunnel-notice', dataset: { tunnel: 'not-connected' } }, notice({
    kind: 'warning',
    title: 'Tunnel not connected',
    message: h('span', {},
      `The Cluster Manager reaches ${who} LXD through a reverse tunnel the cluster opens. On one member of the cluster, run:`,
      tunnelCommand(),
      detail ? h('span', { class: 'muted small tunnel-detail' }, detail) : null),
  }));
}

/** Whether an API error means the cluster's tunnel is not connected (503 naming the command). */
export function isTunnelDown(error) {
  return Boolean(error && error.status === 503 && /reverse_tunnel/.test(error.message || ''));
}
