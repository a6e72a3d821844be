// Building the page without HTML strings: every job-supplied string goes in as text.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = String(value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

export const STATUSES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

export function statusBadge(status) {
  return el('span', { class: `status status-${String(status).toLowerCase()}`, text: status });
}

export function when(rfc3339) {
  if (!rfc3339) return '—';
  const date = new Date(rfc3339);
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function ago(rfc3339, now = Date.now()) {
  if (!rfc3339) return '—';
  return duration(now - new Date(rfc3339).getTime());
}

export function duration(ms) {
  if (!Number.isFinite(ms)) return '—';
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

export function announce(message) {
  const live = document.getElementById('live');
  live.textContent = message;
}

export function errorBox(error) {
  return el('p', { class: 'error', role: 'alert', text: error.message || String(error) });
}
