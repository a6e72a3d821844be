// The console's entry: the session, the sign-in form, and the pages behind `#/...`.
import { loadSession, signIn, signOut, session } from './api.js';
import { errorBox } from './dom.js';
import * as jobs from './jobs.js';
import * as detail from './detail.js';
import * as overview from './overview.js';
import * as workers from './workers.js';

const $ = (id) => document.getElementById(id);
let leave = null;

function showSignedIn(signedIn) {
  $('sign-in').hidden = signedIn;
  $('page').hidden = !signedIn;
  $('nav').hidden = !signedIn;
  $('who').hidden = !signedIn;
  if (signedIn) {
    const current = session.current;
    $('who-name').textContent = `${current.user.name} · ${current.project.name || current.project.id}`;
    $('who-role').textContent = current.role;
  }
}

function route() {
  if (leave) { leave(); leave = null; }
  if (!session.current) {
    showSignedIn(false);
    $('domain').focus();
    return;
  }
  showSignedIn(true);
  const hash = location.hash.replace(/^#\/?/, '');
  const [page, ...rest] = hash.split('/');
  const container = $('page');
  container.replaceChildren();
  for (const link of document.querySelectorAll('#nav a')) {
    const current = link.dataset.page === (page || 'jobs') || (page === 'job' && link.dataset.page === 'jobs');
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  const onError = (error) => {
    if (error && error.status === 401) { session.current = null; route(); return; }
    container.append(errorBox(error));
  };
  try {
    if (page === 'job' && rest[0]) leave = detail.render(container, rest.join('/').split('?')[0], onError);
    else if (page === 'overview') leave = overview.render(container, onError);
    else if (page === 'workers') leave = workers.render(container, onError);
    else leave = jobs.render(container, new URLSearchParams(hash.split('?')[1] || ''), onError);
  } catch (error) {
    onError(error);
  }
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('sign-in-error').textContent = '';
  try {
    await signIn($('domain').value.trim(), $('name').value.trim(), $('password').value);
    $('password').value = '';
    route();
    $('main').focus();
  } catch (error) {
    $('sign-in-error').textContent = error.status === 401
      ? 'Wrong domain, user name or password.'
      : error.message;
  }
});

$('sign-out').addEventListener('click', async () => {
  try { await signOut(); } catch { /* signed out locally all the same */ }
  location.hash = '#/jobs';
  route();
});

window.addEventListener('hashchange', route);

loadSession().then(route, (error) => {
  showSignedIn(false);
  $('sign-in-error').textContent = error.message;
});
