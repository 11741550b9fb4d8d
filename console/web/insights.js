// Insights: the population at a glance, as charts.
import {h, fill, fmt, when, card, notice, table} from './dom.js';
import {get} from './api.js';
import {barChart} from './charts.js';

export async function render(main, ctx) {
  fill(main, h('h1', null, 'Insights'), h('p', {class: 'loading'}, 'Counting customers…'));
  // Cached on the server: a scan of every profile takes seconds on large
  // populations; the answer says when it was computed.
  const v = await get('/v1/insights?max_age=60s');
  if (!ctx.current()) return;
  const pLabels = v.p_alive_histogram.map((_, i) => `${i * 10}%`);
  const segs = Object.entries(v.rfm_segments);
  const feats = Object.entries(v.features || {}).sort(([a], [b]) => a.localeCompare(b));
  const events = Object.entries(v.event_counts).sort((a, b) => b[1] - a[1]).slice(0, 15);
  fill(main, 
    h('h1', null, 'Insights'),
    h('p', {class: 'lede'}, `${fmt(v.profiles)} customer profiles, ${fmt(v.customers)} with purchases.`,
      v.as_of ? ` Predictions as of ${v.as_of}.` : ' No model has been fitted yet, so there are no predictions.',
      ` Counted ${when(v.computed_at)}${v.stale ? '; a newer count is on its way, reload in a moment' : ''}.`),
    h('div', {class: 'grid two'},
      card('How likely customers are to still be active',
        v.customers ? barChart({title: 'Customers by probability of still being active', labels: pLabels, values: v.p_alive_histogram, unit: 'customers'})
          : h('p', {class: 'help'}, 'Appears once customers have purchases and a model is fitted.')),
      card('RFM segments',
        segs.some(([, n]) => n > 0) ? barChart({title: 'Customers per RFM segment', labels: segs.map(([k]) => k), values: segs.map(([, n]) => n), horizontal: true, unit: 'customers'})
          : h('p', {class: 'help'}, 'Appears once customers have purchases and a model is fitted.')),
      ...feats.map(([name, d]) => card(`Feature ${name}`,
        barChart({title: `${name} over ${fmt(d.sampled)} sampled customers (mean ${fmt(d.mean)})`,
          labels: d.counts.map((_, i) => fmt(d.min + i * d.width)), values: d.counts, unit: 'customers'}))),
      card('Most frequent events', table('Most frequent events', ['Event', 'Count'], events.map(([k, n]) => [k, fmt(n)]), {hideCaption: true, rowHeader: true}))),
    feats.length ? null : notice('info', 'Define features to see their distributions here.'));
}
