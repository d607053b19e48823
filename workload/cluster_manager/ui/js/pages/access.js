// Pages outside the application: sign in, not authorised, not found.

import { h, asset } from '../dom.js';
import { notice, signOutButton } from '../components.js';

function outsideCard(...children) {
  return h('div', { class: 'outside-card' },
    h('img', { class: 'outside-logo', src: asset('icons/logo.svg'), alt: '', width: 48, height: 48 }),
    children);
}

export function signIn(root, { setTitle, rememberReturn, reason }) {
  setTitle('Sign in');
  const link = h('a', { class: 'button button-positive button-large', href: '/oidc/login', on: { click: rememberReturn } }, 'Sign in');
  root.appendChild(outsideCard(
    h('h1', { class: 'page-title', id: 'page-title', tabindex: '-1' }, 'MicroCloud Cluster Manager'),
    h('p', { class: 'page-lead' }, 'One place to enrol your MicroCloud clusters and watch their resource usage and health.'),
    reason ? notice({ kind: 'info', title: 'You are signed out.', message: reason }) : null,
    link,
    h('p', { class: 'muted small' }, 'You sign in with your organisation’s identity provider.')));
  if (reason) link.focus();
}

export function notAuthorised(root, { setTitle, user }) {
  setTitle('Not authorised');
  root.appendChild(outsideCard(
    h('h1', { class: 'page-title', id: 'page-title', tabindex: '-1' }, 'You are not authorised to use the Cluster Manager'),
    h('p', { class: 'page-lead' },
      'You are signed in as ', h('strong', {}, user.name || user.email || user.subject),
      ', but this account is in none of the groups that may use the Cluster Manager (administrators, operators or viewers).'),
    notice({
      kind: 'info',
      message: `Your groups: ${user.groups && user.groups.length ? user.groups.join(', ') : 'none'}. Ask an administrator to add you to one of these groups, then sign in again.`,
    }),
    signOutButton('button button-base')));
}

export const notFound = {
  mount(root, { setTitle }) {
    setTitle('Page not found');
    root.appendChild(h('div', { class: 'page' },
      h('h1', { class: 'page-title', id: 'page-title', tabindex: '-1' }, 'Page not found'),
      h('p', {}, 'There is nothing at this address. ', h('a', { href: '/', 'data-nav': true }, 'Go to the overview'), '.')));
    return {};
  },
};
