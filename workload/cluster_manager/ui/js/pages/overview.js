// Overview: the fleet at a glance.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, count, load, percent } from '../format.js';
import { card, errorNotice, healthBadge, healthText, pageHeader, relativeTime, stat } from '../components.js';
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
  const cpuPart = cpu.total_count > 0
    ? meter({ label: 'CPU load (1 min) per CPU', ratio: cpu.load_1_per_cpu, detail: `load ${load(cpu.load_1)} on ${count(cpu.total_count)} CPUs` })
    : h('div', { class: 'meter-block' },
      h('div', { class: 'meter-head' }, h('span', { class: 'meter-label' }, 'CPU load average'), h('span', { class: 'meter-value muted small' }, cpu.load_1_per_member == null ? 'no cluster reporting' : `${load(cpu.load_1_per_member)} per member (${count(cpu.members)} members)`)),
      loadFigures({ load1: cpu.load_1, load5: cpu.load_5, load15: cpu.load_15 }));
  return card({
    title: 'Utilisation',
    id: 'chart-utilisation',
    children: h('div', { class: 'meters' },
      meter({ label: 'Memory', ratio: memory.usage_ratio, detail: `${bytes(memory.usage)} of ${bytes(memory.total)} in use` }),
      meter({ label: 'Storage', ratio: storage.usage_ratio, detail: `${bytes(storage.usage)} of ${bytes(storage.total)} in use` }),
      cpuPart),
  });
}

function warningsCard(warnings) {
  const items = warnings.clusters.map((cluster) => h('li', { class: 'attention-item' },
    h('div', { class: 'attention-head' },
      healthBadge(cluster.health),
      h('a', { href: `/clusters/${encodeURIComponent(cluster.name)}`, 'data-nav': true, class: 'attention-name', dataset: { focusKey: `warn-${cluster.name}` } }, cluster.name),
      h('span', { class: 'attention-age muted' }, 'Last heartbeat ', relativeTime(cluster.heartbeat_age_seconds, cluster.last_status_update_at))),
    h('ul', { class: 'attention-messages' }, cluster.warnings.map((warning) => h('li', {}, warning.message)))));
  const body = items.length
    ? [h('ul', { class: 'attention-list' }, items),
      warnings.truncated ? h('p', { class: 'muted' }, `Showing ${items.length} of ${count(warnings.total)}. `, h('a', { href: '/clusters?health=stale,warning', 'data-nav': true }, 'See them all')) : null]
    : h('p', { class: 'empty-state' }, 'No warnings: every cluster reports on time and is below its thresholds.');
  return card({
    title: 'Current warnings',
    id: 'warnings',
    className: 'card-wide',
    headerExtra: warnings.total ? h('span', { class: 'badge badge-warning' }, `${count(warnings.total)} cluster${warnings.total === 1 ? '' : 's'}`) : null,
    children: body,
  });
}

function render(overview) {
  const { clusters, instances, members, warnings } = overview;
  return [
    h('div', { class: 'stats', role: 'list', 'aria-label': 'Fleet totals' },
      h('div', { role: 'listitem' }, stat({ label: 'Clusters', value: count(clusters.total), detail: `${count(clusters.reporting)} reporting` })),
      h('div', { role: 'listitem' }, stat({ label: 'Instances', value: count(instances.total), detail: 'across the fleet' })),
      h('div', { role: 'listitem' }, stat({ label: 'Cluster members', value: count(members.total), detail: 'machines' })),
      h('div', { role: 'listitem' }, stat({
        label: 'Needing attention',
        value: count(warnings.total),
        detail: warnings.total ? `${percent(clusters.total ? warnings.total / clusters.total : 0)} of clusters` : 'all clear',
        tone: warnings.total ? 'warning' : 'ok',
      }))),
    h('div', { class: 'grid grid-3' },
      healthCard(clusters),
      distributionCard('Instances by status', 'chart-instances', instances, 'instances'),
      distributionCard('Members by status', 'chart-members', members, 'members')),
    h('div', { class: 'grid grid-2-1' },
      warningsCard(warnings),
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
  async function refresh() {
    try {
      const overview = await api.overview();
      problem.replaceChildren();
      replace(content, render(overview));
      content.removeAttribute('aria-busy');
    } catch (error) {
      replace(problem, errorNotice(error, () => refresh().then(ctx.markUpdated).catch(() => {})));
      throw error;
    }
  }
  return { refresh };
}
