// Small hand-written SVG charts: donuts with legends, meters and load bars.
// Each chart says in text what it shows (legend, labels, aria attributes).

import { h, s } from './dom.js';
import { count, percent, short } from './format.js';

const COLOURS = {
  // health
  healthy: '#0e8420',
  warning: '#f99b11',
  stale: '#7a1421',
  pending: '#8a8a8a',
  // instances
  running: '#0e8420',
  stopped: '#8a8a8a',
  frozen: '#24598f',
  error: '#c7162b',
  // members and Ceph
  online: '#0e8420',
  offline: '#c7162b',
  evacuated: '#f99b11',
  blocked: '#c7162b',
  upgrading: '#24598f',
};
const SPARE = ['#24598f', '#7b5ea7', '#0f8b8d', '#b35c00', '#5b6770', '#a2295b'];

// Font size of the total in the ring by its length in characters ("7", "950", "10k", "1.2M").
const CENTRE_SIZES = [24, 24, 24, 24, 21, 18, 16, 14];

export function colourFor(label, index = 0) {
  return COLOURS[String(label).toLowerCase()] || SPARE[index % SPARE.length];
}

/**
 * A donut of parts [{label, value}] with the total in the middle and a legend beside it.
 * The legend carries the numbers, so the picture itself is hidden from screen readers.
 */
export function donut({ title, parts, centreLabel, emptyText = 'Nothing reported yet' }) {
  const total = parts.reduce((sum, part) => sum + (Number(part.value) || 0), 0);
  const radius = 46;
  const ring = s('svg', { viewBox: '0 0 120 120', class: 'donut-svg', 'aria-hidden': 'true', focusable: 'false' });
  ring.appendChild(s('circle', { cx: 60, cy: 60, r: radius, fill: 'none', stroke: '#e5e5e5', 'stroke-width': 14 }));
  const arcs = s('g', { transform: 'rotate(-90 60 60)' });
  let offset = 0;
  const shown = parts.filter((part) => Number(part.value) > 0);
  shown.forEach((part, index) => {
    const share = (Number(part.value) / total) * 100;
    const gap = shown.length > 1 ? Math.min(0.8, share / 3) : 0;
    arcs.appendChild(s('circle', {
      cx: 60, cy: 60, r: radius, fill: 'none',
      stroke: part.colour || colourFor(part.label, index),
      'stroke-width': 14,
      pathLength: 100,
      'stroke-dasharray': `${Math.max(0, share - gap)} ${100 - share + gap}`,
      'stroke-dashoffset': -offset,
    }));
    offset += share;
  });
  ring.appendChild(arcs);
  // The total fits inside the hole (78 units across) at any count: short numbers, and a
  // smaller size for the longer ones ("1.2M").
  const totalText = short(total);
  const size = CENTRE_SIZES[Math.min(totalText.length, CENTRE_SIZES.length - 1)];
  const centre = s('text', { x: 60, y: 62, 'text-anchor': 'middle', class: 'donut-total', 'font-size': size }, totalText);
  ring.appendChild(centre);
  ring.appendChild(s('title', {}, `${count(total)} ${centreLabel || 'in total'}`));
  ring.appendChild(s('text', { x: 60, y: 80, 'text-anchor': 'middle', class: 'donut-caption' }, centreLabel || 'total'));
  const legend = h('ul', { class: 'legend', 'aria-label': title });
  if (total === 0) {
    legend.appendChild(h('li', { class: 'legend-empty' }, emptyText));
  }
  parts.forEach((part, index) => {
    const value = Number(part.value) || 0;
    if (total > 0 && value === 0 && !part.always) return;
    const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    swatch.style.background = part.colour || colourFor(part.label, shown.indexOf(part) >= 0 ? shown.indexOf(part) : index);
    const label = part.href
      ? h('a', { href: part.href, 'data-nav': true }, part.label)
      : h('span', {}, part.label);
    legend.appendChild(h('li', {},
      swatch, h('span', { class: 'legend-label' }, label),
      h('span', { class: 'legend-value', title: count(value) }, short(value)),
      h('span', { class: 'legend-share' }, total ? percent(value / total) : '')));
  });
  return h('div', { class: 'donut-frame' }, h('div', { class: 'donut' }, ring, legend));
}

/** How full something is: a bar with an optional threshold mark, as an ARIA meter. */
export function meter({ label, ratio, threshold = null, detail = '', compact = false }) {
  const known = ratio !== null && ratio !== undefined && Number.isFinite(Number(ratio));
  const value = known ? Math.max(0, Math.min(1, Number(ratio))) : 0;
  const over = known && threshold !== null && value * 100 > threshold;
  const level = !known ? 'unknown' : over ? (value >= 0.9 ? 'critical' : 'over') : 'normal';
  const bar = h('div', {
    class: ['meter', `meter-${level}`, compact && 'meter-compact'],
    role: 'meter',
    'aria-label': label,
    'aria-valuemin': 0,
    'aria-valuemax': 100,
    'aria-valuenow': known ? Math.round(value * 100) : null,
    'aria-valuetext': known
      ? `${percent(value)}${detail ? `, ${detail}` : ''}${over ? `, above the ${threshold}% threshold` : ''}`
      : 'not reported',
  });
  const fill = h('div', { class: 'meter-fill' });
  fill.style.width = `${(value * 100).toFixed(2)}%`;
  bar.appendChild(fill);
  if (threshold !== null && threshold > 0 && threshold < 100) {
    const mark = h('div', { class: 'meter-threshold', title: `Threshold ${threshold}%` });
    mark.style.left = `${threshold}%`;
    bar.appendChild(mark);
  }
  if (compact) {
    return h('div', { class: 'meter-cell' }, bar, h('span', { class: ['meter-value', over && 'text-over'] }, known ? percent(value) : '–'));
  }
  return h('div', { class: 'meter-block' },
    h('div', { class: 'meter-head' },
      h('span', { class: 'meter-label' }, label),
      h('span', { class: ['meter-value', over && 'text-over'] }, known ? percent(value) : 'Not reported')),
    bar,
    detail ? h('div', { class: 'meter-detail' }, detail) : null);
}

/** Load averages over 1, 5 and 15 minutes as three figures side by side. */
export function loadFigures({ load1, load5, load15 }) {
  return h('dl', { class: 'load-figures' },
    [['1 min', load1], ['5 min', load5], ['15 min', load15]].map(([label, value]) => h('div', { class: 'load-figure' },
      h('dt', {}, label),
      h('dd', {}, Number.isFinite(Number(value)) && value !== '' ? Number(value).toFixed(2) : '–'))));
}

/** Load averages over 1, 5 and 15 minutes as three bars (scaled to the CPUs when known). */
export function loadBars({ load1, load5, load15, cpus }) {
  const values = [['1 min', load1], ['5 min', load5], ['15 min', load15]].map(([label, v]) => [label, Number(v) || 0]);
  const top = Math.max(cpus || 0, ...values.map(([, v]) => v), 0.01);
  const list = h('dl', { class: 'load-bars' });
  for (const [label, value] of values) {
    const bar = h('span', { class: 'load-bar', 'aria-hidden': 'true' });
    bar.style.width = `${Math.max(1, (value / top) * 100).toFixed(1)}%`;
    list.appendChild(h('div', { class: 'load-row' },
      h('dt', {}, label),
      h('dd', {}, h('span', { class: 'load-track' }, bar), h('span', { class: 'load-value' }, value.toFixed(2)))));
  }
  return list;
}
