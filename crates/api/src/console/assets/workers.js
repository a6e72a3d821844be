// The workers page (not yet served by this build).
import { el } from './dom.js';

export function render(container) {
  container.append(el('h1', { text: 'Workers' }));
  return () => {};
}
