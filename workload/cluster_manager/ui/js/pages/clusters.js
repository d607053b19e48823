// Clusters: one page of the fleet at a time, searched, filtered and sorted by the API.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, count, load } from '../format.js';
import { countBadge, errorNotice, errorState, healthBadge, healthText, pageHeader, relativeTime } from '../components.js';
import { meter } from '../charts.js';

const HEALTH_STATES = ['healthy', 'warning', 'error', 'stale', 'pending'];
// The segments of the health filter; "error,stale,warning" is every cluster needing attention.
const HEALTH_FILTERS = ['', 'error,stale,warning', 'healthy', 'warning', 'error', 'stale', 'pending'];
const HEALTH_FILTER_LABELS = { '': 'All', 'error,stale,warning': 'Needs attention', pending: 'Pending' };
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
  return ['error', 'stale', 'warning', 'pending', 'healthy'].filter((state) => parts.has(state)).join(',');
}

function healthFilterLabel(value) {
  if (value in HEALTH_FILTER_LABELS) return HEALTH_FILTER_LABELS[value];
  return value.split(',').map((part) => (part === 'pending' ? 'Pending' : healthText(part))).join(' or ');
}

function readState(query) {
  const sort = SORTS.some(([key]) => key === query.get('sort')) ? query.get('sort') : 'name';
  return {
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
  return query;
}

function clusterRow(cluster) {
  const href = `/clusters/${encodeURIComponent(cluster.name)}`;
  const reported = Boolean(cluster.last_status_update_at);
  const warningCount = cluster.warnings.filter((w) => w.kind !== 'stale').length;
  const cells = {
    name: h('td', { class: 'cell-name' },
      h('a', { href, 'data-nav': true, dataset: { focusKey: `row-${cluster.name}` } }, cluster.name),
      cluster.description ? h('div', { class: 'cell-sub' }, cluster.description) : null,
      h('div', { class: 'cell-sub muted', dataset: { tunnel: cluster.tunnel_connected ? 'connected' : 'not-connected' } },
        cluster.tunnel_connected ? 'tunnel connected' : 'tunnel not connected')),
    health: h('td', {}, h('div', { class: 'badges' },
      healthBadge(cluster.health),
      warningCount > 1 || (warningCount && cluster.health !== 'warning')
        ? countBadge(`${warningCount} warning${warningCount === 1 ? '' : 's'}`, 'warning-soft') : null)),
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
  };
  return h('tr', {}, COLUMNS.map((column) => {
    const cell = cells[column.key];
    if (column.narrowHide) cell.classList.add('narrow-hide');
    if (column.midHide) cell.classList.add('mid-hide');
    return cell;
  }));
}

export function mount(root, ctx) {
  ctx.setTitle('Clusters');
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
  const previous = h('button', { type: 'button', class: 'button button-base button-small' }, 'Previous');
  const next = h('button', { type: 'button', class: 'button button-base button-small' }, 'Next');
  const pageLabel = h('span', { class: 'pager-label' });

  root.appendChild(h('div', { class: 'page' },
    pageHeader({
      title: 'Clusters',
      lead: 'Every enrolled MicroCloud with its latest heartbeat.',
      actions: [ctx.refreshControl(), h('a', { class: 'button button-positive', href: '/enrol', 'data-nav': true }, 'Enrol a cluster')],
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
        sortSelect)),
    activeFilters,
    problem,
    h('div', { class: 'table-card' },
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

  function renderControls() {
    renderHead();
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
    change({ search: '', health: '', page: 1 }).then(() => searchInput.focus());
  }

  function renderPage(page) {
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.clusters.length;
    replace(body, page.clusters.map(clusterRow));
    const filtered = state.search || state.health;
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
        h('a', { class: 'button button-positive', href: '/enrol', 'data-nav': true }, 'Enrol your first cluster')));
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
    await loadPage();
  }

  renderControls();
  return { refresh, destroy: () => window.clearTimeout(searchTimer) };
}
