// Building the page from data: elements and text nodes only, never HTML strings.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

function applyAttributes(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (key === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (key === 'class') {
      node.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (value === true) {
      node.setAttribute(key, '');
    } else if (key in node && !(node instanceof SVGElement) && typeof value !== 'string') {
      node[key] = value;
    } else {
      node.setAttribute(key, String(value));
    }
  }
}

/** An HTML element: h('a', {href: '/x', class: 'link'}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  applyAttributes(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element, as h() does for HTML. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyAttributes(node, attrs);
  append(node, children);
  return node;
}

/** Replace the children of node; keeps keyboard focus on an element with the same data-focus-key. */
export function replace(node, ...children) {
  const active = document.activeElement;
  const key = active && node.contains(active) ? active.dataset.focusKey : undefined;
  node.replaceChildren();
  append(node, children);
  if (key) {
    const again = node.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

/** Say something to screen readers (the page's polite live region). */
export function announce(message) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  window.setTimeout(() => { region.textContent = message; }, 50);
}

/** Path to a file of the UI (assets live under the version the page was served with). */
export function asset(path) {
  const base = new URL('..', import.meta.url);
  return new URL(path, base).pathname;
}

/** An icon image; decorative unless a label is given. */
export function icon(name, label = '') {
  return h('img', { src: asset(`icons/${name}.svg`), alt: label, width: 16, height: 16, class: 'icon' });
}
