// Pieces every page uses: headers, cards, badges, notices, dialogs, copy buttons.

import { signOut } from './api.js';
import { announce, h } from './dom.js';
import { absolute, ago, count, secondsSince, short, until } from './format.js';

const HEALTH_TEXT = {
  healthy: 'Healthy',
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
export function confirmDialog({ title, message, confirmLabel, action }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const errorArea = h('div', { class: 'dialog-error' });
    const cancel = button('Cancel', { kind: 'base' });
    const confirm = button(confirmLabel, { kind: 'negative' });
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-title', 'aria-describedby': 'dialog-message' },
      h('h2', { id: 'dialog-title', class: 'dialog-title' }, title),
      h('p', { id: 'dialog-message' }, message),
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
