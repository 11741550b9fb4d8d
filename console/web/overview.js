// Overview: the hub's vital signs over the last hour.
import {h, fill, fmt, notice} from './dom.js';
import {get} from './api.js';
import {lineChart} from './charts.js';

const REFRESH_MS = 10000;

const series = [
  {key: 'events_per_second', title: 'Events per second', unit: 'events/s'},
  {key: 'consumer_lag', title: 'Events waiting to be processed', unit: 'events'},
  {key: 'profiles', title: 'Customer profiles', unit: 'profiles'},
  {key: 'invalid_per_minute', title: 'Invalid events per minute', unit: 'per min'},
  {key: 'delivered_per_minute', title: 'Deliveries per minute', unit: 'per min'},
  {key: 'failed_per_minute', title: 'Failed deliveries per minute', unit: 'per min'},
];

export async function render(main, ctx) {
  const charts = h('div', {class: 'grid charts', id: 'overview-charts'});
  const totals = h('div', {class: 'totals'});
  const draw = async () => {
    let v;
    try {
      v = await get('/v1/overview');
    } catch (ex) {
      if (ctx.current()) charts.replaceChildren(notice('error', ex.message));
      return;
    }
    if (!ctx.current()) return;
    const pts = v.points.map((p) => ({...p, t: new Date(p.at)}));
    charts.replaceChildren(...series.map((s) => lineChart({
      title: s.title, unit: s.unit, points: pts.map((p) => ({t: p.t, v: p[s.key]})),
    })));
    const t = v.totals;
    totals.replaceChildren(
      stat('Events processed', t.events), stat('Invalid events', t.invalid),
      stat('Deliveries', t.delivered), stat('Failed attempts', t.failed), stat('Dead letters', t.dead_lettered));
  };
  fill(main, 
    h('h1', null, 'Overview'),
    h('p', {class: 'lede'}, 'How tessera is doing over the last hour. The charts refresh every ten seconds.'),
    h('section', {'aria-label': 'Totals since tessera started'}, h('h2', {class: 'visually-hidden'}, 'Totals since tessera started'), totals),
    charts);
  await draw();
  const timer = setInterval(draw, REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}

function stat(label, value) {
  return h('div', {class: 'stat'}, h('span', {class: 'stat-value'}, fmt(value)), h('span', {class: 'stat-label'}, label));
}
