// Instances across the fleet: search the connected clusters a page of clusters at a time,
// see who did not answer, and change the state of the selected instances in one go.

import { api } from '../api.js';
import { announce, h, replace } from '../dom.js';
import { errorNotice, errorState, notice, pageHeader } from '../components.js';
import { count } from '../format.js';
import { canChangeState } from '../roles.js';
import { tunnelCommand } from '../tunnel.js';
import {
  ACTIONS, addressList, askStateChange, bulkStateResult, cpuTime, memoryText, statusBadge,
} from '../instance-actions.js';

const STATUSES = ['', 'Running', 'Stopped', 'Frozen', 'Error'];
const TYPES = [['', 'Any type'], ['container', 'Containers'], ['virtual-machine', 'Virtual machines']];
const CLUSTERS_PER_PAGE = 50;
const FILTERS = ['name', 'status', 'type', 'project'];

function keyOf(item) {
  return `${item.cluster}/${item.project}/${item.name}`;
}

function readState(query) {
  return Object.fromEntries(FILTERS.map((key) => [key, query.get(key) || '']));
}

export function mount(root, ctx) {
  ctx.setTitle('Instances');
  const mayChange = canChangeState(ctx.configuration);
  let state = readState(ctx.query);
  let after = ctx.query.get('after') || '';
  const earlier = []; // the cursors of the pages before this one
  let sequence = 0;
  let shownPage = null;
  let searchTimer = 0;
  const selected = new Map();

  const nameInput = h('input', { type: 'search', id: 'instance-search', class: 'input', value: state.name, maxlength: 63, placeholder: 'Search by name', autocomplete: 'off', spellcheck: 'false' });
  const statusSelect = h('select', { id: 'instance-status', class: 'select' },
    STATUSES.map((status) => h('option', { value: status, selected: status === state.status }, status || 'Any status')));
  const typeSelect = h('select', { id: 'instance-type', class: 'select' },
    TYPES.map(([value, label]) => h('option', { value, selected: value === state.type }, label)));
  const projectInput = h('input', { type: 'text', id: 'instance-project', class: 'input input-project', value: state.project, maxlength: 63, placeholder: 'All projects', autocomplete: 'off', spellcheck: 'false' });
  const summary = h('p', { id: 'instances-summary', class: 'table-summary', 'aria-live': 'polite' }, 'Asking the clusters…');
  const unansweredArea = h('div', { id: 'unanswered' });
  const problem = h('div', { class: 'page-problem' });
  const resultArea = h('div', { class: 'result-area' });
  const body = h('tbody', {});
  const selectPage = h('input', { type: 'checkbox', id: 'select-page', class: 'row-select' });
  const selectedLabel = h('span', { class: 'selection-count', id: 'selection-count', 'aria-live': 'polite' });
  const actionButtons = Object.entries(ACTIONS).map(([action, words]) => h('button', {
    type: 'button', class: 'button button-base button-small', dataset: { action },
    on: { click: () => bulkChange(action) },
  }, `${words.label}…`));
  const clearSelection = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => { selected.clear(); renderSelection(); } } }, 'Clear selection');
  const selectionBar = mayChange ? h('div', { class: 'selection-bar', role: 'group', 'aria-label': 'Selected instances' },
    h('label', { class: 'select-page', for: 'select-page' }, selectPage, 'Select page'),
    selectedLabel,
    h('div', { class: 'selection-actions' }, actionButtons, clearSelection)) : null;
  const table = h('table', { class: 'table instances-table', id: 'fleet-instances', 'aria-describedby': 'instances-summary' },
    h('caption', { class: 'visually-hidden' }, 'Instances of the connected clusters'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'),
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'Cluster'),
      h('th', { scope: 'col', class: 'mid-hide' }, 'Type'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'Member'),
      h('th', { scope: 'col', class: 'numeric mid-hide' }, 'CPU time'),
      h('th', { scope: 'col', class: 'numeric narrow-hide' }, 'Memory'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'IP addresses'))),
    body);
  const emptyArea = h('div', {});
  const previous = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => goPrevious() } }, 'Previous clusters');
  const next = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => goNext() } }, 'Next clusters');

  root.appendChild(h('div', { class: 'page' },
    pageHeader({
      title: 'Instances',
      lead: 'Instances of every cluster whose reverse tunnel is connected, asked a page of clusters at a time.',
      actions: [ctx.refreshControl()],
    }),
    h('form', { class: 'toolbar instances-toolbar', role: 'search', 'aria-label': 'Filter instances', novalidate: true, on: { submit: (event) => { event.preventDefault(); apply(); } } },
      h('div', { class: 'toolbar-search' },
        h('label', { for: 'instance-search', class: 'visually-hidden' }, 'Search instances by name'), nameInput),
      h('div', { class: 'toolbar-filter' }, h('label', { for: 'instance-status', class: 'toolbar-label' }, 'Status'), statusSelect),
      h('div', { class: 'toolbar-filter' }, h('label', { for: 'instance-type', class: 'toolbar-label' }, 'Type'), typeSelect),
      h('div', { class: 'toolbar-filter' }, h('label', { for: 'instance-project', class: 'toolbar-label' }, 'Project'), projectInput)),
    problem,
    unansweredArea,
    resultArea,
    h('div', { class: 'table-card' },
      selectionBar,
      h('div', { class: 'table-scroll' }, table),
      emptyArea,
      h('div', { class: 'table-footer' }, summary, h('div', { class: 'pager' }, previous, next)))));

  function apply() {
    const wanted = { name: nameInput.value.trim(), status: statusSelect.value, type: typeSelect.value, project: projectInput.value.trim() };
    if (FILTERS.every((key) => wanted[key] === state[key])) return;
    state = wanted;
    after = '';
    earlier.length = 0;
    refresh().then(ctx.markUpdated).catch(() => {});
  }
  nameInput.addEventListener('input', () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(apply, 300);
  });
  statusSelect.addEventListener('change', apply);
  typeSelect.addEventListener('change', apply);
  projectInput.addEventListener('change', apply);

  function goNext() {
    if (!shownPage || !shownPage.next_after) return;
    earlier.push(after);
    after = shownPage.next_after;
    refresh().then(ctx.markUpdated).catch(() => {});
  }

  function goPrevious() {
    if (!earlier.length) return;
    after = earlier.pop();
    refresh().then(ctx.markUpdated).catch(() => {});
  }

  function renderSelection() {
    if (!mayChange || !shownPage) return;
    const onPage = shownPage.instances.filter((item) => selected.has(keyOf(item))).length;
    selectPage.checked = shownPage.instances.length > 0 && onPage === shownPage.instances.length;
    selectPage.indeterminate = onPage > 0 && onPage < shownPage.instances.length;
    selectPage.disabled = shownPage.instances.length === 0;
    selectPage.setAttribute('aria-label', `Select the ${shownPage.instances.length} instances shown`);
    selectedLabel.textContent = selected.size ? `${count(selected.size)} selected` : 'None selected';
    for (const control of [...actionButtons, clearSelection]) control.disabled = selected.size === 0;
    selectionBar.classList.toggle('has-selection', selected.size > 0);
    for (const box of body.querySelectorAll('input.row-select')) {
      box.checked = selected.has(box.dataset.key);
      box.closest('tr').classList.toggle('row-selected', box.checked);
    }
  }

  selectPage.addEventListener('change', () => {
    for (const item of shownPage ? shownPage.instances : []) {
      if (selectPage.checked) selected.set(keyOf(item), item);
      else selected.delete(keyOf(item));
    }
    renderSelection();
  });

  async function bulkChange(action) {
    const items = [...selected.values()];
    if (!items.length) return;
    const names = items.map((item) => `${item.name} on ${item.cluster}`);
    const result = await askStateChange({
      action,
      what: items.length === 1 ? names[0] : `${count(items.length)} instances`,
      names,
      run: (options) => api.bulkState({
        action,
        instances: items.map((item) => ({ cluster: item.cluster, instance: item.name, project: item.project })),
        ...options,
      }),
    });
    if (!result) return;
    replace(resultArea, bulkStateResult(result, action));
    announce(`${ACTIONS[action].past} ${result.succeeded}, ${result.failed} failed`);
    for (const item of result.results) {
      if (item.result === 'success') selected.delete(`${item.cluster}/${item.project}/${item.instance}`);
    }
    await refresh().then(ctx.markUpdated).catch(() => {});
  }

  function row(item) {
    const key = keyOf(item);
    const clusterLink = h('a', { href: `/clusters/${encodeURIComponent(item.cluster)}/instances`, 'data-nav': true }, item.cluster);
    return h('tr', { class: selected.has(key) ? 'row-selected' : null, dataset: { cluster: item.cluster, instance: item.name } },
      h('td', { class: 'cell-name' }, h('div', { class: 'cell-name-inner' },
        mayChange ? h('input', {
          type: 'checkbox', class: 'row-select', checked: selected.has(key), 'aria-label': `Select ${item.name} on ${item.cluster}`,
          dataset: { key, focusKey: `select-${key}` },
          on: { change: (event) => { if (event.currentTarget.checked) selected.set(key, item); else selected.delete(key); renderSelection(); } },
        }) : null,
        h('div', { class: 'cell-name-text' }, item.name,
          h('div', { class: 'cell-sub muted' }, h('span', { class: 'narrow-only' }, 'on ', clusterLink, ' · '), `project ${item.project}`)))),
      h('td', {}, statusBadge(item.status)),
      h('td', { class: 'narrow-hide' }, h('a', { href: `/clusters/${encodeURIComponent(item.cluster)}/instances`, 'data-nav': true }, item.cluster)),
      h('td', { class: 'mid-hide' }, item.type === 'virtual-machine' ? 'VM' : 'Container'),
      h('td', { class: 'narrow-hide' }, item.location || '–'),
      h('td', { class: 'numeric mid-hide' }, cpuTime(item.cpu_seconds)),
      h('td', { class: 'numeric narrow-hide' }, memoryText(item.memory_bytes)),
      h('td', { class: 'narrow-hide' }, addressList(item.addresses)));
  }

  function renderUnanswered(page) {
    const parts = [];
    if (page.unanswered.length) {
      parts.push(notice({
        kind: 'warning',
        title: `${count(page.unanswered.length)} of ${count(page.clusters_asked.length)} cluster${page.clusters_asked.length === 1 ? '' : 's'} did not answer; their instances are missing below`,
        message: h('ul', { class: 'notice-list unanswered-list' }, page.unanswered.map((item) => h('li', { dataset: { cluster: item.cluster } },
          h('a', { href: `/clusters/${encodeURIComponent(item.cluster)}/instances`, 'data-nav': true }, item.cluster), `: ${item.error} (${item.status})`))),
      }));
    }
    if (page.truncated) {
      parts.push(notice({ kind: 'info', title: 'More instances matched than one page holds.', message: 'Narrow the search to see them all.' }));
    }
    replace(unansweredArea, parts);
  }

  function render(page) {
    shownPage = page;
    replace(body, page.instances.map(row));
    table.hidden = page.instances.length === 0;
    const asked = page.clusters_asked.length;
    const answered = asked - page.unanswered.length;
    summary.textContent = asked
      ? `${count(page.instances.length)} instance${page.instances.length === 1 ? '' : 's'} on ${count(answered)} of ${count(asked)} connected cluster${asked === 1 ? '' : 's'}${page.clusters_asked.length ? ` (${page.clusters_asked[0]} to ${page.clusters_asked[asked - 1]})` : ''}`
      : 'No connected clusters';
    previous.disabled = earlier.length === 0;
    next.disabled = !page.next_after;
    renderUnanswered(page);
    if (!asked) {
      replace(emptyArea, h('div', { class: 'empty-state' },
        h('p', {}, after ? 'No more connected clusters.' : 'No cluster has a connected tunnel, so there are no instances to show. On one member of each cluster, run:'),
        after ? null : tunnelCommand()));
    } else if (!page.instances.length) {
      replace(emptyArea, h('p', { class: 'empty-state' }, FILTERS.some((key) => state[key]) ? 'No instances match the search on these clusters.' : 'These clusters have no instances.'));
    } else {
      emptyArea.replaceChildren();
    }
    renderSelection();
  }

  async function refresh() {
    const mine = ++sequence;
    const query = { clusters: String(CLUSTERS_PER_PAGE) };
    for (const key of FILTERS) if (state[key]) query[key] = state[key];
    if (after) query.after = after;
    ctx.setQuery(Object.fromEntries(Object.entries(query).filter(([key]) => key !== 'clusters')));
    let page;
    try {
      page = await api.fleetInstances(query);
    } catch (error) {
      if (mine !== sequence) return;
      const retry = () => refresh().then(ctx.markUpdated).catch(() => {});
      if (shownPage && error.status !== 400) replace(problem, errorNotice(error, retry));
      else {
        replace(problem, errorState(error, retry));
        summary.textContent = 'Not loaded';
      }
      throw error;
    }
    if (mine !== sequence) return;
    problem.replaceChildren();
    render(page);
  }

  return { refresh };
}
