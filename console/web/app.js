// The console's shell: sign-in, navigation and the hash router. Pages live
// in their own modules; each renders into <main> and may register
// clean-ups (timers) that run when the reader leaves it.
import {h, notice} from './dom.js';
import {session, get, ApiError} from './api.js';
import * as overview from './overview.js';
import * as customers from './customers.js';
import * as audiences from './audiences.js';
import * as destinations from './destinations.js';
import * as quality from './quality.js';
import * as insights from './insights.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const status = document.getElementById('status');

// routes map the first path segment to a page; admin pages are not shown
// to a viewer.
const routes = {
  overview: {page: overview, title: 'Overview'},
  customers: {page: customers, title: 'Customers'},
  audiences: {page: audiences, title: 'Audiences'},
  destinations: {page: destinations, title: 'Destinations', admin: true},
  quality: {page: quality, title: 'Data quality'},
  insights: {page: insights, title: 'Insights'},
};

let cleanups = [];
// flash is a message to show on the next page (such as "saved").
let flash = null;
let generation = 0;

// say announces a message in the status line (read by screen readers).
export function say(msg, kind = 'info') {
  status.textContent = msg;
  status.className = `status ${kind}`;
  status.hidden = !msg;
}

function leave() {
  for (const fn of cleanups) fn();
  cleanups = [];
  generation++;
}

function signIn(message) {
  leave();
  top.hidden = true;
  document.title = 'Sign in · tessera';
  const input = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true,
    'aria-describedby': 'token-help'});
  const err = h('div', {id: 'signin-error', 'aria-live': 'assertive'});
  const form = h('form', {class: 'signin card', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title', tabindex: '-1'}, 'Sign in to tessera'),
    h('label', {for: 'token'}, 'Access token'),
    input,
    h('p', {id: 'token-help', class: 'help'}, 'Use the administrator token, or the viewer token to look customers up without changing anything. Your administrator can give you one.'),
    h('button', {type: 'submit', class: 'primary'}, 'Sign in'),
    err);
  if (message) err.append(notice('error', message));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const token = input.value.trim();
    if (!token) {
      err.append(notice('error', 'Enter your access token.'));
      input.focus();
      return;
    }
    try {
      const who = await get('/v1/whoami', {token});
      session.set(token, who.role);
      if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/overview';
      else route();
    } catch (ex) {
      const msg = ex instanceof ApiError && ex.status === 401
        ? "That token isn't right. Check it and try again."
        : ex.message;
      err.append(notice('error', msg));
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function route() {
  if (!session.token) {
    signIn();
    return;
  }
  leave();
  const gen = generation;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = parts[0] || 'overview';
  if (name === 'signin') {
    location.hash = '#/overview';
    return;
  }
  const r = routes[name];
  top.hidden = false;
  document.body.classList.toggle('viewer', !session.admin);
  document.getElementById('role').textContent = session.admin ? 'Administrator' : 'Viewer (read only)';
  for (const li of document.querySelectorAll('#nav [data-admin]')) li.hidden = !session.admin;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.section === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  say(flash ? flash[0] : '', flash ? flash[1] : 'info');
  flash = null;
  if (!r) {
    main.replaceChildren(h('h1', {tabindex: '-1'}, 'Page not found'), notice('error', "We couldn't find that page. Use the menu above."));
    main.querySelector('h1').focus();
    return;
  }
  document.title = `${r.title} · tessera`;
  if (r.admin && !session.admin) {
    main.replaceChildren(h('h1', {tabindex: '-1'}, r.title), notice('info', 'This page needs administrator access. Your viewer access lets you look customers up and see insights.'));
    main.querySelector('h1').focus();
    return;
  }
  const ctx = {
    params: parts.slice(1),
    onLeave: (fn) => cleanups.push(fn),
    current: () => gen === generation,
    say,
    flash: (msg, kind = 'ok') => { flash = [msg, kind]; },
    admin: session.admin,
  };
  main.replaceChildren(h('p', {class: 'loading'}, 'Loading…'));
  try {
    await r.page.render(main, ctx);
  } catch (ex) {
    if (gen !== generation) return;
    main.replaceChildren(h('h1', {tabindex: '-1'}, r.title), notice('error', ex.message || String(ex)));
  }
  if (gen === generation && !main.contains(document.activeElement)) {
    const h1 = main.querySelector('h1');
    if (h1 && !ctx.keepFocus) { h1.setAttribute('tabindex', '-1'); h1.focus({preventScroll: true}); }
  }
}

document.getElementById('signout').addEventListener('click', () => {
  session.clear();
  location.hash = '#/signin';
  signIn();
});
window.addEventListener('tessera:signedout', () => {
  session.clear();
  signIn('Your sign-in is no longer valid. Please sign in again.');
});
window.addEventListener('hashchange', route);
route();
