// The application: who is signed in, which page shows, and keeping its data fresh.

import { api, setCsrfToken } from './api.js';
import { announce, h, replace } from './dom.js';
import { button, errorNotice, relativeTime, signOutButton, tickTimes } from './components.js';
import * as overviewPage from './pages/overview.js';
import * as clustersPage from './pages/clusters.js';
import * as clusterPage from './pages/cluster.js';
import * as enrolPage from './pages/enrol.js';
import * as settingsPage from './pages/settings.js';
import * as accessPages from './pages/access.js';
import * as instancesPage from './pages/instances.js';
import * as clusterInstancesPage from './pages/cluster-instances.js';
import * as auditPage from './pages/audit.js';
import { allows, roleOf, ROLE_WORDS } from './roles.js';

const PRODUCT = 'MicroCloud Cluster Manager';
const REFRESH_MS = 30000;
const TICK_MS = 15000;
const RETURN_KEY = 'mcm:return-to';
const ROUTES = [
  { pattern: /^\/$/, section: 'overview', page: overviewPage },
  { pattern: /^\/clusters$/, section: 'clusters', page: clustersPage },
  { pattern: /^\/clusters\/([^/]+)$/, section: 'clusters', page: clusterPage },
  { pattern: /^\/clusters\/([^/]+)\/instances$/, section: 'clusters', page: clusterInstancesPage },
  { pattern: /^\/instances$/, section: 'instances', page: instancesPage },
  { pattern: /^\/audit$/, section: 'audit', page: auditPage },
  { pattern: /^\/enrol$/, section: 'enrol', page: enrolPage },
  { pattern: /^\/settings$/, section: 'settings', page: settingsPage },
];

const main = document.getElementById('main');
const sidenav = document.getElementById('sidenav');
const userArea = document.getElementById('user-area');

let configuration = null;
let current = null; // { instance, running: the refresh in flight, again: one asked for meanwhile }
let lastRefresh = 0;
let updatedLabel = null;

function setTitle(title) {
  document.title = title ? `${title} · ${PRODUCT}` : PRODUCT;
}

function markUpdated() {
  lastRefresh = Date.now();
  if (updatedLabel) {
    replace(updatedLabel, 'Updated ', relativeTime(0, new Date(lastRefresh).toISOString()));
  }
}

/**
 * Refresh the current page. A refresh asked for while one is in flight (a click on Refresh
 * during the first load) is not dropped: it runs when that one ends, so what the user sees
 * always follows their last click.
 */
function refreshNow({ announceIt = false } = {}) {
  const entry = current;
  if (!entry || !entry.instance.refresh) return;
  if (entry.running) {
    entry.again = { announceIt: announceIt || Boolean(entry.again && entry.again.announceIt) };
    return;
  }
  entry.running = (async () => {
    try {
      await entry.instance.refresh();
      if (current === entry) {
        markUpdated();
        if (announceIt) announce('Data refreshed');
      }
    } catch {
      // The page shows what went wrong, with a way to try again.
      if (current === entry && updatedLabel && updatedLabel.textContent === 'Loading…') updatedLabel.textContent = 'Not loaded';
    } finally {
      entry.running = null;
      const again = entry.again;
      entry.again = null;
      if (again && current === entry) refreshNow(again);
    }
  })();
}

/** "Updated just now [Refresh]" for a page header (the exact time on hover). */
function refreshControl() {
  updatedLabel = h('span', { class: 'refresh-time' }, 'Loading…');
  return h('div', { class: 'refresh' },
    updatedLabel,
    button('Refresh', { kind: 'base', onClick: () => refreshNow({ announceIt: true }), attrs: { class: 'button button-base button-small' } }));
}

function go(path, { replace: replaceEntry = false } = {}) {
  if (replaceEntry) window.history.replaceState({}, '', path);
  else window.history.pushState({}, '', path);
  route({ moveFocus: true });
}

function setQuery(query) {
  const search = new URLSearchParams(query).toString();
  const path = window.location.pathname + (search ? `?${search}` : '');
  window.history.replaceState({}, '', path);
}

function highlightSection(section) {
  for (const link of sidenav.querySelectorAll('a[data-section]')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function route({ moveFocus }) {
  if (current && current.instance.destroy) current.instance.destroy();
  current = null;
  updatedLabel = null;
  const path = window.location.pathname;
  const found = ROUTES.map((r) => ({ ...r, match: r.pattern.exec(path) })).find((r) => r.match);
  main.replaceChildren();
  const ctx = {
    configuration,
    params: found ? found.match.slice(1).map(decodeURIComponent) : [],
    query: new URLSearchParams(window.location.search),
    go,
    setQuery,
    setTitle,
    refreshControl,
    markUpdated,
  };
  highlightSection(found ? found.section : null);
  const page = found ? found.page : accessPages.notFound;
  const instance = page.mount(main, ctx) || {};
  current = { instance, running: null, again: null };
  if (moveFocus) {
    const heading = main.querySelector('#page-title');
    if (heading) heading.focus();
    else main.focus();
    window.scrollTo(0, 0);
  }
  refreshNow();
}

/** Whether someone is signed in with a role (any role lets them in; pages offer what it allows). */
function signedInWithRole() {
  return Boolean(configuration && configuration.user && roleOf(configuration));
}

/** The navigation shows only the sections the role may use (data-role: the role needed). */
function fitNavigation() {
  for (const item of sidenav.querySelectorAll('li[data-role]')) {
    item.hidden = !allows(configuration, item.dataset.role);
  }
}

function showUser(user) {
  if (!user) {
    userArea.replaceChildren();
    return;
  }
  const role = roleOf(configuration);
  userArea.replaceChildren(
    h('span', { class: 'user-name', title: user.email || user.subject }, user.name || user.email || user.subject),
    role ? h('span', { class: 'user-role', id: 'user-role' }, ROLE_WORDS[role] || role) : null,
    signOutButton('signout', () => sessionStorage.removeItem(RETURN_KEY)));
}

function showOutside(page, options) {
  if (current && current.instance.destroy) current.instance.destroy();
  current = null;
  sidenav.hidden = true;
  document.body.classList.add('outside');
  main.replaceChildren();
  page(main, { setTitle, rememberReturn, ...options });
}

function rememberReturn() {
  const path = window.location.pathname + window.location.search;
  if (path !== '/') sessionStorage.setItem(RETURN_KEY, path);
}

function startApp() {
  sidenav.hidden = false;
  document.body.classList.remove('outside');
  const back = sessionStorage.getItem(RETURN_KEY);
  sessionStorage.removeItem(RETURN_KEY);
  if (back && back.startsWith('/') && !back.startsWith('//') && window.location.pathname === '/') {
    window.history.replaceState({}, '', back);
  }
  route({ moveFocus: false });
}

async function boot() {
  try {
    configuration = await api.configuration();
  } catch (error) {
    showOutside((root) => {
      setTitle('Unavailable');
      replace(root, h('div', { class: 'outside-card' },
        h('h1', { class: 'page-title', id: 'page-title', tabindex: '-1' }, 'The Cluster Manager is not available'),
        errorNotice(error, () => window.location.reload())));
    });
    return;
  }
  setCsrfToken(configuration.csrf_token);
  showUser(configuration.user);
  if (!configuration.user) {
    showOutside(accessPages.signIn);
  } else if (!roleOf(configuration)) {
    showOutside(accessPages.notAuthorised, { user: configuration.user });
  } else {
    fitNavigation();
    startApp();
  }
}

document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target instanceof Element ? event.target.closest('a[data-nav]') : null;
  if (!link || link.target || link.origin !== window.location.origin) return;
  if (!signedInWithRole()) return;
  event.preventDefault();
  if (link.pathname + link.search !== window.location.pathname + window.location.search) go(link.pathname + link.search);
});

window.addEventListener('popstate', () => {
  if (signedInWithRole()) route({ moveFocus: true });
});

window.addEventListener('mcm:signed-out', (event) => {
  if (!configuration) return;
  configuration = { ...configuration, user: null };
  showUser(null);
  showOutside(accessPages.signIn, { reason: event.detail });
});

window.setInterval(() => {
  if (document.hidden || !current) return;
  refreshNow();
}, REFRESH_MS);

// "3 min ago" stays true between refreshes.
window.setInterval(() => {
  if (!document.hidden) tickTimes(main);
}, TICK_MS);

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && current && Date.now() - lastRefresh >= REFRESH_MS) refreshNow();
});

boot();
