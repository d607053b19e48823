// One cluster: its heartbeat in charts, its storage, links out, settings and removal.

import { api } from '../api.js';
import { announce, h, icon, replace } from '../dom.js';
import { bytes, count, load, percent } from '../format.js';
import {
  bigCount, button, card, clearFieldErrors, confirmDialog, errorNotice, errorState, field, healthBadge, notice,
  pageHeader, relativeTime, showFieldError, stat, timeText,
} from '../components.js';
import { donut, loadBars, loadFigures, meter } from '../charts.js';
import { clusterTabs, lxdUiButton } from '../cluster-nav.js';
import { isAdmin } from '../roles.js';
import { tunnelCommand } from '../tunnel.js';

const EDITABLE = ['description', 'memory_threshold', 'disk_threshold'];

/** Only http and https links leave the UI; anything else a cluster reports is not linked. */
export function safeUrl(value) {
  try {
    const url = new URL(String(value || ''));
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

export function grafanaLink(configuration, name) {
  const base = safeUrl(configuration.grafana_url);
  if (!base) return null;
  if (!configuration.grafana_dashboard_uid) return base;
  const url = new URL(`d/${encodeURIComponent(configuration.grafana_dashboard_uid)}`, base.endsWith('/') ? base : `${base}/`);
  url.searchParams.set('var-cluster', name);
  return url.href;
}

function externalLink(href, label, description) {
  return h('a', { class: 'button button-base', href, target: '_blank', rel: 'noopener noreferrer', title: description },
    label, icon('external', '(opens in a new tab)'));
}

function storageTable(pools, threshold, perMember) {
  return h('table', { class: 'table table-compact' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Pool'),
      perMember ? h('th', { scope: 'col' }, 'Member') : null,
      h('th', { scope: 'col' }, 'Usage'),
      h('th', { scope: 'col', class: 'numeric' }, 'Used'),
      h('th', { scope: 'col', class: 'numeric narrow-hide' }, 'Size'))),
    h('tbody', {}, pools.map((pool) => h('tr', {},
      h('td', {}, pool.name),
      perMember ? h('td', {}, pool.member) : null,
      h('td', { class: 'cell-meter' }, meter({
        label: `Storage pool ${pool.name}${pool.member ? ` on ${pool.member}` : ''}`,
        ratio: pool.total ? pool.usage / pool.total : null,
        threshold,
        detail: `${bytes(pool.usage)} of ${bytes(pool.total)}`,
        compact: true,
      })),
      h('td', { class: 'numeric' }, bytes(pool.usage)),
      h('td', { class: 'numeric narrow-hide' }, bytes(pool.total))))));
}

function storageCard(cluster) {
  const pools = cluster.storage_pool_usages || [];
  const shared = pools.filter((pool) => !pool.member);
  const local = pools.filter((pool) => pool.member).sort((a, b) => a.member.localeCompare(b.member) || a.name.localeCompare(b.name));
  const parts = [];
  if (shared.length) parts.push(h('h3', { class: 'subheading' }, 'Shared pools'), storageTable(shared, cluster.disk_threshold, false));
  if (local.length) parts.push(h('h3', { class: 'subheading' }, 'Pools per member'), storageTable(local, cluster.disk_threshold, true));
  if (!parts.length) parts.push(h('p', { class: 'empty-state' }, 'No storage pools reported yet.'));
  return card({
    title: 'Storage pools',
    id: 'storage',
    className: 'card-wide',
    headerExtra: h('span', { class: 'muted small' }, `Warning above ${cluster.disk_threshold}%`),
    children: parts,
  });
}

function cephCard(cluster) {
  const statuses = cluster.ceph_statuses || [];
  return card({
    title: 'Ceph',
    id: 'chart-ceph',
    children: statuses.length
      ? donut({ title: 'Ceph daemons by status', parts: statuses.map((s) => ({ label: s.status, value: s.count })), centreLabel: 'Ceph' })
      : h('p', { class: 'empty-state' }, 'No Ceph status reported: MicroCeph is not deployed on this cluster.'),
  });
}

function resourcesCard(cluster) {
  const cpus = Number(cluster.cpu_total_count) || 0;
  return card({
    title: 'Memory and CPU',
    id: 'resources',
    children: h('div', { class: 'meters' },
      meter({
        label: 'Memory',
        ratio: cluster.memory_usage_ratio,
        threshold: cluster.memory_threshold,
        detail: `${bytes(cluster.memory_usage)} of ${bytes(cluster.memory_total_amount)} in use · warning above ${cluster.memory_threshold}%`,
      }),
      h('div', { class: 'meter-block' },
        h('div', { class: 'meter-head' },
          h('span', { class: 'meter-label' }, 'CPU load average'),
          h('span', { class: 'meter-value muted small' }, cpus ? `${count(cpus)} CPUs` : `summed over ${count(cluster.member_count)} member${cluster.member_count === 1 ? '' : 's'}`)),
        cpus ? loadBars({ load1: cluster.cpu_load_1, load5: cluster.cpu_load_5, load15: cluster.cpu_load_15, cpus })
          : loadFigures({ load1: cluster.cpu_load_1, load5: cluster.cpu_load_5, load15: cluster.cpu_load_15 }))),
  });
}

/** A hex fingerprint in groups of eight, so that it wraps between groups on a phone. */
function fingerprintGroups(fingerprint) {
  const text = String(fingerprint || '');
  const groups = text.match(/.{1,8}/g) || [];
  return groups.flatMap((group, index) => (index ? [h('wbr', {}), group] : [group]));
}

function details(cluster) {
  const rows = [
    ['Status', cluster.status === 'ACTIVE' ? 'Active' : cluster.status],
    ['Joined', timeText(cluster.joined_at)],
    ['Last heartbeat', cluster.last_status_update_at ? relativeTime(cluster.heartbeat_age_seconds, cluster.last_status_update_at) : 'None yet'],
    ['Certificate fingerprint', h('code', { class: 'fingerprint', title: 'SHA-256 of the cluster certificate' }, fingerprintGroups(cluster.fingerprint))],
    ['Reverse tunnel', cluster.tunnel_connected
      ? h('span', { dataset: { tunnel: 'connected' } }, 'Tunnel connected', cluster.tunnel_connected_at ? h('span', { class: 'muted' }, ' since ', timeText(cluster.tunnel_connected_at)) : null)
      : h('span', { dataset: { tunnel: 'not-connected' } }, 'Tunnel not connected', h('div', { class: 'muted small' }, 'On a member of the cluster, run:'), tunnelCommand('details-tunnel-command'))],
  ];
  return card({
    title: 'Details',
    id: 'details',
    children: h('dl', { class: 'details' }, rows.map(([term, value]) => h('div', { class: 'details-row' }, h('dt', {}, term), h('dd', {}, value)))),
  });
}

function renderData(cluster) {
  const reported = Boolean(cluster.last_status_update_at);
  const instances = (cluster.instance_statuses || []).map((s) => ({ label: s.status, value: s.count }));
  const members = (cluster.member_statuses || []).map((s) => ({ label: s.status, value: s.count }));
  return [
    cluster.warnings.length ? notice({
      kind: cluster.health === 'stale' || cluster.health === 'error' ? 'error-soft' : 'warning',
      title: cluster.warnings.length === 1 ? 'Warning' : `${cluster.warnings.length} warnings`,
      message: h('ul', { class: 'notice-list' }, cluster.warnings.map((w) => h('li', {}, w.message))),
    }) : null,
    h('div', { class: 'stats', role: 'list', 'aria-label': 'Cluster summary' },
      h('div', { role: 'listitem' }, stat({ label: 'Health', value: healthBadge(cluster.health), detail: cluster.warnings.length ? `${cluster.warnings.length} warning${cluster.warnings.length === 1 ? '' : 's'}` : 'no warnings' })),
      h('div', { role: 'listitem' }, stat({
        label: 'Last heartbeat',
        value: relativeTime(reported ? cluster.heartbeat_age_seconds : null, cluster.last_status_update_at),
        detail: reported ? 'heartbeats every minute' : ['joined ', timeText(cluster.joined_at)],
        tone: cluster.health === 'stale' ? 'negative' : null,
      })),
      h('div', { role: 'listitem' }, stat({ label: 'Instances', value: bigCount(cluster.instance_count), detail: `on ${count(cluster.member_count)} member${cluster.member_count === 1 ? '' : 's'}` })),
      h('div', { role: 'listitem' }, stat({ label: 'CPU load (1 min)', value: reported ? load(cluster.cpu_load_1) : '–', detail: reported ? `5 min ${load(cluster.cpu_load_5)} · 15 min ${load(cluster.cpu_load_15)}` : 'not reported' })),
      h('div', { role: 'listitem' }, stat({ label: 'Memory', value: percent(cluster.memory_usage_ratio), detail: reported ? `${bytes(cluster.memory_usage)} of ${bytes(cluster.memory_total_amount)}` : 'not reported' }))),
    h('div', { class: 'grid grid-3' },
      card({ title: 'Instances by status', id: 'chart-instances', children: donut({ title: 'Instances by status', parts: instances, centreLabel: 'instances', emptyText: reported ? 'No instances' : 'Nothing reported yet' }) }),
      card({ title: 'Members by status', id: 'chart-members', children: donut({ title: 'Members by status', parts: members, centreLabel: 'members' }) }),
      cephCard(cluster)),
    h('div', { class: 'grid grid-2-1' }, storageCard(cluster), resourcesCard(cluster)),
  ];
}

export function mount(root, ctx) {
  const [name] = ctx.params;
  ctx.setTitle(name);
  let cluster = null;
  let dirty = false;

  const lead = h('p', { class: 'page-lead' });
  const actions = h('div', { class: 'page-actions' }, ctx.refreshControl());
  const problem = h('div', { class: 'page-problem' });
  const content = h('div', { class: 'page-content', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading the cluster…'));
  const settingsArea = h('div', {});
  const header = pageHeader({ title: name, crumbs: [{ label: 'Clusters', href: '/clusters' }, { label: name }] });
  header.querySelector('.page-header-text').appendChild(lead);
  header.querySelector('.page-header-row').appendChild(actions);
  root.appendChild(h('div', { class: 'page' }, header, clusterTabs(name, 'Overview'), problem, content, settingsArea));

  function renderActions() {
    const links = [];
    const ui = safeUrl(cluster.ui_url);
    if (ui) links.push(externalLink(ui, 'LXD UI', `Open the LXD UI of ${name}`));
    const grafana = grafanaLink(ctx.configuration, name);
    if (grafana) links.push(externalLink(grafana, 'Grafana', `Open the Grafana dashboard of ${name}`));
    replace(actions, ctx.refreshControl(), links, lxdUiButton(ctx.configuration, cluster));
    ctx.markUpdated();
  }

  const form = h('form', { class: 'form', novalidate: true, 'aria-labelledby': 'settings-title' });
  const description = h('textarea', { class: 'input', rows: 2, maxlength: 1024 });
  const memory = h('input', { class: 'input input-number', type: 'number', min: 0, max: 100, step: 1, inputmode: 'numeric', required: true });
  const disk = h('input', { class: 'input input-number', type: 'number', min: 0, max: 100, step: 1, inputmode: 'numeric', required: true });
  const formStatus = h('p', { class: 'form-status', role: 'status' });
  const save = button('Save changes', { kind: 'positive', type: 'submit' });
  const memorySource = h('p', { class: 'field-hint threshold-source', id: 'memory-threshold-source' });
  const diskSource = h('p', { class: 'field-hint threshold-source', id: 'disk-threshold-source' });
  form.append(
    field({ id: 'cluster-description', label: 'Description', input: description }),
    h('div', { class: 'field-row' },
      h('div', { class: 'threshold-field' },
        field({ id: 'cluster-memory-threshold', label: 'Memory warning threshold (%)', input: memory, hint: 'Warn when memory usage is above this share.' }),
        memorySource),
      h('div', { class: 'threshold-field' },
        field({ id: 'cluster-disk-threshold', label: 'Storage warning threshold (%)', input: disk, hint: 'Warn when any storage pool is fuller than this.' }),
        diskSource)),
    h('div', { class: 'form-actions' }, save, formStatus));

  /** "80 % — cluster override [Reset to default]" or "default 80 %" (the fleet's, from Settings). */
  function renderSource(node, key) {
    const own = cluster[`${key}_source`] === 'cluster';
    replace(node, own
      ? [h('strong', {}, `${cluster[key]} % — cluster override`), ' ', button('Reset to default', {
        kind: 'base',
        attrs: { class: 'button button-base button-small', dataset: { reset: key } },
        onClick: () => saveChanges({ [key]: null }),
      })]
      : ['default ', `${cluster[key]} %`, ' (', h('a', { href: '/settings', 'data-nav': true }, 'fleet settings'), ')']);
  }
  form.addEventListener('input', () => { dirty = true; formStatus.textContent = ''; });

  function fillForm() {
    description.value = cluster.description || '';
    memory.value = String(cluster.memory_threshold);
    disk.value = String(cluster.disk_threshold);
    renderSource(memorySource, 'memory_threshold');
    renderSource(diskSource, 'disk_threshold');
    dirty = false;
  }

  function numberValue(input) {
    const text = input.value.trim();
    return /^\d{1,3}$/.test(text) ? Number(text) : text;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    formStatus.textContent = '';
    const changes = {};
    if (description.value !== (cluster.description || '')) changes.description = description.value;
    if (memory.value.trim() !== String(cluster.memory_threshold)) changes.memory_threshold = numberValue(memory);
    if (disk.value.trim() !== String(cluster.disk_threshold)) changes.disk_threshold = numberValue(disk);
    if (!Object.keys(changes).length) {
      formStatus.textContent = 'Nothing to save.';
      return;
    }
    await saveChanges(changes);
  });

  async function saveChanges(changes) {
    clearFieldErrors(form);
    formStatus.textContent = '';
    save.disabled = true;
    try {
      cluster = await api.updateCluster(name, changes);
      fillForm();
      showCluster();
      formStatus.textContent = 'Saved.';
      announce('Cluster settings saved');
    } catch (error) {
      const ids = { description: 'cluster-description', memory_threshold: 'cluster-memory-threshold', disk_threshold: 'cluster-disk-threshold' };
      const bad = error.field ? error.field(EDITABLE) : null;
      if (!(bad && showFieldError(form, ids[bad], error.message))) {
        formStatus.replaceChildren(errorNotice(error));
      }
    } finally {
      save.disabled = false;
    }
  }

  async function remove() {
    const removed = await confirmDialog({
      title: `Remove ${name}?`,
      message: 'The cluster is removed from the Cluster Manager and its heartbeats are refused from now on. To manage it here again, it has to be enrolled with a new join token.',
      confirmLabel: 'Remove cluster',
      action: () => api.removeCluster(name),
    });
    if (removed) {
      announce(`Cluster ${name} removed`);
      ctx.go('/clusters');
    }
  }

  function renderSettings() {
    if (!isAdmin(ctx.configuration)) {
      // Changing a cluster's settings and removing it are for administrators only.
      replace(settingsArea, h('div', { class: 'grid grid-2-1 grid-top' }, details(cluster)));
      return;
    }
    replace(settingsArea, h('div', { class: 'grid grid-2-1 grid-top' },
      card({ title: 'Settings', id: 'settings', className: 'card-wide', children: form }),
      h('div', { class: 'stack' },
        details(cluster),
        card({
          title: 'Remove cluster',
          id: 'danger',
          className: 'card-danger',
          children: [
            h('p', {}, 'Stop managing this cluster. Its certificate is refused from then on.'),
            button('Remove cluster…', { kind: 'negative', onClick: remove }),
          ],
        }))));
  }

  function showCluster() {
    lead.textContent = cluster.description || 'No description';
    lead.classList.toggle('muted', !cluster.description);
    replace(content, renderData(cluster));
    content.removeAttribute('aria-busy');
    renderActions();
  }

  async function refresh() {
    try {
      cluster = await api.cluster(name);
    } catch (error) {
      if (error.status === 404) {
        replace(problem, notice({ kind: 'info', title: 'This cluster is not enrolled.', message: h('span', {}, error.message, '. ', h('a', { href: '/clusters', 'data-nav': true }, 'Back to the clusters')) }));
        content.replaceChildren();
        settingsArea.replaceChildren();
        content.removeAttribute('aria-busy');
        return;
      }
      const retry = () => refresh().then(ctx.markUpdated).catch(() => {});
      if (cluster) {
        replace(problem, errorNotice(error, retry));
      } else {
        replace(content, errorState(error, retry));
        content.removeAttribute('aria-busy');
      }
      throw error;
    }
    problem.replaceChildren();
    const first = !settingsArea.firstChild;
    if (first || !dirty) fillForm();
    showCluster();
    if (first) renderSettings();
    else {
      const detailsCard = settingsArea.querySelector('#details');
      if (detailsCard) detailsCard.replaceWith(details(cluster));
    }
  }

  return { refresh };
}
