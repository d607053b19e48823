// The audit log: every change made through the Cluster Manager (and the calls it made to
// clusters' LXD), newest first, filtered by user, cluster and time, a page at a time.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { errorNotice, errorState, notice, pageHeader, timeText } from '../components.js';
import { absolute, count } from '../format.js';
import { isAdmin } from '../roles.js';

const PAGE_SIZE = 50;
const FILTERS = ['user', 'cluster', 'since', 'until'];

/** "2026-12-06T10:00" from a datetime-local input, read as UTC (the UI shows times in UTC). */
function toInstant(local) {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(local) ? `${local}:00Z` : '';
}

function fromInstant(instant) {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})/.exec(instant || '');
  return match ? match[1] : '';
}

function outcome(entry) {
  if (entry.status === null || entry.status === undefined) {
    return h('span', { class: 'badge badge-pending', title: 'The call started; its outcome was not recorded' }, 'Unknown');
  }
  const ok = entry.status < 400;
  return h('span', { class: 'audit-outcome' },
    h('span', { class: ['badge', ok ? 'badge-healthy' : 'badge-stale'] }, String(entry.status)),
    entry.result ? h('span', { class: 'audit-result' }, ` ${entry.result}`) : null);
}

function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 1000 ? `${count(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function entryRow(entry) {
  return h('tr', { dataset: { entry: String(entry.id) } },
    h('td', { class: 'cell-when' }, timeText(new Date(entry.started_at).toISOString()),
      h('div', { class: 'cell-sub muted narrow-hide' }, absolute(entry.started_at))),
    h('td', {}, h('span', { title: entry.subject }, entry.user_name || entry.subject),
      h('div', { class: 'cell-sub muted' }, entry.target === 'cluster' ? 'to the cluster’s LXD' : 'to the Cluster Manager')),
    h('td', { class: 'narrow-hide' }, entry.cluster
      ? h('a', { href: `/clusters/${encodeURIComponent(entry.cluster)}`, 'data-nav': true }, entry.cluster)
      : h('span', { class: 'muted' }, '–')),
    h('td', { class: 'cell-call' }, h('code', { class: 'audit-call' }, `${entry.method} ${entry.path}`),
      entry.cluster ? h('div', { class: 'cell-sub muted narrow-only' }, `on ${entry.cluster}`) : null),
    h('td', {}, outcome(entry)),
    h('td', { class: 'numeric mid-hide' }, duration(entry.duration_ms)));
}

export function mount(root, ctx) {
  ctx.setTitle('Audit log');
  if (!isAdmin(ctx.configuration)) {
    root.appendChild(h('div', { class: 'page' },
      pageHeader({ title: 'Audit log' }),
      notice({ kind: 'info', title: 'Only administrators read the audit log.', message: 'Ask an administrator if you need to know who changed what.' })));
    return {};
  }
  const state = Object.fromEntries(FILTERS.map((key) => [key, ctx.query.get(key) || '']));
  let before = ctx.query.get('before') || '';
  let sequence = 0;
  let shown = false;
  let lastPage = null;

  const input = (id, value, attrs) => h('input', { id, class: 'input', value, autocomplete: 'off', spellcheck: 'false', ...attrs });
  const user = input('audit-user', state.user, { type: 'search', maxlength: 256, placeholder: 'Exact name or subject' });
  const cluster = input('audit-cluster', state.cluster, { type: 'search', maxlength: 256, placeholder: 'Any cluster' });
  const since = input('audit-since', fromInstant(state.since), { type: 'datetime-local' });
  const until = input('audit-until', fromInstant(state.until), { type: 'datetime-local' });
  const body = h('tbody', {});
  const table = h('table', { class: 'table audit-table', id: 'audit-table', 'aria-describedby': 'audit-summary' },
    h('caption', { class: 'visually-hidden' }, 'Audit log, newest first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'When'),
      h('th', { scope: 'col' }, 'Who'),
      h('th', { scope: 'col', class: 'narrow-hide' }, 'Cluster'),
      h('th', { scope: 'col' }, 'Call'),
      h('th', { scope: 'col' }, 'Result'),
      h('th', { scope: 'col', class: 'numeric mid-hide' }, 'Duration'))),
    body);
  const summary = h('p', { id: 'audit-summary', class: 'table-summary', 'aria-live': 'polite' }, 'Loading the audit log…');
  const problem = h('div', { class: 'page-problem' });
  const emptyArea = h('div', {});
  const newest = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => { before = ''; reload(); } } }, 'Newest');
  const older = h('button', { type: 'button', class: 'button button-base button-small', on: { click: () => goOlder() } }, 'Older');
  const form = h('form', { class: 'toolbar audit-filters', role: 'search', 'aria-label': 'Filter the audit log', novalidate: true },
    h('div', { class: 'toolbar-filter' }, h('label', { for: 'audit-user', class: 'toolbar-label' }, 'User'), user),
    h('div', { class: 'toolbar-filter' }, h('label', { for: 'audit-cluster', class: 'toolbar-label' }, 'Cluster'), cluster),
    h('div', { class: 'toolbar-filter' }, h('label', { for: 'audit-since', class: 'toolbar-label' }, 'From (UTC)'), since),
    h('div', { class: 'toolbar-filter' }, h('label', { for: 'audit-until', class: 'toolbar-label' }, 'Until (UTC)'), until),
    h('div', { class: 'toolbar-filter' }, h('button', { type: 'submit', class: 'button button-base button-small' }, 'Apply')));

  root.appendChild(h('div', { class: 'page' },
    pageHeader({
      title: 'Audit log',
      lead: 'Every change made through the Cluster Manager, recorded before and after it ran: who, when, on which cluster, and how it ended.',
      actions: [ctx.refreshControl()],
    }),
    form,
    problem,
    h('div', { class: 'table-card' },
      h('div', { class: 'table-scroll' }, table),
      emptyArea,
      h('div', { class: 'table-footer' }, summary, h('div', { class: 'pager' }, newest, older)))));

  function reload() {
    refresh().then(ctx.markUpdated).catch(() => {});
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    state.user = user.value.trim();
    state.cluster = cluster.value.trim();
    state.since = toInstant(since.value);
    state.until = toInstant(until.value);
    before = '';
    reload();
  });

  function goOlder() {
    if (!lastPage || !lastPage.next_before) return;
    before = String(lastPage.next_before);
    reload();
  }

  async function refresh() {
    const mine = ++sequence;
    const query = { limit: String(PAGE_SIZE) };
    for (const key of FILTERS) if (state[key]) query[key] = state[key];
    if (before) query.before = before;
    ctx.setQuery(Object.fromEntries(Object.entries(query).filter(([key]) => key !== 'limit')));
    let page;
    try {
      page = await api.audit(query);
    } catch (error) {
      if (mine !== sequence) return;
      const retry = () => reload();
      if (shown) replace(problem, errorNotice(error, retry));
      else {
        replace(problem, errorState(error, retry));
        summary.textContent = 'Not loaded';
      }
      throw error;
    }
    if (mine !== sequence) return;
    shown = true;
    lastPage = page;
    problem.replaceChildren();
    replace(body, page.entries.map(entryRow));
    table.hidden = page.entries.length === 0;
    const filtered = FILTERS.some((key) => state[key]);
    summary.textContent = page.entries.length
      ? `${count(page.entries.length)} entr${page.entries.length === 1 ? 'y' : 'ies'}${before ? ', older ones' : ', newest first'}${filtered ? ' matching the filters' : ''}`
      : 'No entries';
    replace(emptyArea, page.entries.length ? null : h('p', { class: 'empty-state' }, filtered ? 'No recorded calls match the filters.' : 'Nothing recorded yet.'));
    newest.disabled = !before;
    older.disabled = !page.next_before;
  }

  return { refresh };
}
