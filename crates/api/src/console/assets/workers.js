// The workers page: which worker holds a lease on which task, since when, its last heartbeat and
// when the lease expires. Refreshed by the project's events.
import { call, session, onProjectChange } from './api.js';
import { el, when, duration } from './dom.js';

export function render(container, onError) {
  const projectId = session.current.project.id;
  const body = el('tbody', { id: 'leases-body' });
  const empty = el('p', { class: 'empty', text: 'No worker holds a lease now.', hidden: true });
  const summary = el('span', { class: 'muted', id: 'workers-summary' });
  container.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Workers' }), summary),
    el('div', { class: 'table-wrap' }, el('table', { class: 'leases' },
      el('caption', { class: 'visually-hidden', text: 'Leases held by workers' }),
      el('thead', {}, el('tr', {}, ['Worker', 'Task', 'Attempt', 'Since', 'Last heartbeat', 'Lease expires']
        .map((h) => el('th', { scope: 'col', text: h })))),
      body)),
    empty);
  let closed = false;
  let last = null;
  let loadedAt = 0;

  function paint() {
    const now = new Date(last.now).getTime() + (Date.now() - loadedAt);
    body.replaceChildren(...last.leases.map((lease) => {
      const root = lease.parent_job_id || lease.job_id;
      const expiresIn = new Date(lease.lease_expires_at).getTime() - now;
      return el('tr', { dataset: { jobId: lease.job_id } },
        el('td', { class: 'worker', text: lease.worker_id }),
        el('td', {}, el('a', { href: `#/job/${encodeURIComponent(projectId)}/${encodeURIComponent(root)}`, class: 'job-link' },
          el('span', { class: 'job-type', text: `${lease.service} · ${lease.job_type}` }),
          el('span', { class: 'job-id', text: lease.job_id }))),
        el('td', { text: lease.attempt }),
        el('td', { class: 'time', text: when(lease.started_at) }),
        el('td', { class: 'time', text: `${duration(now - new Date(lease.last_heartbeat_at).getTime())} ago` }),
        el('td', { class: expiresIn < 5000 ? 'time error' : 'time', text: expiresIn > 0 ? `in ${duration(expiresIn)}` : 'expired' }));
    }));
    const workers = new Set(last.leases.map((l) => l.worker_id)).size;
    summary.textContent = `${workers} worker${workers === 1 ? '' : 's'}, ${last.leases.length} lease${last.leases.length === 1 ? '' : 's'}`;
    empty.hidden = last.leases.length > 0;
  }

  async function load() {
    try {
      last = await call('GET', `/v1/${encodeURIComponent(projectId)}/leases`);
      loadedAt = Date.now();
      if (!closed) paint();
    } catch (error) {
      onError(error);
    }
  }

  const stop = onProjectChange(projectId, load);
  const ticker = setInterval(() => { if (last) paint(); }, 1000);
  load();
  return () => { closed = true; stop(); clearInterval(ticker); };
}
