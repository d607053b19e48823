// Clusters: one page of the fleet at a time, searched, filtered and sorted by the API.

import { api } from '../api.js';
import { announce, h, replace } from '../dom.js';
import { bytes, count, load } from '../format.js';
import {
  actionMenu, bulkResult, confirmDialog, countBadge, errorNotice, errorState, healthBadge, healthText, pageHeader, relativeTime,
} from '../components.js';
import { meter } from '../charts.js';
import { isAdmin } from '../roles.js';

const HEALTH_STATES = ['healthy', 'error', 'warning', 'stale', 'pending'];
const HEALTH_ORDER = ['stale', 'error', 'warning', 'pending', 'healthy'];
// The segments of the health filter; "stale,error,warning" is every cluster needing attention.
const HEALTH_FILTERS = ['', 'stale,error,warning', 'healthy', 'warning', 'error', 'stale', 'pending'];
const HEALTH_FILTER_LABELS = { '': 'All', 'stale,error,warning': 'Needs attention', pending: 'Pending' };
// Statuses the daemon reports (LXD's instance and cluster member statuses), offered as filters.
const INSTANCE_STATUSES = ['Running', 'Stopped', 'Frozen', 'Error'];
const MEMBER_STATUSES = ['Online', 'Offline', 'Evacuated', 'Blocked', 'Upgrading'];
// Usage ranges, kept in the address as the API's ratios (0..1) and shown as percentages.
const RANGES = [
  ['memory_min', 'Memory usage', 'at least'],
  ['memory_max', 'Memory usage', 'at most'],
  ['storage_min', 'Fullest storage pool', 'at least'],
  ['storage_max', 'Fullest storage pool', 'at most'],
];
const MAX_BULK = 500;
const SEARCH_DELAY_MS = 300;
const PAGE_SIZES = [25, 50, 100];
// Seven columns fit 1280 px; members ride under the instances, and the columns marked
// midHide / narrowHide give way on narrower screens (every sort stays in the sort menu).
const COLUMNS = [
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'health', label: 'Health', sort: 'health' },
  { key: 'instances', label: 'Instances', sort: 'instance_count', numeric: true, narrowHide: true, also: { label: 'members', sort: 'member_count' } },
  { key: 'memory', label: 'Memory', sort: 'memory_usage_ratio' },
  { key: 'storage', label: 'Storage', sort: 'storage_max_usage_ratio', narrowHide: true, midHide: true },
  { key: 'cpu', label: 'CPU load', sort: 'cpu_load_1', numeric: true, narrowHide: true, midHide: true },
  { key: 'heartbeat', label: 'Last heartbeat', sort: 'last_status_update_at' },
  { key: 'actions', label: 'Actions' },
];
// Every order the API sorts by, as the sort menu offers them: [key, label, ascending, descending].
const SORTS = [
  ['name', 'Name', 'A–Z', 'Z–A'],
  ['health', 'Health', 'most urgent first', 'healthiest first'],
  ['instance_count', 'Instances', 'fewest first', 'most first'],
  ['member_count', 'Members', 'fewest first', 'most first'],
  ['memory_usage_ratio', 'Memory usage', 'lowest first', 'highest first'],
  ['storage_max_usage_ratio', 'Storage usage', 'lowest first', 'highest first'],
  ['cpu_load_1', 'CPU load', 'lowest first', 'highest first'],
  ['last_status_update_at', 'Last heartbeat', 'oldest first', 'newest first'],
];
const DEFAULT_ORDER = { name: 'asc', health: 'asc', last_status_update_at: 'desc' };

/** The health filter as one canonical value: states in a fixed order, no repeats. */
function normaliseHealth(value) {
  const parts = new Set(String(value || '').split(',').filter(Boolean));
  if (![...parts].every((part) => HEALTH_STATES.includes(part))) return '';
  if (parts.size === HEALTH_STATES.length) return '';
  return HEALTH_ORDER.filter((state) => parts.has(state)).join(',');
}

function healthFilterLabel(value) {
  if (value in HEALTH_FILTER_LABELS) return HEALTH_FILTER_LABELS[value];
  return value.split(',').map((part) => (part === 'pending' ? 'Pending' : healthText(part))).join(' or ');
}

/** A usage bound from the address: a ratio 0..1 with at most two decimals, else none. */
function readRatio(value) {
  if (value === null || value === '' || !/^(0(\.\d{1,2})?|1(\.0{1,2})?)$/.test(String(value))) return '';
  return String(Number(value));
}

function readStatus(value, known) {
  return known.includes(value) ? value : '';
}

function ratioText(value) {
  return `${Math.round(Number(value) * 100)} %`;
}

function readState(query) {
  const sort = SORTS.some(([key]) => key === query.get('sort')) ? query.get('sort') : 'name';
  return {
    instance_status: readStatus(query.get('instance_status'), INSTANCE_STATUSES),
    member_status: readStatus(query.get('member_status'), MEMBER_STATUSES),
    ...Object.fromEntries(RANGES.map(([key]) => [key, readRatio(query.get(key))])),
    search: (query.get('search') || '').slice(0, 63),
    health: normaliseHealth(query.get('health')),
    sort,
    order: query.get('order') === 'desc' ? 'desc' : 'asc',
    page: Math.max(1, Number.parseInt(query.get('page') || '1', 10) || 1),
    limit: PAGE_SIZES.includes(Number(query.get('limit'))) ? Number(query.get('limit')) : PAGE_SIZES[0],
  };
}

function urlQuery(state) {
  const query = {};
  if (state.search) query.search = state.search;
  if (state.health) query.health = state.health;
  Object.assign(query, extraFilters(state));
  if (state.sort !== 'name') query.sort = state.sort;
  if (state.order !== 'asc') query.order = state.order;
  if (state.page > 1) query.page = String(state.page);
  if (state.limit !== PAGE_SIZES[0]) query.limit = String(state.limit);
  return query;
}

function apiQuery(state) {
  const query = { sort: state.sort, order: state.order, limit: String(state.limit), offset: String((state.page - 1) * state.limit) };
  if (state.search) query.search = state.search;
  if (state.health) query.health = state.health;
  return { ...query, ...extraFilters(state) };
}

/** The status and usage filters in force, as the API and the address name them. */
function extraFilters(state) {
  const query = {};
  for (const key of ['instance_status', 'member_status', ...RANGES.map(([name]) => name)]) {
    if (state[key] !== '') query[key] = state[key];
  }
  return query;
}

/** The words of a cluster's most urgent warnings ("2 of 3 members Offline"), as the API says them. */
function warningWords(cluster) {
  const shown = cluster.warnings.filter((w) => w.kind !== 'stale');
  if (!shown.length) return null;
  const rank = (w) => (w.severity === 'error' ? 0 : 1);
  const first = [...shown].sort((a, b) => rank(a) - rank(b))[0];
  return h('div', { class: 'cell-warning', title: shown.map((w) => w.message).join('\n') }, first.message,
    shown.length > 1 ? h('span', { class: 'muted' }, ` +${shown.length - 1}`) : null);
}

function clusterRow(cluster, { selected, onSelect, menu, selectable }) {
  const href = `/clusters/${encodeURIComponent(cluster.name)}`;
  const reported = Boolean(cluster.last_status_update_at);
  const warningCount = cluster.warnings.filter((w) => w.kind !== 'stale').length;
  const cells = {
    name: h('td', { class: 'cell-name' }, h('div', { class: 'cell-name-inner' },
      selectable ? h('input', {
        type: 'checkbox', class: 'row-select', checked: selected, 'aria-label': `Select ${cluster.name}`,
        dataset: { focusKey: `select-${cluster.name}`, name: cluster.name },
        on: { change: (event) => onSelect(cluster.name, event.currentTarget.checked) },
      }) : null,
      h('div', { class: 'cell-name-text' },
        h('a', { href, 'data-nav': true, dataset: { focusKey: `row-${cluster.name}` } }, cluster.name),
        cluster.description ? h('div', { class: 'cell-sub' }, cluster.description) : null,
        h('div', { class: 'cell-sub muted', dataset: { tunnel: cluster.tunnel_connected ? 'connected' : 'not-connected' } },
          cluster.tunnel_connected ? 'tunnel connected' : 'tunnel not connected')))),
    health: h('td', { class: 'cell-health' }, h('div', { class: 'badges' },
      healthBadge(cluster.health),
      warningCount > 1 && !['warning', 'error'].includes(cluster.health)
        ? countBadge(`${warningCount} warning${warningCount === 1 ? '' : 's'}`, 'warning-soft') : null),
    warningWords(cluster)),
    instances: h('td', { class: 'numeric' }, reported
      ? [count(cluster.instance_count), h('div', { class: 'cell-sub muted' }, `${count(cluster.member_count)} member${cluster.member_count === 1 ? '' : 's'}`)]
      : '–'),
    memory: h('td', { class: 'cell-memory', dataset: { label: 'Memory' } }, reported
      ? meter({ label: `Memory of ${cluster.name}`, ratio: cluster.memory_usage_ratio, threshold: cluster.memory_threshold, detail: `${bytes(cluster.memory_usage)} of ${bytes(cluster.memory_total_amount)}`, compact: true })
      : h('span', { class: 'muted' }, '–')),
    storage: h('td', {}, reported
      ? meter({ label: `Fullest storage pool of ${cluster.name}`, ratio: cluster.storage_max_usage_ratio, threshold: cluster.disk_threshold, detail: `${bytes(cluster.storage_usage)} of ${bytes(cluster.storage_total_amount)} in all pools`, compact: true })
      : h('span', { class: 'muted' }, '–')),
    cpu: h('td', { class: 'numeric' }, reported ? load(cluster.cpu_load_1) : '–'),
    heartbeat: h('td', { class: ['cell-heartbeat', cluster.health === 'stale' && 'text-negative'] },
      relativeTime(reported ? cluster.heartbeat_age_seconds : null, cluster.last_status_update_at)),
    actions: h('td', { class: 'cell-actions' }, menu),
  };
  return h('tr', { class: selected ? 'row-selected' : null, dataset: { cluster: cluster.name } }, COLUMNS.map((column) => {
    const cell = cells[column.key];
    if (column.narrowHide) cell.classList.add('narrow-hide');
    if (column.midHide) cell.classList.add('mid-hide');
    return cell;
  }));
}

export function mount(root, ctx) {
  ctx.setTitle('Clusters');
  const admin = isAdmin(ctx.configuration);
  let state = readState(ctx.query);
  let sequence = 0;
  let countSequence = 0;
  let searchTimer = 0;
  let counts = null;

  const searchInput = h('input', {
    type: 'search', id: 'cluster-search', class: 'input', value: state.search, maxlength: 63,
    placeholder: 'Search by name', autocomplete: 'off', spellcheck: 'false',
  });
  const healthGroup = h('div', { class: 'segmented', role: 'radiogroup', 'aria-labelledby': 'health-filter-label' });
  const sortSelect = h('select', { id: 'cluster-sort', class: 'select' },
    SORTS.flatMap(([key, label, ascending, descending]) => [
      h('option', { value: `${key}:asc` }, `${label} (${ascending})`),
      h('option', { value: `${key}:desc` }, `${label} (${descending})`),
    ]));
  const activeFilters = h('div', { class: 'active-filters', id: 'active-filters', 'aria-live': 'polite' });
  const sizeSelect = h('select', { id: 'page-size', class: 'select' },
    PAGE_SIZES.map((size) => h('option', { value: size, selected: size === state.limit }, `${size} per page`)));
  const headRow = h('tr', {});
  const body = h('tbody', {});
  const table = h('table', { class: 'table clusters-table', 'aria-describedby': 'clusters-summary' },
    h('caption', { class: 'visually-hidden' }, 'Enrolled clusters. Column headers with buttons sort the table.'),
    h('thead', {}, headRow), body);
  const summary = h('p', { id: 'clusters-summary', class: 'table-summary', 'aria-live': 'polite' }, 'Loading clusters…');
  const problem = h('div', { class: 'page-problem' });
  const emptyArea = h('div', {});
  const resultArea = h('div', { class: 'result-area' });
  const pendingArea = h('div', { class: 'pending-area', id: 'pending-enrolments' });
  const selected = new Set();
  let pageClusters = [];
  const selectPage = h('input', { type: 'checkbox', id: 'select-page', class: 'row-select' });
  const selectedLabel = h('span', { class: 'selection-count', id: 'selection-count', 'aria-live': 'polite' });
  const bulkThresholdButton = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => changeThresholds([...selected]) } }, 'Change thresholds…');
  const bulkRemoveButton = h('button', { type: 'button', class: 'button button-negative button-small', on: { click: () => removeClusters([...selected]) } }, 'Remove…');
  const clearSelection = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => { selected.clear(); renderSelection(); } } }, 'Clear selection');
  const selectionBar = !admin ? null : h('div', { class: 'selection-bar', role: 'group', 'aria-label': 'Selected clusters' },
    h('label', { class: 'select-page', for: 'select-page' }, selectPage, 'Select page'),
    selectedLabel,
    h('div', { class: 'selection-actions' }, bulkThresholdButton, bulkRemoveButton, clearSelection));
  const filterForm = h('form', { class: 'more-filters-form', novalidate: true });
  const moreFilters = h('details', { class: 'more-filters', id: 'more-filters' },
    h('summary', { class: 'button button-base button-small' }, 'More filters'), filterForm);
  const previous = h('button', { type: 'button', class: 'button button-base button-small' }, 'Previous');
  const next = h('button', { type: 'button', class: 'button button-base button-small' }, 'Next');
  const pageLabel = h('span', { class: 'pager-label' });

  root.appendChild(h('div', { class: 'page' },
    pageHeader({
      title: 'Clusters',
      lead: 'Every enrolled MicroCloud with its latest heartbeat.',
      actions: [ctx.refreshControl(), admin ? h('a', { class: 'button button-positive', href: '/enrol', 'data-nav': true }, 'Enrol a cluster') : null],
    }),
    h('div', { class: 'toolbar', role: 'search', 'aria-label': 'Filter clusters' },
      h('div', { class: 'toolbar-search' },
        h('label', { for: 'cluster-search', class: 'visually-hidden' }, 'Search clusters by name'),
        searchInput),
      h('div', { class: 'toolbar-filter' },
        h('span', { id: 'health-filter-label', class: 'toolbar-label' }, 'Health'),
        healthGroup),
      h('div', { class: 'toolbar-sort' },
        h('label', { for: 'cluster-sort', class: 'toolbar-label' }, 'Sort by'),
        sortSelect),
      moreFilters),
    activeFilters,
    pendingArea,
    problem,
    resultArea,
    h('div', { class: 'table-card' },
      selectionBar,
      h('div', { class: 'table-scroll' }, table),
      emptyArea,
      h('div', { class: 'table-footer' },
        summary,
        h('div', { class: 'pager' },
          h('label', { for: 'page-size', class: 'visually-hidden' }, 'Clusters per page'),
          sizeSelect, previous, pageLabel, next)))));

  function sortButton(sort, label, className) {
    const active = state.sort === sort;
    const arrow = active ? (state.order === 'asc' ? '▲' : '▼') : '';
    return h('button', {
      type: 'button', class: className, dataset: { focusKey: `sort-${sort}` },
      'aria-pressed': active ? 'true' : 'false',
      on: { click: () => sortBy(sort) },
    }, label, h('span', { class: 'sort-arrow', 'aria-hidden': 'true' }, arrow));
  }

  function renderHead() {
    replace(headRow, COLUMNS.map((column) => {
      if (!column.sort) return h('th', { scope: 'col', class: 'cell-actions' }, h('span', { class: 'visually-hidden' }, column.label));
      const sorted = [column.sort, column.also && column.also.sort].includes(state.sort);
      return h('th', {
        scope: 'col',
        class: [column.numeric && 'numeric', column.narrowHide && 'narrow-hide', column.midHide && 'mid-hide'],
        'aria-sort': sorted ? (state.order === 'asc' ? 'ascending' : 'descending') : null,
      }, sortButton(column.sort, column.label, 'sort-button'),
      column.also ? sortButton(column.also.sort, column.also.label, 'sort-button sort-button-sub') : null);
    }));
  }

  function healthCount(value) {
    if (!counts) return null;
    if (!value) return counts.total;
    return value.split(',').reduce((sum, part) => sum + (Number(counts.by_health[part]) || 0), 0);
  }

  function renderHealthFilter() {
    replace(healthGroup, HEALTH_FILTERS.map((value) => {
      const checked = state.health === value;
      const total = healthCount(value);
      return h('button', {
        type: 'button', role: 'radio', class: 'segment', 'aria-checked': checked ? 'true' : 'false',
        tabindex: checked || (!HEALTH_FILTERS.includes(state.health) && !value) ? '0' : '-1',
        dataset: { focusKey: `health-${value || 'all'}`, value },
        on: { click: () => filterHealth(value), keydown: segmentKeys },
      }, healthFilterLabel(value), total !== null && total !== undefined ? h('span', { class: 'segment-count' }, count(total)) : null);
    }));
  }

  /** The filters in force, each with its own clear button, and one to clear them all. */
  function renderActiveFilters() {
    const chips = [];
    if (state.health) {
      chips.push(h('span', { class: 'chip', dataset: { filter: 'health' } },
        h('span', {}, 'Health: ', h('strong', {}, healthFilterLabel(state.health))),
        h('button', { type: 'button', class: 'chip-clear', 'aria-label': 'Clear the health filter', on: { click: () => change({ health: '', page: 1 }) } }, '×')));
    }
    const chip = (key, words, value, clear) => h('span', { class: 'chip', dataset: { filter: key } },
      h('span', {}, words, h('strong', {}, value)),
      h('button', { type: 'button', class: 'chip-clear', 'aria-label': `Clear the ${words.trim().toLowerCase()} filter`, on: { click: clear } }, '×'));
    if (state.instance_status) chips.push(chip('instance_status', 'Instances ', state.instance_status, () => change({ instance_status: '', page: 1 })));
    if (state.member_status) chips.push(chip('member_status', 'Members ', state.member_status, () => change({ member_status: '', page: 1 })));
    for (const [key, label, words] of RANGES) {
      if (state[key] !== '') chips.push(chip(key, `${label} ${words} `, ratioText(state[key]), () => change({ [key]: '', page: 1 })));
    }
    if (state.search) {
      chips.push(h('span', { class: 'chip', dataset: { filter: 'search' } },
        h('span', {}, 'Name contains ', h('strong', {}, `“${state.search}”`)),
        h('button', { type: 'button', class: 'chip-clear', 'aria-label': 'Clear the search', on: { click: () => { searchInput.value = ''; change({ search: '', page: 1 }); } } }, '×')));
    }
    if (!chips.length) {
      activeFilters.replaceChildren();
      return;
    }
    replace(activeFilters,
      h('span', { class: 'toolbar-label' }, 'Filtered by'),
      chips,
      chips.length > 1 ? h('button', { type: 'button', class: 'button button-base button-small', on: { click: clearFilters } }, 'Clear filters') : null);
  }

  function renderSort() {
    sortSelect.value = `${state.sort}:${state.order}`;
  }

  function segmentKeys(event) {
    const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (!(event.key in keys)) return;
    event.preventDefault();
    const index = HEALTH_FILTERS.indexOf(event.currentTarget.dataset.value);
    const value = HEALTH_FILTERS[(index + keys[event.key] + HEALTH_FILTERS.length) % HEALTH_FILTERS.length];
    filterHealth(value).then(() => {
      const target = healthGroup.querySelector(`[data-value="${value}"]`);
      if (target) target.focus();
    });
  }

  /** The status and usage form behind "More filters", showing what is in force. */
  function renderFilterForm() {
    const statusSelect = (id, label, key, statuses) => h('div', { class: 'filter-field' },
      h('label', { for: id, class: 'field-label' }, label),
      h('select', { id, class: 'select', name: key },
        h('option', { value: '' }, 'Any'),
        statuses.map((value) => h('option', { value, selected: state[key] === value }, value))));
    const percentInput = (key, label) => h('div', { class: 'filter-field' },
      h('label', { for: `filter-${key}`, class: 'field-label' }, label),
      h('input', {
        id: `filter-${key}`, name: key, class: 'input input-number', type: 'number', min: 0, max: 100, step: 1, inputmode: 'numeric',
        value: state[key] === '' ? '' : String(Math.round(Number(state[key]) * 100)),
      }));
    replace(filterForm,
      h('div', { class: 'filter-grid' },
        statusSelect('filter-instance-status', 'Instances in status', 'instance_status', INSTANCE_STATUSES),
        statusSelect('filter-member-status', 'Members in status', 'member_status', MEMBER_STATUSES),
        percentInput('memory_min', 'Memory usage from (%)'),
        percentInput('memory_max', 'Memory usage to (%)'),
        percentInput('storage_min', 'Storage usage from (%)'),
        percentInput('storage_max', 'Storage usage to (%)')),
      h('p', { class: 'field-error', id: 'filter-error', hidden: true }),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'button button-positive button-small' }, 'Apply filters')));
  }

  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(filterForm);
    const changes = { page: 1, instance_status: String(data.get('instance_status') || ''), member_status: String(data.get('member_status') || '') };
    const error = filterForm.querySelector('#filter-error');
    for (const [key, label] of RANGES) {
      const text = String(data.get(key) || '').trim();
      if (text === '') {
        changes[key] = '';
        continue;
      }
      if (!/^\d{1,3}$/.test(text) || Number(text) > 100) {
        error.textContent = `${label}: give a whole percentage from 0 to 100.`;
        error.hidden = false;
        filterForm.querySelector(`#filter-${key}`).focus();
        return;
      }
      changes[key] = String(Number(text) / 100);
    }
    error.hidden = true;
    moreFilters.open = false;
    change(changes);
  });

  function renderControls() {
    renderHead();
    renderFilterForm();
    renderHealthFilter();
    renderActiveFilters();
    renderSort();
  }

  /** A new query of the table: only the page is fetched (the counts cannot have changed). */
  function change(changes) {
    state = { ...state, ...changes };
    ctx.setQuery(urlQuery(state));
    renderControls();
    return loadPage().then(ctx.markUpdated).catch(() => {});
  }

  function sortBy(key) {
    const order = state.sort === key ? (state.order === 'asc' ? 'desc' : 'asc') : (DEFAULT_ORDER[key] || 'desc');
    return change({ sort: key, order, page: 1 });
  }

  function filterHealth(value) {
    return change({ health: value, page: 1 });
  }

  searchInput.addEventListener('input', () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => {
      const search = searchInput.value.trim();
      if (search !== state.search) change({ search, page: 1 });
    }, SEARCH_DELAY_MS);
  });
  sortSelect.addEventListener('change', () => {
    const [sort, order] = sortSelect.value.split(':');
    change({ sort, order, page: 1 });
  });
  searchInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      window.clearTimeout(searchTimer);
      const search = searchInput.value.trim();
      if (search !== state.search) change({ search, page: 1 });
    }
  });
  sizeSelect.addEventListener('change', () => change({ limit: Number(sizeSelect.value), page: 1 }));
  previous.addEventListener('click', () => change({ page: Math.max(1, state.page - 1) }));
  next.addEventListener('click', () => change({ page: state.page + 1 }));

  function clearFilters() {
    searchInput.value = '';
    const none = Object.fromEntries(Object.keys(extraFilters(state)).map((key) => [key, '']));
    change({ search: '', health: '', page: 1, ...none }).then(() => searchInput.focus());
  }

  /** The selection bar: how many are selected (on any page) and whether this page is. */
  function renderSelection() {
    const onPage = pageClusters.filter((cluster) => selected.has(cluster.name)).length;
    selectPage.checked = pageClusters.length > 0 && onPage === pageClusters.length;
    selectPage.indeterminate = onPage > 0 && onPage < pageClusters.length;
    selectPage.disabled = pageClusters.length === 0;
    selectPage.setAttribute('aria-label', `Select the ${pageClusters.length} clusters on this page`);
    selectedLabel.textContent = selected.size ? `${count(selected.size)} selected` : 'None selected';
    for (const buttonNode of [bulkThresholdButton, bulkRemoveButton, clearSelection]) buttonNode.disabled = selected.size === 0;
    if (selectionBar) selectionBar.classList.toggle('has-selection', selected.size > 0);
    for (const box of body.querySelectorAll('input.row-select')) {
      box.checked = selected.has(box.dataset.name);
      box.closest('tr').classList.toggle('row-selected', box.checked);
    }
  }

  function onSelect(name, on) {
    if (on) selected.add(name);
    else selected.delete(name);
    renderSelection();
  }

  selectPage.addEventListener('change', () => {
    for (const cluster of pageClusters) {
      if (selectPage.checked) selected.add(cluster.name);
      else selected.delete(cluster.name);
    }
    renderSelection();
  });

  function afterBulk(result, verb, { deselect }) {
    replace(resultArea, bulkResult(result, verb));
    for (const item of result.results) {
      if (deselect(item)) selected.delete(item.name);
    }
    renderSelection();
    loadCounts();
    return loadPage().then(ctx.markUpdated).catch(() => {});
  }

  function listOfNames(names) {
    const shown = names.slice(0, 5);
    return h('ul', { class: 'dialog-names' }, shown.map((name) => h('li', {}, name)),
      names.length > shown.length ? h('li', { class: 'muted' }, `and ${count(names.length - shown.length)} more`) : null);
  }

  async function removeClusters(names) {
    if (!names.length) return;
    if (names.length > MAX_BULK) {
      replace(resultArea, errorNotice(new Error(`Select at most ${MAX_BULK} clusters at a time.`)));
      return;
    }
    let result = null;
    const one = names.length === 1;
    const done = await confirmDialog({
      title: one ? `Remove ${names[0]}?` : `Remove ${count(names.length)} clusters?`,
      message: `${one ? 'It is' : 'They are'} removed from the Cluster Manager and ${one ? 'its' : 'their'} heartbeats are refused from now on. To manage ${one ? 'it' : 'one'} here again, enrol it with a new join token.`,
      body: listOfNames(names),
      confirmLabel: one ? 'Remove cluster' : `Remove ${count(names.length)} clusters`,
      action: async () => { result = await api.bulkRemove(names); },
    });
    if (done && result) {
      announce(`${result.succeeded} removed, ${result.failed} failed`);
      await afterBulk(result, 'Removed', { deselect: (item) => item.result !== 'error' });
    }
  }

  function thresholdField(id, label) {
    const mode = h('select', { id: `${id}-mode`, class: 'select', 'aria-label': `${label}: what to do` },
      h('option', { value: 'keep' }, 'Leave as it is'),
      h('option', { value: 'set' }, 'Set to'),
      h('option', { value: 'default' }, 'Use the fleet default'));
    const value = h('input', { id, class: 'input input-number', type: 'number', min: 0, max: 100, step: 1, inputmode: 'numeric', disabled: true, 'aria-label': `${label} (%)` });
    mode.addEventListener('change', () => {
      value.disabled = mode.value !== 'set';
      if (!value.disabled) value.focus();
    });
    const read = () => {
      if (mode.value === 'keep') return undefined;
      if (mode.value === 'default') return null;
      const text = value.value.trim();
      if (!/^\d{1,3}$/.test(text) || Number(text) > 100) throw new Error(`${label}: give a whole percentage from 0 to 100.`);
      return Number(text);
    };
    return { node: h('div', { class: 'filter-field' }, h('span', { class: 'field-label' }, label), h('div', { class: 'threshold-inputs' }, mode, value)), read };
  }

  async function changeThresholds(names) {
    if (!names.length) return;
    if (names.length > MAX_BULK) {
      replace(resultArea, errorNotice(new Error(`Select at most ${MAX_BULK} clusters at a time.`)));
      return;
    }
    const memoryField = thresholdField('bulk-memory-threshold', 'Memory warning threshold');
    const diskField = thresholdField('bulk-disk-threshold', 'Storage warning threshold');
    let result = null;
    const one = names.length === 1;
    const done = await confirmDialog({
      title: one ? `Change the thresholds of ${names[0]}` : `Change the thresholds of ${count(names.length)} clusters`,
      message: 'A cluster warns when its memory or a storage pool is fuller than its threshold. The fleet default applies to clusters without their own.',
      body: [listOfNames(names), h('div', { class: 'dialog-fields' }, memoryField.node, diskField.node)],
      confirmLabel: 'Apply thresholds',
      confirmKind: 'positive',
      action: async () => {
        const thresholds = {};
        const memory = memoryField.read();
        const disk = diskField.read();
        if (memory !== undefined) thresholds.memory_threshold = memory;
        if (disk !== undefined) thresholds.disk_threshold = disk;
        if (!Object.keys(thresholds).length) throw new Error('Choose a threshold to change.');
        result = await api.bulkThresholds(names, thresholds);
      },
    });
    if (done && result) {
      announce(`Thresholds changed on ${result.succeeded}, ${result.failed} failed`);
      await afterBulk(result, 'Changed the thresholds of', { deselect: (item) => item.result === 'ok' });
    }
  }

  function rowMenu(cluster) {
    const base = `/clusters/${encodeURIComponent(cluster.name)}`;
    return actionMenu(`Actions for ${cluster.name}`, [
      { label: 'Open', href: base },
      { label: 'Instances', href: `${base}/instances` },
      ...(admin ? [
        { label: 'Change thresholds…', onSelect: () => changeThresholds([cluster.name]) },
        { label: 'Remove…', danger: true, onSelect: () => removeClusters([cluster.name]) },
      ] : []),
    ], `menu-${cluster.name}`);
  }

  function renderPage(page) {
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.clusters.length;
    pageClusters = page.clusters;
    replace(body, page.clusters.map((cluster) => clusterRow(cluster, { selected: selected.has(cluster.name), onSelect, menu: rowMenu(cluster), selectable: admin })));
    renderSelection();
    const filtered = state.search || state.health || Object.keys(extraFilters(state)).length;
    const text = page.total
      ? `Showing ${count(first)}–${count(last)} of ${count(page.total)} cluster${page.total === 1 ? '' : 's'}${filtered ? ' matching the filters' : ''}`
      : 'No clusters to show';
    if (summary.textContent !== text) summary.textContent = text;
    const pages = Math.max(1, Math.ceil(page.total / state.limit));
    pageLabel.textContent = `Page ${count(state.page)} of ${count(pages)}`;
    previous.disabled = state.page <= 1;
    next.disabled = state.page >= pages;
    table.hidden = page.clusters.length === 0;
    if (page.clusters.length) {
      emptyArea.replaceChildren();
    } else if (filtered) {
      replace(emptyArea, h('div', { class: 'empty-state' },
        h('p', {}, 'No clusters match the search and filter.'),
        h('button', { type: 'button', class: 'button button-base', on: { click: clearFilters } }, 'Clear filters')));
    } else {
      replace(emptyArea, h('div', { class: 'empty-state' },
        h('p', {}, 'No clusters are enrolled yet.'),
        admin ? h('a', { class: 'button button-positive', href: '/enrol', 'data-nav': true }, 'Enrol your first cluster') : null));
    }
  }

  let shown = false;

  /** The page of clusters the state asks for; an answer overtaken by a newer query is dropped. */
  async function loadPage() {
    const mine = ++sequence;
    let page;
    try {
      page = await api.clusters(apiQuery(state));
    } catch (error) {
      if (mine !== sequence) return;
      const retry = () => loadPage().then(ctx.markUpdated).catch(() => {});
      summary.textContent = 'The clusters could not be loaded.';
      if (shown) {
        replace(problem, errorNotice(error, retry));
      } else {
        table.hidden = true;
        replace(emptyArea, errorState(error, retry));
      }
      throw error;
    }
    if (mine !== sequence) return;
    problem.replaceChildren();
    if (page.clusters.length === 0 && page.total > 0 && state.page > 1) {
      state = { ...state, page: Math.max(1, Math.ceil(page.total / state.limit)) };
      ctx.setQuery(urlQuery(state));
      await loadPage();
      return;
    }
    shown = true;
    renderPage(page);
  }

  /** The counts of the health filter: fetched on load and refresh only, never waited for. */
  async function loadCounts() {
    const mine = ++countSequence;
    try {
      const overview = await api.overview();
      if (mine !== countSequence) return;
      counts = overview.clusters;
      renderHealthFilter();
    } catch {
      // The filter works without its counts; the table says what went wrong, if anything.
    }
  }

  /** On load, on the timer and on Refresh: the page, and the counts beside it. */
  async function refresh() {
    loadCounts();
    loadPending();
    await loadPage();
  }

  /** Join tokens handed out whose clusters have not enrolled yet: a folded panel with a count. */
  async function loadPending() {
    let list;
    try {
      list = await api.tokens();
    } catch {
      return;
    }
    const waiting = list.filter((token) => !token.expired);
    const expired = list.length - waiting.length;
    if (!list.length) {
      pendingArea.replaceChildren();
      return;
    }
    const open = pendingArea.querySelector('details') ? pendingArea.querySelector('details').open : false;
    replace(pendingArea, h('details', { class: 'pending-panel', open },
      h('summary', {}, `Pending enrolments (${count(waiting.length)})`, expired ? h('span', { class: 'muted' }, ` · ${count(expired)} expired`) : null),
      h('ul', { class: 'pending-list' }, list.slice(0, 20).map((token) => h('li', { class: 'pending-item', dataset: { token: token.name } },
        h('span', { class: 'pending-name' }, token.name),
        token.description ? h('span', { class: 'muted pending-description' }, token.description) : null,
        h('span', { class: ['pending-expiry', token.expired && 'text-negative'] }, token.expired ? 'expired ' : 'expires ', relativeTime(null, token.expires_at))))),
      h('p', { class: 'small' }, list.length > 20 ? `${count(list.length - 20)} more. ` : '',
        h('a', { href: '/enrol', 'data-nav': true }, 'Manage join tokens'))));
  }

  renderControls();
  return { refresh, destroy: () => window.clearTimeout(searchTimer) };
}
