// Settings: fleet-wide defaults every unit applies (thresholds, staleness, join-token lifetime).

import { api } from '../api.js';
import { announce, h, replace } from '../dom.js';
import { count } from '../format.js';
import {
  button, card, clearFieldErrors, errorNotice, errorState, field, notice, pageHeader, showFieldError,
} from '../components.js';
import { isAdmin } from '../roles.js';

const FIELDS = ['memory_threshold', 'disk_threshold', 'stale_after_intervals', 'token_expiry'];
const IDS = {
  memory_threshold: 'settings-memory-threshold',
  disk_threshold: 'settings-disk-threshold',
  stale_after_intervals: 'settings-stale-after',
  token_expiry: 'settings-token-expiry',
};
const HOUR = 3600;

/** "5 min", "2 h", "7 days": a duration in seconds as people say it. */
export function duration(seconds) {
  const s = Number(seconds) || 0;
  if (s < HOUR) return `${count(Math.round(s / 60))} min`;
  if (s < 2 * 86400 || s % 86400) return `${Math.round((s / HOUR) * 10) / 10} h`;
  return `${count(s / 86400)} days`;
}

function sourceText(source) {
  return source === 'settings' ? 'set here for the whole fleet' : "from each unit's configuration";
}

export function mount(root, ctx) {
  ctx.setTitle('Settings');
  const admin = isAdmin(ctx.configuration);
  let current = null;
  let dirty = false;

  const problem = h('div', { class: 'page-problem' });
  const content = h('div', { class: 'page-content', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading the settings…'));
  root.appendChild(h('div', { class: 'page' },
    pageHeader({
      title: 'Settings',
      lead: 'Fleet-wide defaults, stored in the database and applied by every unit. A cluster with its own threshold keeps it.',
      actions: [ctx.refreshControl()],
    }),
    problem,
    content));

  const numberInput = (attrs) => h('input', { class: 'input input-number', type: 'number', inputmode: 'decimal', required: true, ...attrs });
  const memory = numberInput({ min: 0, max: 100, step: 1 });
  const disk = numberInput({ min: 0, max: 100, step: 1 });
  const stale = numberInput({ min: 1, max: 10000, step: 'any' });
  const expiry = numberInput({ min: 1 / 60, max: 366 * 24, step: 'any' });
  const staleSource = h('p', { class: 'field-hint threshold-source', id: 'stale-source' });
  const expirySource = h('p', { class: 'field-hint threshold-source', id: 'expiry-source' });
  const status = h('p', { class: 'form-status', role: 'status' });
  const save = button('Save settings', { kind: 'positive', type: 'submit' });
  const form = h('form', { class: 'form settings-form', novalidate: true, 'aria-labelledby': 'defaults-title' });

  const resetButton = (label, key) => button(label, {
    kind: 'base',
    attrs: { class: 'button button-base button-small', dataset: { reset: key } },
    onClick: () => submit({ [key]: null }),
  });

  function renderForm() {
    if (!admin) {
      // Read only: the values and where they come from, without a way to change them.
      for (const input of [memory, disk, stale, expiry]) input.readOnly = true;
    }
    replace(form,
      admin ? null : notice({ kind: 'info', title: 'Only administrators change settings.', message: 'You see the values every unit applies.' }),
      h('h3', { class: 'subheading' }, 'Warning thresholds'),
      h('div', { class: 'field-row' },
        field({ id: IDS.memory_threshold, label: 'Memory warning threshold (%)', input: memory, hint: 'Warn when a cluster uses more of its memory than this.' }),
        field({ id: IDS.disk_threshold, label: 'Storage warning threshold (%)', input: disk, hint: 'Warn when any storage pool of a cluster is fuller than this.' })),
      h('h3', { class: 'subheading' }, 'Heartbeats and enrolment'),
      h('div', { class: 'field-row' },
        h('div', {},
          field({ id: IDS.stale_after_intervals, label: 'Stale after (missed heartbeats)', input: stale, hint: `Clusters heartbeat every ${count(current.heartbeat_interval)} s.` }),
          staleSource),
        h('div', {},
          field({ id: IDS.token_expiry, label: 'Join tokens expire after (hours)', input: expiry, hint: 'The default lifetime of a new join token.' }),
          expirySource)),
      admin ? h('div', { class: 'form-actions' }, save, status) : null);
  }

  function fill() {
    memory.value = String(current.memory_threshold);
    disk.value = String(current.disk_threshold);
    stale.value = String(current.stale_after_intervals);
    expiry.value = String(Math.round((current.token_expiry / HOUR) * 1000) / 1000);
    replace(staleSource, `${duration(current.stale_after_seconds)} without a heartbeat; ${sourceText(current.stale_after_intervals_source)}. `,
      admin && current.stale_after_intervals_source === 'settings' ? resetButton("Use the units' configuration", 'stale_after_intervals') : null);
    replace(expirySource, `${duration(current.token_expiry)}; ${sourceText(current.token_expiry_source)}. `,
      admin && current.token_expiry_source === 'settings' ? resetButton("Use the units' configuration", 'token_expiry') : null);
    dirty = false;
  }

  function read(input) {
    const text = input.value.trim();
    return text === '' || !Number.isFinite(Number(text)) ? text : Number(text);
  }

  function changes() {
    const wanted = {
      memory_threshold: read(memory),
      disk_threshold: read(disk),
      stale_after_intervals: read(stale),
      token_expiry: typeof read(expiry) === 'number' ? Math.round(read(expiry) * HOUR) : read(expiry),
    };
    const result = {};
    for (const key of FIELDS) if (wanted[key] !== current[key]) result[key] = wanted[key];
    return result;
  }

  async function submit(given) {
    clearFieldErrors(form);
    status.textContent = '';
    if (!Object.keys(given).length) {
      status.textContent = 'Nothing to save.';
      return;
    }
    save.disabled = true;
    try {
      current = await api.updateSettings(given);
      fill();
      status.textContent = 'Saved. Every unit applies these from now on.';
      announce('Settings saved');
    } catch (error) {
      const bad = error.field ? error.field(FIELDS) : null;
      if (!(bad && showFieldError(form, IDS[bad], error.message))) status.replaceChildren(errorNotice(error));
    } finally {
      save.disabled = false;
    }
  }

  form.addEventListener('input', () => { dirty = true; status.textContent = ''; });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!admin) return;
    submit(changes());
  });

  let shown = false;
  async function refresh() {
    try {
      const answer = await api.settings();
      problem.replaceChildren();
      current = answer;
      if (!shown) {
        renderForm();
        replace(content, card({ title: 'Fleet defaults', id: 'defaults', children: form }));
        content.removeAttribute('aria-busy');
        shown = true;
        fill();
      } else if (!dirty) {
        fill();
      }
    } catch (error) {
      const retry = () => refresh().then(ctx.markUpdated).catch(() => {});
      if (shown) replace(problem, errorNotice(error, retry));
      else {
        replace(content, errorState(error, retry));
        content.removeAttribute('aria-busy');
      }
      throw error;
    }
  }
  return { refresh };
}
