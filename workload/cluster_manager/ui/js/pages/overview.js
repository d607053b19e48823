// Overview: the fleet at a glance.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, count, load, percent } from '../format.js';
import { bigCount, card, errorNotice, errorState, healthText, pageHeader, relativeTime, stat } from '../components.js';
import { colourFor, donut, loadFigures, meter } from '../charts.js';

const HEALTH_ORDER = ['healthy', 'warning', 'error', 'stale', 'pending'];

function healthCard(clusters) {
  const parts = HEALTH_ORDER.map((state) => ({
    label: state === 'pending' ? 'Pending' : healthText(state),
    value: clusters.by_health[state] || 0,
    colour: colourFor(state),
    href: `/clusters?health=${state}`,
    always: true,
  }));
  return card({
    title: 'Clusters by health',
    id: 'chart-health',
    children: donut({ title: 'Clusters by health', parts, centreLabel: 'clusters', emptyText: 'No clusters enrolled yet' }),
  });
}

function distributionCard(title, id, distribution, centreLabel) {
  const parts = (distribution.statuses || []).map((entry) => ({ label: entry.status, value: entry.count }));
  return card({ title, id, children: donut({ title, parts, centreLabel }) });
}

function utilisationCard(overview) {
  const { cpu, memory, storage } = overview;
  // Load per CPU only where every cluster in the figure reports its CPUs; else per member.
  const perMember = (value) => (cpu.members ? Number(value) / cpu.members : null);
  const cpuPart = cpu.load_1_per_cpu !== null && cpu.load_1_per_cpu !== undefined && cpu.total_count > 0
    ? meter({ label: 'CPU load (1 min)', ratio: cpu.load_1_per_cpu, detail: `load ${load(cpu.load_1)} on ${count(cpu.total_count)} CPUs` })
    : h('div', { class: 'meter-block', id: 'cpu-per-member' },
      h('div', { class: 'meter-head' }, h('span', { class: 'meter-label' }, 'CPU load per member'),
        h('span', { class: 'meter-value muted small' }, `${count(cpu.members)} member${cpu.members === 1 ? '' : 's'} of ${count(cpu.clusters)} reporting cluster${cpu.clusters === 1 ? '' : 's'}`)),
      loadFigures({ load1: perMember(cpu.load_1), load5: perMember(cpu.load_5), load15: perMember(cpu.load_15) }));
  return card({
    title: 'Utilisation',
    id: 'chart-utilisation',
    children: h('div', { class: 'meters' },
      meter({ label: 'Memory', ratio: memory.usage_ratio, detail: `${bytes(memory.usage)} of ${bytes(memory.total)} in use` }),
      meter({ label: 'Storage', ratio: storage.usage_ratio, detail: `${bytes(storage.usage)} of ${bytes(storage.total)} in use` }),
      cpuPart),
  });
}

// Why clusters need attention, most urgent first; each links to the clusters it lists.
const REASONS = [
  { kinds: ['stale'], title: 'Not reporting', href: '/clusters?health=stale', health: 'stale' },
  { kinds: ['members'], title: 'Members not online', href: '/clusters?health=error,warning&sort=health' },
  { kinds: ['ceph'], title: 'Ceph members not online', href: '/clusters?health=error&sort=health' },
  { kinds: ['instances'], title: 'Instances in Error', href: '/clusters?instance_status=Error' },
  { kinds: ['memory'], title: 'Memory above threshold', href: '/clusters?health=warning&sort=memory_usage_ratio&order=desc', worst: 'usage_percent' },
  { kinds: ['storage_pool', 'storage_pools'], title: 'Storage above threshold', href: '/clusters?health=warning&sort=storage_max_usage_ratio&order=desc', worst: 'usage_percent' },
];
const TOP_PER_REASON = 5;

function reasonOf(kind) {
  return REASONS.find((reason) => reason.kinds.includes(kind))
    || { kinds: [kind], title: String(kind).replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()), href: '/clusters?health=warning' };
}

/** The clusters of the overview's warning list, grouped by the reason of each warning. */
export function groupWarnings(clusters) {
  const groups = new Map();
  for (const cluster of clusters) {
    const seen = new Set();
    for (const warning of cluster.warnings) {
      const reason = reasonOf(warning.kind);
      let group = groups.get(reason.title);
      if (!group) {
        group = { reason, entries: [] };
        groups.set(reason.title, group);
      }
      if (seen.has(reason.title)) {
        group.entries[group.entries.length - 1].more += 1;
        continue;
      }
      seen.add(reason.title);
      group.entries.push({ cluster, warning, more: 0 });
    }
  }
  const order = (group) => {
    const known = REASONS.indexOf(group.reason);
    return known < 0 ? REASONS.length : known;
  };
  const list = [...groups.values()].sort((a, b) => order(a) - order(b) || a.reason.title.localeCompare(b.reason.title));
  for (const group of list) {
    const key = group.reason.worst;
    group.entries.sort((a, b) => (key ? (Number(b.warning[key]) || 0) - (Number(a.warning[key]) || 0) : 0)
      || (Number(b.cluster.heartbeat_age_seconds) || 0) - (Number(a.cluster.heartbeat_age_seconds) || 0)
      || a.cluster.name.localeCompare(b.cluster.name));
  }
  return list;
}

function reasonGroup(group, warnings, byHealth) {
  const { reason, entries } = group;
  // Stale clusters are counted exactly by the health counts; other reasons only within the
  // clusters the overview lists (all of them unless the list is cut short).
  const exact = reason.health ? byHealth[reason.health] : (warnings.truncated ? null : entries.length);
  const total = exact ?? entries.length;
  const shown = entries.slice(0, TOP_PER_REASON);
  const headingId = `reason-${reason.kinds[0]}`;
  return h('section', { class: 'reason', 'aria-labelledby': headingId, dataset: { reason: reason.kinds[0] } },
    h('div', { class: 'reason-head' },
      h('h3', { class: 'reason-title', id: headingId }, reason.title),
      h('span', { class: 'badge badge-warning-soft' }, exact === null
        ? `${count(total)} of the ${count(warnings.clusters.length)} listed`
        : `${count(total)} cluster${total === 1 ? '' : 's'}`)),
    h('ul', { class: 'attention-list' }, shown.map(({ cluster, warning, more: extra }) => h('li', { class: 'attention-item' },
      h('a', { href: `/clusters/${encodeURIComponent(cluster.name)}`, 'data-nav': true, class: 'attention-name', dataset: { focusKey: `warn-${reason.kinds[0]}-${cluster.name}` } }, cluster.name),
      h('span', { class: 'attention-message' }, warning.message, extra ? ` (and ${extra} more)` : ''),
      h('span', { class: 'attention-age muted' }, relativeTime(cluster.heartbeat_age_seconds, cluster.last_status_update_at))))),
    total > shown.length || exact === null
      ? h('p', { class: 'reason-more' }, h('a', { href: reason.href, 'data-nav': true }, exact === null
        ? `See the clusters with warnings (${count(byHealth.warning || 0)})`
        : `See all ${count(total)} ${reason.title.toLowerCase()}`))
      : null);
}

function warningsCard(warnings, byHealth) {
  const groups = groupWarnings(warnings.clusters);
  const body = groups.length
    ? [groups.map((group) => reasonGroup(group, warnings, byHealth)),
      h('p', { class: 'muted small' }, `${count(warnings.total)} cluster${warnings.total === 1 ? '' : 's'} need${warnings.total === 1 ? 's' : ''} attention. `,
        h('a', { href: '/clusters?health=stale,error,warning&sort=health', 'data-nav': true }, 'See them all'))]
    : h('p', { class: 'empty-state' }, 'No warnings: every cluster reports on time and is below its thresholds.');
  return card({
    title: 'Current warnings',
    id: 'warnings',
    className: 'card-wide',
    headerExtra: warnings.total ? h('span', { class: 'badge badge-warning' }, `${count(warnings.total)} cluster${warnings.total === 1 ? '' : 's'}`) : null,
    children: body,
  });
}

/** How old the figures are: every unit serves the same precomputed summary. */
function figuresAge(overview) {
  return h('p', { class: 'figures-age muted small', id: 'overview-age' },
    'Figures computed ', relativeTime(overview.age_seconds, overview.computed_at));
}

function render(overview) {
  const { clusters, instances, members, warnings } = overview;
  return [
    figuresAge(overview),
    h('div', { class: 'stats', role: 'list', 'aria-label': 'Fleet totals' },
      h('div', { role: 'listitem' }, stat({ label: 'Clusters', value: bigCount(clusters.total), detail: `${count(clusters.reporting)} reporting` })),
      h('div', { role: 'listitem' }, stat({ label: 'Instances', value: bigCount(instances.total), detail: 'across the fleet' })),
      h('div', { role: 'listitem' }, stat({ label: 'Cluster members', value: bigCount(members.total), detail: 'machines' })),
      h('div', { role: 'listitem' }, stat({
        label: 'Needing attention',
        value: bigCount(warnings.total),
        detail: warnings.total ? `${percent(clusters.total ? warnings.total / clusters.total : 0)} of clusters` : 'all clear',
        tone: warnings.total ? 'warning' : 'ok',
      }))),
    h('div', { class: 'grid grid-3' },
      healthCard(clusters),
      distributionCard('Instances by status', 'chart-instances', instances, 'instances'),
      distributionCard('Members by status', 'chart-members', members, 'members')),
    h('div', { class: 'grid grid-2-1' },
      warningsCard(warnings, clusters.by_health),
      utilisationCard(overview)),
  ];
}

export function mount(root, ctx) {
  ctx.setTitle('Overview');
  const content = h('div', { class: 'page-content', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading the fleet…'));
  const problem = h('div', { class: 'page-problem' });
  root.appendChild(h('div', { class: 'page' },
    pageHeader({ title: 'Overview', lead: 'Resource usage and health of every enrolled MicroCloud.', actions: [ctx.refreshControl()] }),
    problem,
    content));
  let shown = false;
  async function refresh() {
    try {
      const overview = await api.overview();
      problem.replaceChildren();
      replace(content, render(overview));
      shown = true;
      content.removeAttribute('aria-busy');
    } catch (error) {
      const retry = () => refresh().then(ctx.markUpdated).catch(() => {});
      if (shown) {
        replace(problem, errorNotice(error, retry));
      } else {
        replace(content, errorState(error, retry));
        content.removeAttribute('aria-busy');
      }
      throw error;
    }
  }
  return { refresh };
}
