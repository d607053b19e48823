// Numbers, sizes, percentages and times as people read them.

const integer = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const twoDecimals = new Intl.NumberFormat('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

export function count(value) {
  return integer.format(Number(value) || 0);
}

/** "950", "10k", "1.2M": short enough for a legend or the middle of a ring (k, not K). */
export function short(value) {
  const number = Number(value) || 0;
  if (Math.abs(number) < 1000) return integer.format(number);
  return compact.format(number).replace('K', 'k');
}

export function load(value) {
  const number = Number(value);
  return Number.isFinite(number) ? twoDecimals.format(number) : '–';
}

export function bytes(value) {
  let number = Number(value) || 0;
  let unit = 0;
  while (number >= 1024 && unit < UNITS.length - 1) {
    number /= 1024;
    unit += 1;
  }
  const digits = number >= 100 || unit === 0 ? integer : decimal;
  return `${digits.format(number)} ${UNITS[unit]}`;
}

export function percent(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(Number(ratio))) return '–';
  const value = Number(ratio) * 100;
  return `${value > 0 && value < 1 ? '<1' : integer.format(value)}%`;
}

/** "just now", "45 s ago", "3 min ago", "2 h ago", "4 days ago". */
export function ago(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return 'never';
  const s = Math.max(0, Math.round(seconds));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const days = Math.floor(s / 86400);
  return `${days} day${days === 1 ? '' : 's'} ago`;
}

/** "in 23 h", "in 5 days", "expired". */
export function until(date) {
  const seconds = (new Date(date).getTime() - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return '–';
  if (seconds <= 0) return 'expired';
  if (seconds < 3600) return `in ${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 86400 * 2) return `in ${Math.round(seconds / 3600)} h`;
  return `in ${Math.round(seconds / 86400)} days`;
}

/** Seconds from a date until now (negative for a date to come), or null. */
export function secondsSince(date) {
  const parsed = new Date(date).getTime();
  return Number.isNaN(parsed) ? null : (Date.now() - parsed) / 1000;
}

/** The relative words for a date: "3 min ago", "in 23 h", "never". */
export function relative(date) {
  const seconds = secondsSince(date);
  if (seconds === null) return 'never';
  return seconds < -5 ? until(date) : ago(seconds);
}

/** The absolute time, the same everywhere: "2026-12-06 13:04:38 UTC". */
export function absolute(date) {
  const parsed = new Date(date);
  if (Number.isNaN(parsed.getTime())) return '';
  return `${parsed.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function capitalise(text) {
  const value = String(text || '');
  return value.charAt(0).toUpperCase() + value.slice(1).toLowerCase();
}
