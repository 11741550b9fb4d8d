// Data quality: why events were refused, and which tracking plans are
// broken, with examples.
import {h, fill, fmt, when, table, card, notice} from './dom.js';
import {get} from './api.js';
import {barChart} from './charts.js';

export async function render(main, ctx) {
  const q = await get('/v1/quality');
  if (!ctx.current()) return;
  const invalid = q.invalid.length
    ? [barChart({title: 'Invalid events by reason', labels: q.invalid.slice(0, 8).map((r) => short(r.reason)), values: q.invalid.slice(0, 8).map((r) => r.count), horizontal: true, unit: 'read'}),
      h('ul', {class: 'reasons'}, q.invalid.map((r) => h('li', null,
        h('details', null,
          h('summary', null, h('strong', null, fmt(r.count)), ` × ${r.reason}`, h('span', {class: 'explain'}, ` last ${when(r.last)}`)),
          r.examples.map((e) => h('div', {class: 'example'},
            h('p', {class: 'help'}, `From ${e.source || 'unknown source'}, ${when(e.received_at)}`),
            h('pre', null, e.raw)))))))]
    : [h('p', {class: 'help'}, 'No invalid events. Everything sent to tessera could be read.')];
  const plans = q.violations.length
    ? q.violations.map((v) => h('div', {class: 'plan'},
      h('h3', null, v.event),
      h('p', null, `${fmt(v.allowed)} published despite the violation, ${fmt(v.blocked)} blocked.`),
      v.examples.length ? table(`Recent violations of ${v.event}`, ['When', 'Problem', 'Event'],
        v.examples.map((e) => [when(e.at), e.errors.join('; '), h('details', null, h('summary', null, e.blocked ? 'Blocked event' : 'Published event'), h('pre', null, e.event))]),
        {hideCaption: true}) : null))
    : [h('p', {class: 'help'}, 'No tracking-plan violations since tessera started.')];
  fill(main, 
    h('h1', null, 'Data quality'),
    h('p', {class: 'lede'}, `Events tessera refused, and events that broke their tracking plan. ${fmt(q.total)} invalid events are kept; the newest ${fmt(q.read)} are summarised here.`),
    h('div', {class: 'grid two'},
      card('Invalid events by reason', ...invalid),
      card('Tracking-plan violations by event', ...plans)));
}

function short(s) {
  return s.length > 24 ? `${s.slice(0, 23)}…` : s;
}
