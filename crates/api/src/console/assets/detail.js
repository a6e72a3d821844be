// One job: its tree as a timeline, attempts, leases, entities, the job as its seed dialect answers
// it (with an SDK snippet), and Cancel for those who may. Kept live by the job's event stream.
import { call, session, dialectPath } from './api.js';
import { el, statusBadge, when, duration, TERMINAL, announce } from './dom.js';

const SDK = {
  elb: { module: 'huaweicloudsdkelb.v3', client: 'ElbClient', call: 'show_job', request: 'ShowJobRequest', args: (id) => `job_id="${id}"` },
  cfw: { module: 'huaweicloudsdkcfw.v1', client: 'CfwClient', call: 'list_job', request: 'ListJobRequest', args: (id) => `job_id="${id}"` },
  waf: { module: 'huaweicloudsdkwaf.v1', client: 'WafClient', call: 'confirm_async_job', request: 'ConfirmAsyncJobRequest', args: (id) => `job_id="${id}"` },
};

function snippet(job) {
  const sdk = SDK[job.service];
  if (!sdk) return null;
  return [
    'from huaweicloudsdkcore.auth.credentials import BasicCredentials',
    `from ${sdk.module} import ${sdk.client}, ${sdk.request}`,
    `client = (${sdk.client}.new_builder()`,
    `          .with_credentials(BasicCredentials(AK, SK, "${job.project_id}"))`,
    `          .with_endpoints(["${location.origin}"])`,
    '          .build())',
    `print(client.${sdk.call}(${sdk.request}(${sdk.args(job.job_id)})))`,
  ].join('\n');
}

function copyButton(getText, label) {
  const button = el('button', { type: 'button', class: 'secondary copy', text: label });
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy';
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

// Each job of the tree as a bar from its start to its end (now while it runs), and a
// compensation bar during or after a rollback.
function timeline(job, now) {
  const tasks = [job, ...job.sub_jobs];
  const times = [];
  for (const task of tasks) {
    for (const t of [task.created_at, task.started_at, task.ended_at,
      task.compensation && task.compensation.started_at, task.compensation && task.compensation.ended_at]) {
      if (t) times.push(new Date(t).getTime());
    }
  }
  const start = Math.min(...times);
  const end = Math.max(...times, TERMINAL.has(job.status) ? 0 : now);
  const span = Math.max(end - start, 1000);
  const place = (from, to) => {
    const left = ((from - start) / span) * 100;
    const width = Math.max(((to - from) / span) * 100, 0.8);
    return `left:${left.toFixed(2)}%;width:${Math.min(width, 100 - left).toFixed(2)}%`;
  };
  const bar = (task, kind) => {
    const source = kind === 'compensation' ? task.compensation : task;
    if (!source.started_at) return el('div', { class: 'bar-waiting', text: source.status === 'PENDING' ? 'waiting' : 'not started' });
    const from = new Date(source.started_at).getTime();
    const to = source.ended_at ? new Date(source.ended_at).getTime() : now;
    const node = el('div', {
      class: `bar status-${source.status.toLowerCase()} ${kind}`,
      title: `${kind === 'compensation' ? 'compensation ' : ''}${source.status} ${duration(to - from)}`,
    }, el('span', { class: 'bar-label', text: `${source.status} · ${duration(to - from)}` }));
    node.dataset.from = String(from);
    // Placement is a style property, not inline CSS text: the CSP allows no inline styles.
    for (const part of place(from, to).split(';')) {
      const [name, value] = part.split(':');
      node.style.setProperty(name, value);
    }
    return node;
  };
  const rows = tasks.map((task, index) => {
    const name = index === 0 ? task.job_type : `└ ${task.job_type}`;
    const lane = el('div', { class: 'lane' }, bar(task, 'run'));
    const rollback = task.phase === 'rollback'
      ? el('span', { class: 'phase', text: TERMINAL.has(task.status) ? 'ROLLED BACK' : 'ROLLBACKING' })
      : null;
    const out = [el('div', { class: 'timeline-row', dataset: { jobId: task.job_id } },
      el('div', { class: 'lane-name' }, el('span', { text: name }), ' ', statusBadge(task.status), rollback),
      lane)];
    if (task.compensation) {
      out.push(el('div', { class: 'timeline-row compensation-row' },
        el('div', { class: 'lane-name' }, el('span', { text: '  ↺ compensation' }), ' ', statusBadge(task.compensation.status)),
        el('div', { class: 'lane' }, bar(task, 'compensation'))));
    }
    return out;
  });
  return el('div', { class: 'timeline', id: 'timeline', role: 'list', 'aria-label': 'Timeline' },
    el('div', { class: 'timeline-scale' },
      el('span', { text: when(new Date(start).toISOString()) }),
      el('span', { text: `${duration(span)}` })),
    rows.flat());
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [
    el('dt', { text: k }),
    el('dd', {}, v instanceof Node ? v : String(v ?? '—')),
  ]).flat());
}

function attempts(job) {
  const tasks = [job, ...job.sub_jobs];
  return el('div', { class: 'table-wrap' }, el('table', { class: 'attempts' },
    el('thead', {}, el('tr', {}, ['Task', 'Status', 'Attempt', 'Error', 'Backoff', 'Next attempt due', 'Worker (lease)', 'Lease expires']
      .map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, tasks.map((task) => el('tr', {},
      el('td', { text: task.job_type }),
      el('td', {}, statusBadge(task.status)),
      el('td', { text: `${task.attempt} of ${task.max_attempts}` }),
      el('td', { class: 'message', text: task.error_code ? `${task.error_code}: ${task.error_msg || ''}` : '—' }),
      el('td', { text: backoff(task.retry_backoff) }),
      el('td', { class: 'time', text: task.status === 'PENDING' ? when(task.run_at) : '—' }),
      el('td', { class: 'worker', text: task.worker_id || '—' }),
      el('td', { class: 'time', text: when(task.lease_expires_at) }))))));
}

function backoff(policy) {
  if (!policy) return '—';
  return Object.entries(policy).map(([k, v]) => `${k} ${v}`).join(', ');
}

function entities(job) {
  const all = [job, ...job.sub_jobs].flatMap((task) => (task.entities || []).map((e) => [task.job_type, e]));
  if (!all.length) return el('p', { class: 'empty', text: 'No entities.' });
  return el('ul', { class: 'entities' }, all.map(([type, entity]) =>
    el('li', {}, el('span', { class: 'muted', text: `${type}: ` }), el('code', { text: `${entity.resource_type || ''} ${entity.resource_id || ''}` }))));
}

export function render(container, route, onError) {
  const [projectId, jobId] = route.includes('/') ? route.split('/').map(decodeURIComponent) : [session.current.project.id, route];
  const path = `/v1/${encodeURIComponent(projectId)}/jobs/${encodeURIComponent(jobId)}`;
  let stream = null;
  let closed = false;
  let shown = null;
  const head = el('div', { class: 'page-head' });
  const body = el('div', { class: 'detail' });
  const dialect = el('section', { class: 'card dialect' });
  const dialog = el('dialog', { id: 'cancel-dialog', 'aria-labelledby': 'cancel-title' });
  container.append(el('p', {}, el('a', { href: `#/jobs?project=${encodeURIComponent(projectId)}`, text: '← Jobs' })), head, body, dialect, dialog);

  function show(job) {
    if (shown && shown.version >= job.version) return;
    shown = job;
    // The stream ends after the terminal event; closed here, the browser does not reopen it.
    if (TERMINAL.has(job.status) && stream) { stream.close(); stream = null; }
    const now = Date.now();
    const mayCancel = session.current.may_cancel && !TERMINAL.has(job.status);
    const cancel = mayCancel ? el('button', { type: 'button', id: 'cancel-job', class: 'danger', text: 'Cancel job…', onclick: () => confirmCancel(job) }) : null;
    head.replaceChildren(el('h1', {}, el('span', { text: job.job_type }), ' ', statusBadge(job.status)), ...(cancel ? [cancel] : []));
    body.replaceChildren(
      el('section', { class: 'card' }, el('h2', { text: 'Timeline' }), timeline(job, now)),
      el('section', { class: 'card' }, el('h2', { text: 'Job' }), facts([
        ['Job id', el('code', { text: job.job_id })],
        ['Service', job.service],
        ['Status', statusBadge(job.status)],
        ['Progress', el('span', { id: 'job-message', text: job.message || '—' })],
        ['Error', job.error_code ? `${job.error_code}: ${job.error_msg || ''}` : '—'],
        ['Resource', job.resource_id || '—'],
        ['Project', job.project_id],
        ['Enterprise project', job.enterprise_project_id],
        ['Execution', `${job.execution}, on failure ${job.on_failure}, phase ${job.phase}`],
        ['Created', when(job.created_at)],
        ['Started', when(job.started_at)],
        ['Ended', when(job.ended_at)],
        ['Version', job.version],
      ])),
      el('section', { class: 'card' }, el('h2', { text: 'Entities' }), entities(job)),
      el('section', { class: 'card' }, el('h2', { text: 'Attempts and leases' }), attempts(job)));
    showDialect(job);
  }

  async function showDialect(job) {
    const target = dialectPath(job);
    if (!target) {
      dialect.replaceChildren(el('h2', { text: 'As the API answers it' }),
        el('pre', { class: 'json', id: 'dialect-json', text: JSON.stringify({ job }, null, 2) }));
      return;
    }
    try {
      const answer = await call('GET', target.path);
      if (closed || shown !== job) return;
      const json = JSON.stringify(answer, null, 2);
      const code = snippet(job);
      dialect.replaceChildren(
        el('h2', {}, `As the ${target.name} SDK receives it `, el('code', { class: 'muted', text: `GET ${target.path}` })),
        el('div', { class: 'copy-row' }, copyButton(() => json, 'Copy JSON')),
        el('pre', { class: 'json', id: 'dialect-json', tabindex: 0, text: json }),
        el('h3', { text: 'Python (official SDK)' }),
        el('div', { class: 'copy-row' }, copyButton(() => code, 'Copy snippet')),
        el('pre', { class: 'snippet', tabindex: 0, text: code }));
    } catch (error) {
      onError(error);
    }
  }

  function confirmCancel(job) {
    const yes = el('button', { type: 'button', class: 'danger', id: 'confirm-cancel', text: 'Cancel the job' });
    const no = el('button', { type: 'button', class: 'secondary', text: 'Keep it running' });
    const problem = el('p', { class: 'error', role: 'alert' });
    dialog.replaceChildren(el('h2', { id: 'cancel-title', text: 'Cancel this job?' }),
      el('p', {}, 'The job ', el('code', { text: job.job_id }), ' and its unfinished sub-jobs will end as CANCELLED.'),
      problem, el('div', { class: 'dialog-buttons' }, no, yes));
    no.addEventListener('click', () => dialog.close());
    yes.addEventListener('click', async () => {
      try {
        const answer = await call('POST', `${path}/cancel`, {});
        dialog.close();
        show(answer.job);
        announce('The job was cancelled.');
      } catch (error) {
        problem.textContent = error.message;
      }
    });
    dialog.showModal();
    no.focus();
  }

  // While the job runs, its open bars grow with the clock (no request: the data is the last event's).
  const ticker = setInterval(() => {
    const current = document.getElementById('timeline');
    if (shown && current && !TERMINAL.has(shown.status)) current.replaceWith(timeline(shown, Date.now()));
  }, 1000);

  call('GET', path).then((answer) => {
    if (closed) return;
    show(answer.job);
    if (TERMINAL.has(answer.job.status)) return;
    stream = new EventSource(`${path}/events`);
    stream.addEventListener('job', (event) => show(JSON.parse(event.data)));
  }, onError);

  return () => {
    closed = true;
    clearInterval(ticker);
    if (stream) stream.close();
    if (dialog.open) dialog.close();
  };
}
