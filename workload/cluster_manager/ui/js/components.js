// Pieces every page uses: headers, cards, badges, notices, dialogs, copy buttons.

import { signOut } from './api.js';
import { announce, h } from './dom.js';
import { absolute, ago, count, secondsSince, short, until } from './format.js';

const HEALTH_TEXT = {
  healthy: 'Healthy',
  error: 'Error',
  warning: 'Warning',
  error: 'Error',
  stale: 'Stale',
  pending: 'Awaiting first heartbeat',
};

export function healthText(health) {
  return HEALTH_TEXT[health] || String(health || 'Unknown');
}

export function healthBadge(health) {
  const short = health === 'pending' ? 'Pending' : healthText(health);
  return h('span', { class: ['badge', `badge-${health}`], title: healthText(health) },
    h('span', { class: 'badge-dot', 'aria-hidden': 'true' }), short);
}

export function countBadge(text, kind = 'neutral') {
  return h('span', { class: ['badge', `badge-${kind}`] }, text);
}

/** The page title row: heading (focused on navigation), optional lead text and actions. */
export function pageHeader({ title, lead, actions = [], crumbs = [] }) {
  const heading = h('h1', { class: 'page-title', tabindex: '-1', id: 'page-title' }, title);
  return h('header', { class: 'page-header' },
    crumbs.length ? h('nav', { class: 'breadcrumbs', 'aria-label': 'Breadcrumb' },
      h('ol', {}, crumbs.map((crumb) => h('li', {}, crumb.href ? h('a', { href: crumb.href, 'data-nav': true }, crumb.label) : h('span', { 'aria-current': 'page' }, crumb.label))))) : null,
    h('div', { class: 'page-header-row' },
      h('div', { class: 'page-header-text' }, heading, lead ? h('p', { class: 'page-lead' }, lead) : null),
      actions.length ? h('div', { class: 'page-actions' }, actions) : null));
}

export function card({ title, id, children, className, headerExtra }) {
  const headingId = id ? `${id}-title` : undefined;
  return h('section', { class: ['card', className], id, 'aria-labelledby': headingId },
    title ? h('div', { class: 'card-header' }, h('h2', { class: 'card-title', id: headingId }, title), headerExtra || null) : null,
    h('div', { class: 'card-body' }, children));
}

/** A count for a stat tile: in full up to a million, then short ("11.1M"), exact on hover. */
export function bigCount(value) {
  const number = Number(value) || 0;
  return number < 1e6 ? count(number) : h('span', { title: count(number) }, short(number));
}

export function stat({ label, value, detail, tone }) {
  return h('div', { class: ['stat', tone && `stat-${tone}`] },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value' }, value),
    detail ? h('div', { class: 'stat-detail' }, detail) : null);
}

/** A message box; errors are announced (role=alert), others are polite. */
export function notice({ kind = 'info', title, message, actions = [] }) {
  return h('div', { class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : 'status' },
    h('div', { class: 'notice-text' },
      title ? h('strong', { class: 'notice-title' }, title) : null,
      message ? h('span', {}, message) : null),
    actions.length ? h('div', { class: 'notice-actions' }, actions) : null);
}

export function errorNotice(error, retry) {
  const title = error && error.status === 0 ? 'Connection problem' : 'Something went wrong';
  return notice({
    kind: 'error',
    title,
    message: (error && error.message) || String(error),
    actions: retry ? [h('button', { type: 'button', class: 'button button-small', on: { click: retry } }, 'Retry')] : [],
  });
}

/**
 * One time format everywhere: relative words ("3 min ago", "in 23 h") with the absolute time
 * (ISO, UTC) on hover. ``seconds`` is the age the server measured, when it gave one (no clock
 * skew); the words stay true as time passes (see tickTimes).
 */
export function relativeTime(seconds, isoDate) {
  if (!isoDate) return h('span', { class: 'muted' }, 'never');
  const age = seconds === null || seconds === undefined || !Number.isFinite(Number(seconds)) ? secondsSince(isoDate) : Number(seconds);
  const node = h('time', { datetime: isoDate, title: absolute(isoDate), class: 'relative-time', dataset: { age: String(age), at: String(Date.now()) } });
  node.textContent = ageWords(age, isoDate);
  return node;
}

/** A date as relativeTime shows it, measured by this browser's clock. */
export function timeText(isoDate) {
  return relativeTime(null, isoDate);
}

function ageWords(age, isoDate) {
  if (age === null || !Number.isFinite(age)) return 'never';
  return age < -5 ? until(isoDate) : ago(age);
}

/** Bring every relative time on the page up to date (the application calls this on a timer). */
export function tickTimes(root = document) {
  const now = Date.now();
  for (const node of root.querySelectorAll('time.relative-time')) {
    const age = Number(node.dataset.age) + (now - Number(node.dataset.at)) / 1000;
    const words = ageWords(age, node.getAttribute('datetime'));
    if (node.textContent !== words) node.textContent = words;
  }
}

/**
 * What shows when a page's data could not be loaded: the reason and a Retry button, in place
 * of the content (never "Loading…" for ever).
 */
export function errorState(error, retry) {
  return h('div', { class: 'error-state' }, errorNotice(error, retry));
}

export function button(label, { kind = 'base', onClick, type = 'button', attrs = {} } = {}) {
  return h('button', { type, class: ['button', `button-${kind}`], on: onClick ? { click: onClick } : undefined, ...attrs }, label);
}

/** Copy text to the clipboard; says so on the button and to screen readers. */
export function copyButton(getText, label) {
  const btn = h('button', { type: 'button', class: 'button button-base button-small copy-button', 'aria-label': label }, 'Copy');
  btn.addEventListener('click', async () => {
    const text = getText();
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      copied = false;
    }
    btn.textContent = copied ? 'Copied' : 'Select and copy';
    announce(copied ? 'Copied to the clipboard' : 'Could not copy: select the text and copy it');
    window.setTimeout(() => { btn.textContent = 'Copy'; }, 2500);
  });
  return btn;
}

/**
 * Ask before doing something that cannot be undone. Resolves true when confirmed; the action
 * runs while the dialog shows progress, and its error stays in the dialog.
 */
export function confirmDialog({ title, message, confirmLabel, action, body = null, confirmKind = 'negative' }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const errorArea = h('div', { class: 'dialog-error' });
    const cancel = button('Cancel', { kind: 'base' });
    const confirm = button(confirmLabel, { kind: confirmKind });
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-title', 'aria-describedby': 'dialog-message' },
      h('h2', { id: 'dialog-title', class: 'dialog-title' }, title),
      h('p', { id: 'dialog-message' }, message),
      body,
      errorArea,
      h('div', { class: 'dialog-actions' }, cancel, confirm));
    let done = false;
    const close = (result) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      if (!result && opener && document.contains(opener)) opener.focus();
      resolve(result);
    };
    cancel.addEventListener('click', () => close(false));
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); close(false); });
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      cancel.disabled = true;
      confirm.textContent = 'Working…';
      try {
        await action();
        close(true);
      } catch (error) {
        errorArea.replaceChildren(errorNotice(error));
        confirm.disabled = false;
        cancel.disabled = false;
        confirm.textContent = confirmLabel;
      }
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A labelled form field with its hint and the place for its error message. */
export function field({ id, label, input, hint }) {
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  input.id = id;
  input.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h('div', { class: 'field', dataset: { field: id } },
    h('label', { for: id, class: 'field-label' }, label),
    input,
    hint ? h('p', { class: 'field-hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }));
}

export function showFieldError(form, id, message) {
  const input = form.querySelector(`#${CSS.escape(id)}`);
  const box = form.querySelector(`#${CSS.escape(id)}-error`);
  if (!input || !box) return false;
  box.textContent = message;
  box.hidden = false;
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  return true;
}

export function clearFieldErrors(form) {
  for (const box of form.querySelectorAll('.field-error')) {
    box.textContent = '';
    box.hidden = true;
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

/** The sign-out button: a POST with the CSRF token, never a link (a GET changes nothing). */
export function signOutButton(className, before = () => {}) {
  const control = h('button', { type: 'button', class: className }, 'Sign out');
  control.addEventListener('click', () => {
    before();
    control.disabled = true;
    signOut().catch((error) => {
      control.disabled = false;
      control.textContent = 'Sign out failed, try again';
      announce(error.message);
    });
  });
  return control;
}

/**
 * A menu of actions behind a small button ("Actions for NAME"): opens below the button (fixed,
 * so no scrolling container cuts it), closes on a choice, Escape, a click elsewhere or scrolling.
 */
export function actionMenu(label, items, focusKey) {
  const trigger = h('button', {
    type: 'button', class: 'menu-button', 'aria-label': label, 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    dataset: focusKey ? { focusKey } : undefined,
  }, h('span', { 'aria-hidden': 'true' }, '⋯'));
  let menu = null;
  const close = ({ focus = false } = {}) => {
    if (!menu) return;
    menu.remove();
    menu = null;
    trigger.setAttribute('aria-expanded', 'false');
    document.removeEventListener('click', outside, true);
    window.removeEventListener('scroll', onScroll, true);
    window.removeEventListener('resize', onScroll);
    if (focus) trigger.focus();
  };
  const outside = (event) => {
    if (menu && !menu.contains(event.target) && !trigger.contains(event.target)) close();
  };
  const onScroll = () => close();
  const keys = (event) => {
    const entries = [...menu.querySelectorAll('[role="menuitem"]')];
    const index = entries.indexOf(document.activeElement);
    if (event.key === 'Escape' || event.key === 'Tab') {
      event.preventDefault();
      close({ focus: true });
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      entries[(index + step + entries.length) % entries.length].focus();
    }
  };
  trigger.addEventListener('click', () => {
    if (menu) {
      close();
      return;
    }
    menu = h('div', { class: 'menu', role: 'menu', 'aria-label': label, on: { keydown: keys } },
      items.map((item) => (item.href
        ? h('a', { class: 'menu-item', role: 'menuitem', href: item.href, 'data-nav': true, tabindex: '-1', on: { click: () => close() } }, item.label)
        : h('button', {
          type: 'button', class: ['menu-item', item.danger && 'menu-item-danger'], role: 'menuitem', tabindex: '-1',
          on: { click: () => { close(); item.onSelect(); } },
        }, item.label))));
    document.body.appendChild(menu);
    const box = trigger.getBoundingClientRect();
    const width = menu.offsetWidth;
    const height = menu.offsetHeight;
    const left = Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8));
    const below = box.bottom + 4 + height <= window.innerHeight - 8;
    menu.style.left = `${left}px`;
    menu.style.top = `${below ? box.bottom + 4 : Math.max(8, box.top - height - 4)}px`;
    trigger.setAttribute('aria-expanded', 'true');
    document.addEventListener('click', outside, true);
    window.addEventListener('scroll', onScroll, true);
    window.addEventListener('resize', onScroll);
    menu.querySelector('[role="menuitem"]').focus();
  });
  return trigger;
}

/** What a bulk action did, item by item: failures first and open, successes folded away. */
export function bulkResult(result, verb) {
  const failed = result.results.filter((item) => item.result !== 'ok');
  const succeeded = result.results.filter((item) => item.result === 'ok');
  const total = result.results.length;
  const title = failed.length
    ? `${verb} ${count(result.succeeded)} of ${count(total)} cluster${total === 1 ? '' : 's'}; ${count(result.failed)} failed`
    : `${verb} ${count(result.succeeded)} cluster${result.succeeded === 1 ? '' : 's'}`;
  const row = (item) => h('li', { class: ['bulk-item', `bulk-item-${item.result}`], dataset: { name: item.name, result: item.result } },
    h('span', { class: 'bulk-item-name' }, item.name),
    h('span', { class: 'bulk-item-outcome' }, item.result === 'ok' ? 'Done' : (item.result === 'not_found' ? 'Not found' : 'Failed')),
    item.message ? h('span', { class: 'bulk-item-message muted' }, item.message) : null);
  return h('div', { class: ['notice', failed.length ? 'notice-warning' : 'notice-success', 'bulk-result'], role: 'status', id: 'bulk-result' },
    h('div', { class: 'notice-text' },
      h('strong', { class: 'notice-title' }, title),
      failed.length ? h('ul', { class: 'bulk-list', 'aria-label': 'Failed' }, failed.map(row)) : null,
      succeeded.length ? h('details', { class: 'bulk-done', open: failed.length === 0 && succeeded.length <= 10 },
        h('summary', {}, `Done (${count(succeeded.length)})`),
        h('ul', { class: 'bulk-list', 'aria-label': 'Done' }, succeeded.map(row))) : null));
}
