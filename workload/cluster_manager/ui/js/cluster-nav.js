// What the pages of one cluster share: the tabs between them and the way into its LXD UI.

import { lxdUiPath } from './api.js';
import { h, icon } from './dom.js';
import { isAdmin } from './roles.js';

const TABS = [['', 'Overview'], ['/instances', 'Instances']];

/** Tabs "Overview · Instances" under the cluster's title (links, so each has its address). */
export function clusterTabs(name, active) {
  const base = `/clusters/${encodeURIComponent(name)}`;
  return h('nav', { class: 'tabs', 'aria-label': 'Cluster views' },
    h('ul', {}, TABS.map(([suffix, label]) => h('li', {},
      h('a', { class: 'tab', href: base + suffix, 'data-nav': true, 'aria-current': label === active ? 'page' : null }, label)))));
}

/**
 * "Open LXD UI" (administrators only): the cluster's own LXD UI through the manager, whose
 * session is the only credential. Disabled while the tunnel is not connected.
 */
export function lxdUiButton(configuration, cluster) {
  if (!isAdmin(configuration) || !cluster) return null;
  if (!cluster.tunnel_connected) {
    return h('button', {
      type: 'button', class: 'button button-base', disabled: true, id: 'open-lxd-ui',
      title: 'The cluster’s reverse tunnel is not connected',
    }, 'Open LXD UI');
  }
  return h('a', {
    class: 'button button-base', id: 'open-lxd-ui', href: lxdUiPath(cluster.name), target: '_blank', rel: 'noopener',
    title: `Open the LXD UI of ${cluster.name} through the Cluster Manager`,
  }, 'Open LXD UI', icon('external', '(opens in a new tab)'));
}
