// One cluster's LXD over its tunnel: instances with state changes, members with evacuate and
// restore, and LXD's warnings.

import { api } from '../api.js';
import { announce, h, replace } from '../dom.js';
import { actionMenu, card, confirmDialog, countBadge, errorNotice, errorState, notice, pageHeader, timeText } from '../components.js';
import { count } from '../format.js';
import { canChangeState, isAdmin } from '../roles.js';
import { clusterTabs, lxdUiButton } from '../cluster-nav.js';
import { isTunnelDown, tunnelNotice } from '../tunnel.js';
import {
  ACTIONS, actionsFor, addressList, askStateChange, changeResult, cpuTime, memoryText, statusBadge,
} from '../instance-actions.js';

const MEMBER_BADGES = { Online: 'healthy', Evacuated: 'warning', Offline: 'error' };
const SEVERITY_BADGES = { high: 'error', moderate: 'warning', low: 'neutral' };

function instancesTable(instances, menuFor) {
  return h('div', { class: 'table-scroll' }, h('table', { class: 'table instances-table', id: 'instances-table' },
    h('caption', { class: 'visually-hidden' }, 'Instances of the cluster'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'),
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'Type'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'Member'),
      h('th', { scope: 'col', class: 'numeric mid-hide' }, 'CPU time'),
      h('th', { scope: 'col', class: 'numeric narrow-hide' }, 'Memory'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'IP addresses'),
      menuFor ? h('th', { scope: 'col', class: 'cell-actions' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null)),
    h('tbody', {}, instances.map((instance) => h('tr', { dataset: { instance: instance.name, project: instance.project } },
      h('td', { class: 'cell-name' }, h('div', { class: 'cell-name-text' }, instance.name,
        h('div', { class: 'cell-sub muted' }, `project ${instance.project}`))),
      h('td', {}, statusBadge(instance.status)),
      h('td', { class: 'narrow-hide' }, instance.type === 'virtual-machine' ? 'VM' : 'Container'),
      h('td', { class: 'narrow-hide' }, instance.location || '–'),
      h('td', { class: 'numeric mid-hide' }, cpuTime(instance.cpu_seconds)),
      h('td', { class: 'numeric narrow-hide' }, memoryText(instance.memory_bytes)),
      h('td', { class: 'narrow-hide' }, addressList(instance.addresses)),
      menuFor ? h('td', { class: 'cell-actions' }, menuFor(instance)) : null)))));
}

export function mount(root, ctx) {
  const [name] = ctx.params;
  ctx.setTitle(`${name} · Instances`);
  const mayChange = canChangeState(ctx.configuration);
  const admin = isAdmin(ctx.configuration);
  let cluster = null;

  const actions = h('div', { class: 'page-actions' }, ctx.refreshControl());
  const header = pageHeader({ title: name, crumbs: [{ label: 'Clusters', href: '/clusters' }, { label: name }] });
  header.querySelector('.page-header-row').appendChild(actions);
  const problem = h('div', { class: 'page-problem' });
  const resultArea = h('div', { class: 'result-area', id: 'change-result', 'aria-live': 'polite' });
  const instancesBody = h('div', { 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Asking the cluster for its instances…'));
  const membersBody = h('div', {});
  const warningsBody = h('div', {});
  const instancesCount = h('span', { class: 'muted small' });
  const content = h('div', { class: 'page-content' },
    resultArea,
    card({ title: 'Instances', id: 'instances', className: 'card-wide', headerExtra: instancesCount, children: instancesBody }),
    h('div', { class: 'grid grid-2-1 grid-top' },
      card({ title: 'Members', id: 'members', children: membersBody }),
      card({ title: 'LXD warnings', id: 'lxd-warnings', children: warningsBody })));
  root.appendChild(h('div', { class: 'page' }, header, clusterTabs(name, 'Instances'), problem, content));

  function showResult(node) {
    replace(resultArea, node);
    announce(node.textContent || '');
  }

  async function changeInstance(instance, action) {
    const subject = `${instance.name}`;
    const result = await askStateChange({
      action,
      what: subject,
      names: [subject],
      run: (options) => api.instanceState(name, instance.name, { action, project: instance.project, ...options }),
    });
    if (!result) return;
    showResult(changeResult(result, subject));
    await refresh().catch(() => {});
  }

  function instanceMenu(instance) {
    return actionMenu(`Actions for ${instance.name}`, actionsFor(instance.status).map((action) => ({
      label: `${ACTIONS[action].label}…`,
      danger: ACTIONS[action].kind === 'negative',
      onSelect: () => changeInstance(instance, action),
    })), `menu-${instance.project}-${instance.name}`);
  }

  async function changeMember(member, action) {
    let result = null;
    const done = await confirmDialog({
      title: `${action === 'evacuate' ? 'Evacuate' : 'Restore'} ${member.name}?`,
      message: action === 'evacuate'
        ? 'LXD moves or stops the instances on this member so that it can be serviced. They stay away until it is restored.'
        : 'LXD brings the member back into use and returns the instances it moved away.',
      confirmLabel: action === 'evacuate' ? 'Evacuate member' : 'Restore member',
      confirmKind: action === 'evacuate' ? 'negative' : 'positive',
      action: async () => { result = await api.memberState(name, member.name, action); },
    });
    if (!done || !result) return;
    const words = { success: action === 'evacuate' ? 'Evacuated' : 'Restored' };
    showResult(result.result === 'success'
      ? notice({ kind: 'success', title: `${words.success} ${member.name}.` })
      : changeResult({ ...result, action }, member.name));
    await refresh().catch(() => {});
  }

  function membersTable(members) {
    if (!members.length) return h('p', { class: 'empty-state' }, 'LXD lists no members.');
    return h('div', { class: 'table-scroll' }, h('table', { class: 'table table-compact', id: 'members-table' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Member'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col', class: 'narrow-hide' }, 'Roles'),
        admin ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null)),
      h('tbody', {}, members.map((member) => h('tr', { dataset: { member: member.name } },
        h('td', { class: 'cell-name' }, member.name, member.message ? h('div', { class: 'cell-sub muted' }, member.message) : null),
        h('td', {}, countBadge(member.status, MEMBER_BADGES[member.status] || 'neutral')),
        h('td', { class: 'narrow-hide' }, member.roles.length ? member.roles.join(', ') : h('span', { class: 'muted' }, '–')),
        admin ? h('td', { class: 'cell-actions' }, member.status === 'Evacuated'
          ? h('button', { type: 'button', class: 'button button-base button-small', 'aria-label': `Restore ${member.name}`, on: { click: () => changeMember(member, 'restore') } }, 'Restore…')
          : h('button', { type: 'button', class: 'button button-base button-small', 'aria-label': `Evacuate ${member.name}`, on: { click: () => changeMember(member, 'evacuate') } }, 'Evacuate…')) : null)))));
  }

  function warningsList(warnings) {
    if (!warnings.length) return h('p', { class: 'empty-state' }, 'No warnings.');
    return h('ul', { class: 'warning-list', id: 'warnings-list' }, warnings.map((warning) => h('li', { class: 'warning-item' },
      h('div', { class: 'badges' }, countBadge(warning.severity, SEVERITY_BADGES[warning.severity] || 'neutral'),
        h('strong', {}, warning.type)),
      h('div', {}, warning.last_message),
      h('div', { class: 'muted small' },
        [warning.location, warning.project].filter(Boolean).join(' · '),
        warning.count > 1 ? ` · ${count(warning.count)} times` : '',
        warning.last_seen_at ? [' · last ', timeText(warning.last_seen_at)] : null))));
  }

  function section(body, settled, render, what) {
    body.removeAttribute('aria-busy');
    if (settled.status === 'fulfilled') replace(body, render(settled.value));
    else if (isTunnelDown(settled.reason)) replace(body, h('p', { class: 'empty-state' }, 'Shown once the tunnel is connected.'));
    else replace(body, errorNotice(settled.reason, () => refresh().then(ctx.markUpdated).catch(() => {})), h('p', { class: 'muted small' }, `Could not read the ${what}.`));
  }

  function tunnelDown() {
    replace(problem, tunnelNotice({ cluster: name }));
    instancesBody.removeAttribute('aria-busy');
    replace(instancesBody, h('p', { class: 'empty-state' }, 'The instances show once the cluster’s tunnel is connected.'));
    instancesCount.textContent = '';
    replace(membersBody, h('p', { class: 'empty-state' }, 'Shown once the tunnel is connected.'));
    replace(warningsBody, h('p', { class: 'empty-state' }, 'Shown once the tunnel is connected.'));
  }

  async function refresh() {
    try {
      cluster = await api.cluster(name);
    } catch (error) {
      instancesBody.removeAttribute('aria-busy');
      if (error.status === 404) {
        replace(problem, notice({ kind: 'info', title: 'This cluster is not enrolled.', message: h('span', {}, error.message, '. ', h('a', { href: '/clusters', 'data-nav': true }, 'Back to the clusters')) }));
        content.replaceChildren();
        return;
      }
      replace(instancesBody, errorState(error, () => refresh().then(ctx.markUpdated).catch(() => {})));
      throw error;
    }
    replace(actions, ctx.refreshControl(), lxdUiButton(ctx.configuration, cluster));
    if (!cluster.tunnel_connected) {
      tunnelDown();
      return;
    }
    const [instances, members, warnings] = await Promise.allSettled([api.instances(name), api.members(name), api.warnings(name)]);
    if (instances.status === 'rejected' && isTunnelDown(instances.reason)) {
      tunnelDown();
      return;
    }
    problem.replaceChildren();
    section(instancesBody, instances, (list) => {
      instancesCount.textContent = `${count(list.instances.length)} instance${list.instances.length === 1 ? '' : 's'}`;
      return list.instances.length ? instancesTable(list.instances, mayChange ? instanceMenu : null) : h('p', { class: 'empty-state' }, 'This cluster has no instances.');
    }, 'instances');
    section(membersBody, members, (list) => membersTable(list.members), 'members');
    section(warningsBody, warnings, (list) => warningsList(list.warnings), 'warnings');
    if (instances.status === 'rejected') throw instances.reason;
  }

  return { refresh };
}
