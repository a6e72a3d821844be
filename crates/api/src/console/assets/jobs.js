// The jobs page: filters, keyset pages, and the project's event stream keeping the rows live.
import { call, session } from './api.js';
import { el, statusBadge, when, STATUSES, announce } from './dom.js';

const PAGE_SIZE = 50;
const FILTERS = ['service', 'status', 'job_type', 'resource_id', 'created_since'];

function filterForm(projects, projectId, params, apply) {
  const field = (label, control) => el('label', {}, label, control);
  const input = (name, placeholder) =>
    el('input', { name, value: params.get(name) || '', placeholder, autocomplete: 'off' });
  const statusSelect = el('select', { name: 'status' },
    el('option', { value: '', text: 'any' }),
    STATUSES.map((s) => el('option', { value: s, text: s, selected: params.get('status') === s })));
  const projectSelect = el('select', { name: 'project' },
    projects.map((p) => el('option', { value: p.id, text: p.name ? `${p.name} (${p.id})` : p.id, selected: p.id === projectId })));
  const created = el('input', { name: 'created_since', type: 'datetime-local', step: 1,
    value: (params.get('created_since') || '').replace(/Z$/, '') });
  const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    field('Project', projectSelect),
    field('Service', input('service', 'elb, cfw, waf…')),
    field('Status', statusSelect),
    field('Job type', input('job_type', 'UPGRADE…')),
    field('Resource id', input('resource_id', '')),
    field('Created since (UTC)', created),
    el('div', { class: 'filter-buttons' },
      el('button', { type: 'submit', text: 'Filter' }),
      el('button', { type: 'reset', class: 'secondary', text: 'Clear' })));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    next.set('project', projectSelect.value);
    for (const name of FILTERS) {
      let value = form.elements[name].value.trim();
      if (name === 'created_since' && value) value = `${value.length === 16 ? `${value}:00` : value}Z`;
      if (value) next.set(name, value);
    }
    apply(next);
  });
  form.addEventListener('reset', (event) => {
    event.preventDefault();
    apply(new URLSearchParams({ project: projectSelect.value }));
  });
  return form;
}

function row(job, projectId) {
  const link = el('a', { href: `#/job/${encodeURIComponent(projectId)}/${encodeURIComponent(job.job_id)}`, class: 'job-link' },
    el('span', { class: 'job-type', text: job.job_type }),
    el('span', { class: 'job-id', text: job.job_id }));
  return el('tr', { dataset: { jobId: job.job_id, version: String(job.version) } },
    el('td', {}, link),
    el('td', { class: 'service', text: job.service }),
    el('td', { class: 'status-cell' }, statusBadge(job.status)),
    el('td', { class: 'message', text: job.error_msg || job.message || '' }),
    el('td', { class: 'resource', text: job.resource_id || '' }),
    el('td', { class: 'time', text: when(job.created_at) }),
    el('td', { class: 'time updated', text: when(job.updated_at) }));
}

function matches(job, params) {
  if (job.parent_job_id) return false;
  if (params.get('service') && job.service !== params.get('service')) return false;
  if (params.get('status') && job.status !== params.get('status')) return false;
  if (params.get('job_type') && job.job_type !== params.get('job_type')) return false;
  if (params.get('resource_id') && job.resource_id !== params.get('resource_id')) return false;
  if (params.get('created_since') && new Date(job.created_at) < new Date(params.get('created_since'))) return false;
  return true;
}

export function render(container, params, onError) {
  const projectId = params.get('project') || session.current.project.id;
  const markers = [];
  let nextMarker = null;
  let stream = null;
  let closed = false;

  const body = el('tbody', { id: 'jobs-body' });
  const table = el('table', { class: 'jobs', id: 'jobs-table' },
    el('caption', { class: 'visually-hidden', text: 'Jobs, newest first' }),
    el('thead', {}, el('tr', {},
      ['Job', 'Service', 'Status', 'Message', 'Resource', 'Created', 'Updated'].map((h) => el('th', { scope: 'col', text: h })))),
    body);
  const empty = el('p', { class: 'empty', text: 'No jobs match.', hidden: true });
  const previous = el('button', { type: 'button', class: 'secondary', text: '← Newer', disabled: true });
  const next = el('button', { type: 'button', class: 'secondary', text: 'Older →', disabled: true });
  const liveBadge = el('span', { class: 'live-badge', id: 'live-state', text: 'connecting…' });
  const projects = el('div');

  const apply = (next) => { location.hash = `#/jobs?${next}`; };
  container.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Jobs' }), liveBadge),
    projects,
    el('div', { class: 'table-wrap' }, table),
    empty,
    el('div', { class: 'pager' }, previous, next));

  call('GET', '/v3/projects').then((answer) => {
    projects.replaceWith(filterForm(answer.projects, projectId, params, apply));
  }, onError);

  async function load(marker) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
    if (marker) query.set('marker', marker);
    const answer = await call('GET', `/v1/${encodeURIComponent(projectId)}/jobs?${query}`);
    if (closed) return;
    body.replaceChildren(...answer.jobs.map((job) => row(job, projectId)));
    empty.hidden = answer.jobs.length > 0;
    nextMarker = answer.next_marker;
    next.disabled = !nextMarker;
    previous.disabled = markers.length === 0;
  }

  next.addEventListener('click', () => {
    markers.push(nextMarker);
    load(nextMarker).catch(onError);
  });
  previous.addEventListener('click', () => {
    markers.pop();
    load(markers[markers.length - 1]).catch(onError);
  });

  function onJob(job) {
    const existing = body.querySelector(`tr[data-job-id="${CSS.escape(job.job_id)}"]`);
    if (existing) {
      if (Number(existing.dataset.version) >= job.version) return;
      const fresh = row(job, projectId);
      fresh.classList.add('changed');
      existing.replaceWith(fresh);
      announce(`${job.job_type} ${job.job_id} is ${job.status}`);
    } else if (markers.length === 0 && matches(job, params)) {
      const fresh = row(job, projectId);
      fresh.classList.add('changed');
      body.prepend(fresh);
      while (body.children.length > PAGE_SIZE) body.lastElementChild.remove();
      empty.hidden = true;
    }
  }

  load(null).then(() => {
    if (closed) return;
    const query = new URLSearchParams();
    if (params.get('service')) query.set('service', params.get('service'));
    if (params.get('job_type')) query.set('job_type', params.get('job_type'));
    stream = new EventSource(`/v1/${encodeURIComponent(projectId)}/events?${query}`);
    let dropped = false;
    stream.addEventListener('open', () => {
      liveBadge.textContent = 'live';
      liveBadge.classList.add('on');
      // Back after a drop: what changed meanwhile is read once.
      if (dropped) { dropped = false; load(markers[markers.length - 1]).catch(onError); }
    });
    stream.addEventListener('error', () => {
      dropped = true;
      liveBadge.textContent = 'reconnecting…';
      liveBadge.classList.remove('on');
    });
    stream.addEventListener('job', (event) => onJob(JSON.parse(event.data)));
  }, onError);

  return () => { closed = true; if (stream) stream.close(); };
}
