// Instances: their status as a badge, the state changes offered, the dialog asking for one
// (force, timeout) and what came of it.

import { h } from './dom.js';
import { confirmDialog, notice } from './components.js';
import { bytes, count } from './format.js';

export const ACTIONS = {
  start: { label: 'Start', past: 'Started', doing: 'starting', kind: 'positive' },
  stop: { label: 'Stop', past: 'Stopped', doing: 'stopping', kind: 'negative', clean: true },
  restart: { label: 'Restart', past: 'Restarted', doing: 'restarting', kind: 'negative', clean: true },
  freeze: { label: 'Freeze', past: 'Froze', doing: 'freezing', kind: 'negative' },
  unfreeze: { label: 'Unfreeze', past: 'Unfroze', doing: 'unfreezing', kind: 'positive' },
};

const BY_STATUS = {
  Running: ['stop', 'restart', 'freeze'],
  Stopped: ['start'],
  Frozen: ['unfreeze', 'stop'],
};

const BADGES = { Running: 'healthy', Stopped: 'pending', Frozen: 'warning', Error: 'error' };

/** The changes that make sense for an instance in ``status``. */
export function actionsFor(status) {
  return BY_STATUS[status] || ['start', 'stop'];
}

export function statusBadge(status) {
  return h('span', { class: ['badge', `badge-${BADGES[status] || 'neutral'}`] },
    h('span', { class: 'badge-dot', 'aria-hidden': 'true' }), status || 'Unknown');
}

/** CPU time LXD counted: "1.5 s", "12 min", "3.2 h". */
export function cpuTime(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '–';
  const value = Number(seconds);
  if (value < 60) return `${Math.round(value * 10) / 10} s`;
  if (value < 3600) return `${Math.round(value / 6) / 10} min`;
  return `${count(Math.round(value / 360) / 10)} h`;
}

export function memoryText(value) {
  return value === null || value === undefined ? '–' : bytes(value);
}

/** IP addresses one under the other (they wrap anywhere on a phone). */
export function addressList(addresses) {
  if (!addresses || !addresses.length) return h('span', { class: 'muted' }, '–');
  return h('ul', { class: 'address-list' }, addresses.map((address) => h('li', {}, address)));
}

/**
 * Ask for a state change of ``what`` (words: "web-1", "12 instances"), with force and timeout
 * for a stop or restart; ``run({force, timeout})`` makes it. Resolves to its answer, or null
 * when cancelled.
 */
export async function askStateChange({ action, what, names = [], run }) {
  const words = ACTIONS[action];
  const force = h('input', { type: 'checkbox', id: 'state-force', class: 'row-select' });
  const timeout = h('input', {
    type: 'number', id: 'state-timeout', class: 'input input-number', min: -1, max: 3600, step: 1, value: '30', inputmode: 'numeric',
  });
  const fields = words.clean ? h('div', { class: 'dialog-fields' },
    h('label', { class: 'check-field', for: 'state-force' }, force, 'Force (do not wait for a clean shutdown)'),
    h('div', { class: 'field' },
      h('label', { class: 'field-label', for: 'state-timeout' }, 'Timeout (seconds)'),
      timeout,
      h('p', { class: 'field-hint' }, 'How long LXD waits for a clean shutdown; -1 waits for ever.'))) : null;
  let answer = null;
  const done = await confirmDialog({
    title: `${words.label} ${what}?`,
    message: words.clean
      ? `LXD asks ${names.length > 1 ? 'each instance' : 'the instance'} to shut down cleanly first, unless forced.`
      : `LXD ${words.doing === 'starting' ? 'starts' : `is ${words.doing}`} ${names.length > 1 ? 'each instance' : 'the instance'}, and the result is shown here.`,
    body: [
      names.length > 1 ? h('ul', { class: 'dialog-names' }, names.slice(0, 8).map((name) => h('li', {}, name)),
        names.length > 8 ? h('li', { class: 'muted' }, `and ${count(names.length - 8)} more`) : null) : null,
      fields,
    ],
    confirmLabel: words.label,
    confirmKind: words.kind,
    action: async () => {
      const seconds = Number(timeout.value);
      if (words.clean && !(Number.isInteger(seconds) && seconds >= -1 && seconds <= 3600)) {
        throw new Error('The timeout is a whole number of seconds from -1 to 3600.');
      }
      answer = await run(words.clean ? { force: force.checked, timeout: seconds } : {});
    },
  });
  return done ? answer : null;
}

/** What one change did (a StateResult or MemberResult): success, failure with LXD's error, or still going on. */
export function changeResult(result, subject) {
  const words = ACTIONS[result.action] || { label: result.action, past: result.action, doing: result.action };
  if (result.result === 'success') {
    return notice({ kind: 'success', title: `${words.past || result.action} ${subject}.`, message: result.operation ? `Operation ${result.operation}` : '' });
  }
  if (result.result === 'running') {
    return notice({ kind: 'info', title: `${subject}: still ${words.doing || 'running'}.`, message: `LXD had not finished when the wait ended${result.operation ? ` (operation ${result.operation})` : ''}. Refresh to see how it ends.` });
  }
  return notice({ kind: 'error', title: `Could not ${String(words.label || result.action).toLowerCase()} ${subject}`, message: result.error || 'LXD reported a failure.' });
}

const OUTCOME = { success: 'Done', running: 'Still running', failure: 'Failed', error: 'Failed' };

/** What a bulk change did, instance by instance: failures first and open, the rest folded away. */
export function bulkStateResult(result, action) {
  const words = ACTIONS[action];
  const failed = result.results.filter((item) => item.result === 'failure' || item.result === 'error');
  const rest = result.results.filter((item) => !failed.includes(item));
  const total = result.results.length;
  const title = failed.length
    ? `${words.past} ${count(result.succeeded)} of ${count(total)} instance${total === 1 ? '' : 's'}; ${count(result.failed)} failed`
    : `${words.past} ${count(result.succeeded)} instance${result.succeeded === 1 ? '' : 's'}`;
  const row = (item) => h('li', {
    class: ['bulk-item', `bulk-item-${item.result}`],
    dataset: { cluster: item.cluster, instance: item.instance, result: item.result },
  },
  h('span', { class: 'bulk-item-name' }, `${item.instance} on ${item.cluster}`, item.project !== 'default' ? ` (${item.project})` : ''),
  h('span', { class: 'bulk-item-outcome' }, OUTCOME[item.result] || item.result),
  item.error ? h('span', { class: 'bulk-item-message muted' }, item.status ? `${item.status}: ${item.error}` : item.error) : null);
  return h('div', { class: ['notice', failed.length ? 'notice-warning' : 'notice-success', 'bulk-result'], role: 'status', id: 'bulk-result' },
    h('div', { class: 'notice-text' },
      h('strong', { class: 'notice-title' }, title),
      failed.length ? h('ul', { class: 'bulk-list', 'aria-label': 'Failed' }, failed.map(row)) : null,
      rest.length ? h('details', { class: 'bulk-done', open: failed.length === 0 && rest.length <= 10 },
        h('summary', {}, `Done (${count(rest.length)})`),
        h('ul', { class: 'bulk-list', 'aria-label': 'Done' }, rest.map(row))) : null));
}
