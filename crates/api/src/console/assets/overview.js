// The overview: per service and job type, tasks waiting and running, the oldest wait, and the jobs
// finished per minute by outcome over the last 15 minutes. Refreshed by the project's events.
import { call, session, onProjectChange } from './api.js';
import { el, svg, duration } from './dom.js';

const OUTCOMES = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

function chart(perMinute) {
  const width = 300;
  const height = 70;
  const gap = 2;
  const barWidth = width / perMinute.length - gap;
  const max = Math.max(1, ...perMinute.map((m) => OUTCOMES.reduce((sum, o) => sum + m[o], 0)));
  const bars = [];
  perMinute.forEach((minute, index) => {
    let y = height;
    for (const outcome of OUTCOMES) {
      const h = (minute[outcome] / max) * (height - 4);
      if (h <= 0) continue;
      y -= h;
      bars.push(svg('rect', { x: (index * (barWidth + gap)).toFixed(1), y: y.toFixed(1), width: barWidth.toFixed(1),
        height: h.toFixed(1), class: outcome.toLowerCase() },
      svg('title', { text: `${minute.minute}: ${minute[outcome]} ${outcome}` })));
    }
  });
  const total = perMinute.reduce((sum, m) => sum + OUTCOMES.reduce((s, o) => s + m[o], 0), 0);
  return svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `${total} jobs finished in the last ${perMinute.length} minutes` },
  svg('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, stroke: '#dde1e8' }), bars);
}

function card(queue, now) {
  const oldest = queue.oldest_waiting_since ? duration(now - new Date(queue.oldest_waiting_since).getTime()) : '—';
  const totals = Object.fromEntries(OUTCOMES.map((o) => [o, queue.finished_per_minute.reduce((s, m) => s + m[o], 0)]));
  const link = `#/jobs?${new URLSearchParams({ project: session.current.project.id, service: queue.service, job_type: queue.job_type })}`;
  return el('section', { class: 'card queue', dataset: { service: queue.service, jobType: queue.job_type } },
    el('h2', {}, el('a', { href: link }, el('span', { class: 'muted', text: `${queue.service} · ` }), el('span', { text: queue.job_type }))),
    el('div', { class: 'numbers' },
      el('div', {}, el('strong', { class: 'waiting', text: queue.waiting }), el('span', { text: 'waiting' })),
      el('div', {}, el('strong', { class: 'running', text: queue.running }), el('span', { text: 'running' })),
      el('div', {}, el('strong', { class: 'oldest', dataset: { since: queue.oldest_waiting_since || '' }, text: oldest }), el('span', { text: 'oldest wait' }))),
    chart(queue.finished_per_minute),
    el('div', { class: 'legend' }, OUTCOMES.map((o) => el('span', { class: o.toLowerCase(), text: `${totals[o]} ${o.toLowerCase()}` }))));
}

export function render(container, onError) {
  const projectId = session.current.project.id;
  const grid = el('div', { class: 'overview-grid', id: 'overview' });
  const empty = el('p', { class: 'empty', text: 'No jobs in the last 15 minutes and none open.', hidden: true });
  container.append(el('div', { class: 'page-head' }, el('h1', { text: 'Overview' }),
    el('span', { class: 'muted', text: 'jobs finished per minute, last 15 minutes' })), grid, empty);
  let closed = false;
  let loadedAt = 0;
  let last = null;

  async function load() {
    try {
      last = await call('GET', `/v1/${encodeURIComponent(projectId)}/overview`);
      loadedAt = Date.now();
      if (closed) return;
      paint();
    } catch (error) {
      onError(error);
    }
  }

  // Between changes the clock still moves: waits grow, and each new minute shifts the chart.
  function paint() {
    const serverNow = new Date(last.now).getTime() + (Date.now() - loadedAt);
    const shift = Math.floor(serverNow / 60000) - Math.floor(new Date(last.now).getTime() / 60000);
    const queues = last.queues.map((queue) => {
      if (shift <= 0) return queue;
      const zero = { SUCCEEDED: 0, FAILED: 0, CANCELLED: 0 };
      const moved = queue.finished_per_minute.slice(Math.min(shift, queue.finished_per_minute.length))
        .concat(Array.from({ length: Math.min(shift, queue.finished_per_minute.length) }, () => ({ ...zero, minute: '' })));
      return { ...queue, finished_per_minute: moved };
    });
    grid.replaceChildren(...queues.map((queue) => card(queue, serverNow)));
    empty.hidden = queues.length > 0;
  }

  const stop = onProjectChange(projectId, load);
  const ticker = setInterval(() => { if (last) paint(); }, 1000);
  load();
  return () => { closed = true; stop(); clearInterval(ticker); };
}
