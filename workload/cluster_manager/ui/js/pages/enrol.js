// Enrol a cluster: create a join token, show it once with the command, list and revoke tokens.

import { api } from '../api.js';
import { announce, h, replace } from '../dom.js';
import {
  button, card, clearFieldErrors, confirmDialog, copyButton, countBadge, errorNotice, errorState, field,
  notice, pageHeader, showFieldError, timeText,
} from '../components.js';
import { isAdmin } from '../roles.js';

const EXPIRIES = [['1h', '1 hour'], ['1d', '1 day'], ['7d', '7 days'], ['30d', '30 days']];
const FIELDS = { cluster_name: 'token-name', description: 'token-description', expiry: 'token-expiry' };

function tokenResult(token) {
  const tokenText = h('code', { class: 'secret', id: 'join-token' }, token.token);
  const commandText = h('code', { class: 'secret', id: 'join-command' }, token.command);
  return h('section', { class: 'card card-success', 'aria-labelledby': 'token-title', id: 'token-result', tabindex: '-1' },
    h('div', { class: 'card-header' }, h('h2', { class: 'card-title', id: 'token-title' }, `Join token for ${token.name}`)),
    h('div', { class: 'card-body' },
      h('p', {}, 'Run this command on one member of the MicroCloud cluster. The token is shown only now; it works once and expires ',
        timeText(token.expires_at), '.'),
      h('div', { class: 'copy-block' },
        h('div', { class: 'copy-label', id: 'join-command-label' }, 'Command'),
        h('div', { class: 'copy-row' }, h('pre', { class: 'code', 'aria-labelledby': 'join-command-label' }, commandText), copyButton(() => token.command, 'Copy the join command'))),
      h('div', { class: 'copy-block' },
        h('div', { class: 'copy-label', id: 'join-token-label' }, 'Token'),
        h('div', { class: 'copy-row' }, h('pre', { class: 'code code-wrap', 'aria-labelledby': 'join-token-label' }, tokenText), copyButton(() => token.token, 'Copy the join token')))));
}

export function mount(root, ctx) {
  ctx.setTitle('Enrol a cluster');
  const admin = isAdmin(ctx.configuration);
  const name = h('input', { class: 'input', type: 'text', maxlength: 63, required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,62}' });
  const description = h('input', { class: 'input', type: 'text', maxlength: 1024, autocomplete: 'off' });
  const expiry = h('select', { class: 'select' }, EXPIRIES.map(([value, label]) => h('option', { value, selected: value === '1d' }, label)));
  const submit = button('Create join token', { kind: 'positive', type: 'submit' });
  const formProblem = h('div', {});
  const form = h('form', { class: 'form', novalidate: true, 'aria-labelledby': 'enrol-form-title' },
    field({ id: FIELDS.cluster_name, label: 'Cluster name', input: name, hint: 'The name the cluster will have here: letters, digits, “.”, “_” or “-”.' }),
    field({ id: FIELDS.description, label: 'Description (optional)', input: description }),
    field({ id: FIELDS.expiry, label: 'Token expires after', input: expiry }),
    formProblem,
    h('div', { class: 'form-actions' }, submit));
  const result = h('div', {});
  const tokensBody = h('div', {}, h('p', { class: 'loading' }, 'Loading tokens…'));
  const tokensProblem = h('div', {});

  root.appendChild(h('div', { class: 'page' },
    pageHeader({ title: 'Enrol a cluster', lead: 'Create a join token, then run the join command on the MicroCloud you want to manage here.', actions: [ctx.refreshControl()] }),
    h('div', { class: 'grid grid-enrol' },
      h('div', { class: 'stack' },
        admin ? card({ title: 'New join token', id: 'enrol-form', children: form })
          : notice({ kind: 'info', title: 'Only administrators create and revoke join tokens.', message: 'The tokens waiting for their clusters are listed below.' }),
        result),
      card({ title: 'How enrolment works', id: 'enrol-help', className: 'card-muted', children: h('ol', { class: 'steps' },
        h('li', {}, 'Create a join token named after the cluster.'),
        h('li', {}, 'On one member of that MicroCloud, run the join command shown.'),
        h('li', {}, 'The cluster appears under Clusters and sends a heartbeat every minute.')) })),
    card({ title: 'Pending join tokens', id: 'pending-tokens', className: 'card-wide', children: [tokensProblem, tokensBody] })));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    formProblem.replaceChildren();
    const clusterName = name.value.trim();
    if (!clusterName) {
      showFieldError(form, FIELDS.cluster_name, 'Enter a name for the cluster.');
      return;
    }
    submit.disabled = true;
    try {
      const token = await api.createToken({ cluster_name: clusterName, description: description.value, expiry: expiry.value });
      replace(result, tokenResult(token));
      form.reset();
      result.querySelector('#token-result').focus();
      announce(`Join token created for ${token.name}`);
      await refresh().catch(() => {});
    } catch (error) {
      const bad = error.field ? error.field(Object.keys(FIELDS)) : null;
      if (bad && showFieldError(form, FIELDS[bad], error.message)) return;
      if (error.status === 409) {
        showFieldError(form, FIELDS.cluster_name, error.message);
        return;
      }
      replace(formProblem, errorNotice(error));
    } finally {
      submit.disabled = false;
    }
  });

  async function revoke(token) {
    const revoked = await confirmDialog({
      title: `Revoke the token for ${token.name}?`,
      message: 'A cluster can no longer join with this token. You can create a new one at any time.',
      confirmLabel: 'Revoke token',
      action: () => api.revokeToken(token.name),
    });
    if (revoked) {
      announce(`Token for ${token.name} revoked`);
      const shown = result.querySelector('#token-title');
      if (shown && shown.textContent === `Join token for ${token.name}`) result.replaceChildren();
      await refresh().catch(() => {});
      const heading = root.querySelector('#pending-tokens-title');
      if (heading) { heading.tabIndex = -1; heading.focus(); }
    }
  }

  function renderTokens(tokens) {
    if (!tokens.length) {
      replace(tokensBody, h('p', { class: 'empty-state' }, 'No pending tokens.'));
      return;
    }
    replace(tokensBody, h('div', { class: 'table-scroll' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Cluster name'),
        h('th', { scope: 'col', class: 'narrow-hide' }, 'Description'),
        h('th', { scope: 'col', class: 'narrow-hide' }, 'Created'),
        h('th', { scope: 'col' }, 'Expires'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, tokens.map((token) => h('tr', {},
        h('td', { class: 'cell-name' }, token.name),
        h('td', { class: 'narrow-hide' }, token.description || h('span', { class: 'muted' }, '–')),
        h('td', { class: 'narrow-hide' }, timeText(token.created_at)),
        h('td', {}, token.expired ? countBadge('Expired', 'stale') : timeText(token.expires_at)),
        h('td', { class: 'cell-actions' }, !admin ? null : button('Revoke', {
          kind: 'base',
          onClick: () => revoke(token),
          attrs: { class: 'button button-base button-small', 'aria-label': `Revoke the token for ${token.name}`, dataset: { focusKey: `revoke-${token.name}` } },
        }))))))));
  }

  let shown = false;
  async function refresh() {
    try {
      renderTokens(await api.tokens());
      shown = true;
      tokensProblem.replaceChildren();
    } catch (error) {
      const retry = () => refresh().then(ctx.markUpdated).catch(() => {});
      if (shown) replace(tokensProblem, errorNotice(error, retry));
      else replace(tokensBody, errorState(error, retry));
      throw error;
    }
  }

  return { refresh };
}
