// Customer lookup and the 360° view of one customer.
import {h, fill, fmt, when, table, card, notice} from './dom.js';
import {get} from './api.js';

const TYPES = [
  {type: 'email', label: 'Email', noun: 'email'},
  {type: 'user_id', label: 'User ID', noun: 'user ID'},
  {type: 'phone', label: 'Phone', noun: 'phone number'},
  {type: 'anonymous_id', label: 'Anonymous ID', noun: 'anonymous ID'},
  {type: 'device_id', label: 'Device ID', noun: 'device ID'},
];

// explain says in one line what each prediction means.
const explain = {
  p_alive: 'Probability this customer is still active, from their purchase history.',
  expected_purchases: 'Purchases we expect from this customer over the period.',
  expected_spend: 'Average amount we expect this customer to spend per purchase.',
  clv: 'Expected value of this customer over the period (purchases × spend).',
};

// guess picks the identifier type a value looks like.
function guess(value) {
  if (value.includes('@')) return 'email';
  if (/^\+?[0-9 ()-]{7,}$/.test(value)) return 'phone';
  return null;
}

export async function render(main, ctx) {
  const ident = ctx.params.join('/');
  const [curType, ...rest] = ident ? ident.split(':') : ['email'];
  const curValue = rest.join(':');
  const select = h('select', {id: 'ident-type', name: 'type'},
    TYPES.map((t) => h('option', {value: t.type, selected: t.type === curType}, t.label)));
  const input = h('input', {id: 'ident-value', name: 'value', type: 'search', value: curValue, required: true,
    autocomplete: 'off', placeholder: 'jane@example.com', 'aria-describedby': 'lookup-help'});
  input.addEventListener('input', () => {
    const g = guess(input.value.trim());
    if (g) select.value = g;
  });
  const form = h('form', {class: 'lookup', role: 'search', 'aria-label': 'Find a customer'},
    h('div', {class: 'field'}, h('label', {for: 'ident-type'}, 'Look up by'), select),
    h('div', {class: 'field grow'}, h('label', {for: 'ident-value'}, 'Identifier'), input),
    h('button', {type: 'submit', class: 'primary'}, 'Find customer'),
    h('p', {id: 'lookup-help', class: 'help'}, 'Search by any identifier: email, user ID, phone, anonymous ID or device ID.'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (!v) {
      ctx.say('Enter an identifier to look up.', 'error');
      input.focus();
      return;
    }
    const target = `#/customers/${encodeURIComponent(`${select.value}:${v}`)}`;
    if (location.hash === target) render(main, ctx);
    else location.hash = target;
  });
  const result = h('div', {id: 'customer'});
  fill(main, h('h1', null, 'Customers'), form, result);
  if (!ident) {
    result.append(h('p', {class: 'help'}, 'Find a customer to see everything tessera knows about them: identities, traits, features, predictions, audiences and recent events.'));
    input.focus();
    ctx.keepFocus = true;
    return;
  }
  const noun = (TYPES.find((t) => t.type === curType) || {noun: 'identifier'}).noun;
  const path = `/v1/profiles/${encodeURIComponent(ident)}`;
  result.append(h('p', {class: 'loading'}, 'Looking the customer up…'));
  let prof, events;
  try {
    [prof, events] = await Promise.all([
      get(path, {what: `a customer with that ${noun}`}),
      get(`${path}/events?limit=50`, {what: `a customer with that ${noun}`}),
    ]);
  } catch (ex) {
    if (!ctx.current()) return;
    const msg = ex.status === 400 ? `"${curValue}" is not a ${noun} we can look up.` : ex.message;
    result.replaceChildren(notice('error', msg));
    return;
  }
  if (!ctx.current()) return;
  result.replaceChildren(view(prof, events.events || []));
}

// days turns a horizon ("30d", "39w", "12h") into days, to order them.
function days(hz) {
  const n = parseFloat(hz);
  return n * ({h: 1 / 24, d: 1, w: 7, m: 1 / 1440}[hz.slice(-1)] || 1);
}

function displayName(p) {
  const t = p.traits || {};
  const name = t.name || [t.first_name || t.firstName, t.last_name || t.lastName].filter(Boolean).join(' ');
  const email = (p.identifiers.find((i) => i.type === 'email') || {}).value;
  return name || email || p.id;
}

function value(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return fmt(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function view(p, events) {
  const ids = table('Identities', ['Type', 'Value'], p.identifiers.map((i) => [i.type, i.value]), {empty: 'No identifiers.', hideCaption: true});
  const merged = p.merged_from.length
    ? h('p', {class: 'merged'}, `Merged from ${p.merged_from.length} other profile${p.merged_from.length > 1 ? 's' : ''}: `,
      p.merged_from.map((m, i) => [i ? ', ' : '', h('code', null, m)]),
      '. Their identities, traits and events are part of this customer now.')
    : h('p', {class: 'help'}, 'No other profile was merged into this one.');
  const traits = table('Traits', ['Trait', 'Value'], Object.entries(p.traits).sort().map(([k, v]) => [k, value(v)]), {empty: 'No traits yet.', rowHeader: true, hideCaption: true});
  const feats = table('Features', ['Feature', 'Value'], Object.entries(p.features).sort().map(([k, v]) => [k, value(v)]), {empty: 'No features are defined.', rowHeader: true, hideCaption: true});
  const horizons = Object.keys(p.predictions).sort((a, b) => days(a) - days(b));
  const names = {p_alive: 'Still active', expected_purchases: 'Expected purchases', expected_spend: 'Expected spend per purchase', clv: 'Lifetime value'};
  const shown = (k, v) => (v === undefined ? '—' : k === 'p_alive' ? `${Math.round(v * 100)}%` : fmt(v));
  const preds = horizons.length
    ? table('Predictions', ['Prediction', ...horizons.map((hz) => `Next ${hz}`)],
      Object.keys(names).filter((k) => horizons.some((hz) => p.predictions[hz][k] !== undefined)).map((k) => [
        [h('span', null, names[k]), h('span', {class: 'explain'}, explain[k])],
        ...horizons.map((hz) => h('span', {class: 'num'}, shown(k, p.predictions[hz][k])))]),
      {hideCaption: true, rowHeader: true, class: 'data pred-table'})
    : h('p', {class: 'help'}, 'No predictions: this customer has no purchases yet, or no model has been fitted.');
  const rfm = p.rfm
    ? h('p', null, h('span', {class: 'segment'}, p.rfm.segment), ` Recency ${p.rfm.r}, frequency ${p.rfm.f}, monetary ${p.rfm.m} (each from 1 to 5).`)
    : h('p', {class: 'help'}, 'No RFM segment: it needs purchases and a fitted model.');
  const auds = p.audiences.length
    ? h('ul', {class: 'chips'}, p.audiences.map((a) => h('li', null, a)))
    : h('p', {class: 'help'}, 'Not in any audience.');
  const timeline = events.length
    ? h('ol', {class: 'timeline'}, events.map((e) => {
      const what = e.type === 'track' ? e.event : e.type;
      const props = e.properties || e.traits || {};
      const detail = Object.entries(props).slice(0, 4).map(([k, v]) => `${k}: ${value(v)}`).join(' · ');
      return h('li', null, h('time', {datetime: e.timestamp || ''}, when(e.timestamp)), ' ', h('strong', null, what || 'event'),
        detail ? h('span', {class: 'explain'}, ` ${detail}`) : null);
    }))
    : h('p', {class: 'help'}, 'No recent events.');
  return h('article', {class: 'profile', 'aria-labelledby': 'customer-name'},
    h('h2', {id: 'customer-name', class: 'customer-name'}, displayName(p)),
    h('p', {class: 'help'}, `Profile ${p.id} · first seen ${when(p.first_seen)} · last seen ${when(p.last_seen)} · ${fmt(p.events)} events`),
    h('div', {class: 'grid two'},
      card('Identities', ids, merged),
      card('Predictions', preds),
      card('Traits', traits),
      card('Features', feats),
      card('Audiences', auds),
      card('RFM segment', rfm)),
    card('Recent events', timeline));
}
