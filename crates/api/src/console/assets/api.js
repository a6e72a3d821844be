// The console's one door to jobd: the API itself, authenticated by the session cookie. Calls that
// change something carry the session's CSRF token.

export const session = { current: null };

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error_msg || body.message)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error_code;
  }
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && session.current) headers['X-Jobd-Csrf'] = session.current.csrf_token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = { error_msg: text }; }
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export async function loadSession() {
  try {
    session.current = await call('GET', '/console/session');
  } catch (error) {
    if (error.status !== 401) throw error;
    session.current = null;
  }
  return session.current;
}

export async function signIn(domain, name, password) {
  session.current = await call('POST', '/console/session', { domain, name, password });
  return session.current;
}

export async function signOut() {
  try {
    await call('DELETE', '/console/session');
  } finally {
    session.current = null;
  }
}

export const project = () => session.current.project.id;

// A job of the signed-in project, as the native API shows it.
export const jobPath = (jobId) => `/v1/${encodeURIComponent(project())}/jobs/${encodeURIComponent(jobId)}`;

// The GET each seed dialect answers a job with: the exact JSON its official SDK receives.
export function dialectPath(job) {
  const p = encodeURIComponent(job.project_id);
  const id = encodeURIComponent(job.job_id);
  if (job.parent_job_id) return null;
  switch (job.service) {
    case 'cfw': return { name: 'CFW', path: `/v3/${p}/jobs/${id}` };
    case 'waf': return { name: 'WAF', path: `/v1/${p}/waf/async-job/${id}` };
    case 'elb': return { name: 'ELB', path: `/v3/${p}/elb/jobs/${id}` };
    default: return null;
  }
}

// Calls `refresh` whenever a job of the project changes (its event stream), at most once per
// `gapMs`; answers a function that stops listening.
export function onProjectChange(projectId, refresh, gapMs = 500) {
  const stream = new EventSource(`/v1/${encodeURIComponent(projectId)}/events`);
  let timer = null;
  let dropped = false;
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, gapMs);
  };
  stream.addEventListener('job', schedule);
  stream.addEventListener('error', () => { dropped = true; });
  stream.addEventListener('open', () => { if (dropped) { dropped = false; schedule(); } });
  return () => { stream.close(); if (timer) clearTimeout(timer); };
}
