// Hand-drawn SVG charts: a line chart over time, a bar chart and a
// sparkline. Each has a text alternative (aria-label and a <title>), so a
// screen reader hears the figures the eye sees.
import {h, svg, fmt} from './dom.js';

const W = 480, H = 180, PAD = {l: 52, r: 12, t: 12, b: 28};

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function clock(t) {
  return t.toLocaleTimeString('en-GB', {hour: '2-digit', minute: '2-digit'});
}

// lineChart draws points [{t: Date, v: number|null}] with a title and unit.
export function lineChart({title, unit, points}) {
  const vals = points.filter((p) => p.v !== null && p.v !== undefined);
  const latest = vals.length ? vals[vals.length - 1].v : null;
  const peak = vals.reduce((m, p) => Math.max(m, p.v), 0);
  const summary = vals.length
    ? `${title}: now ${fmt(latest)} ${unit}, highest ${fmt(peak)} ${unit} over the last ${spanWords(points)}.`
    : `${title}: no data yet; the first points appear within ten seconds.`;
  const fig = h('figure', {class: 'chart'},
    h('figcaption', null, h('span', {class: 'chart-title'}, title),
      h('span', {class: 'chart-value'}, latest === null ? '—' : fmt(latest), h('small', null, ` ${unit}`))));
  const s = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, preserveAspectRatio: 'none'});
  s.append(svg('title', null, summary));
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
  const top = niceMax(peak);
  for (let i = 0; i <= 4; i++) {
    const y = y0 - (y0 - y1) * i / 4;
    s.append(svg('line', {x1: x0, x2: x1, y1: y, y2: y, class: 'grid'}));
    s.append(svg('text', {x: x0 - 6, y: y + 4, class: 'axis', 'text-anchor': 'end'}, fmt(top * i / 4)));
  }
  if (points.length) {
    const t0 = points[0].t.getTime(), t1 = Math.max(points[points.length - 1].t.getTime(), t0 + 1);
    const X = (t) => x0 + (x1 - x0) * (t.getTime() - t0) / (t1 - t0);
    const Y = (v) => y0 - (y0 - y1) * v / top;
    s.append(svg('text', {x: x0, y: H - 8, class: 'axis'}, clock(points[0].t)));
    s.append(svg('text', {x: x1, y: H - 8, class: 'axis', 'text-anchor': 'end'}, clock(points[points.length - 1].t)));
    let d = '', pen = false;
    for (const p of points) {
      if (p.v === null || p.v === undefined) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${X(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`;
      pen = true;
    }
    if (vals.length === 1) {
      s.append(svg('circle', {cx: X(vals[0].t), cy: Y(vals[0].v), r: 3, class: 'dot'}));
    }
    s.append(svg('path', {d, class: 'line'}));
  }
  fig.append(s);
  return fig;
}

function spanWords(points) {
  if (points.length < 2) return 'moment';
  const mins = Math.round((points[points.length - 1].t - points[0].t) / 60000);
  return mins < 1 ? 'minute' : mins === 1 ? 'minute' : `${mins} minutes`;
}

// barChart draws labelled values; horizontal suits long labels.
export function barChart({title, labels, values, horizontal = false, unit = ''}) {
  const total = values.reduce((a, b) => a + b, 0);
  const summary = `${title}: ` + labels.map((l, i) => `${l} ${fmt(values[i])}`).join(', ') + '.';
  const fig = h('figure', {class: 'chart'}, h('figcaption', null, h('span', {class: 'chart-title'}, title),
    h('span', {class: 'chart-value'}, fmt(total), h('small', null, ` ${unit || 'in all'}`))));
  const top = niceMax(Math.max(0, ...values));
  let s;
  if (horizontal) {
    const row = 22, lw = 150, height = PAD.t + row * labels.length + 8;
    s = svg('svg', {viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-label': summary});
    s.append(svg('title', null, summary));
    labels.forEach((l, i) => {
      const y = PAD.t + i * row;
      const w = (W - lw - 60) * values[i] / top;
      s.append(svg('text', {x: lw - 6, y: y + 14, class: 'axis', 'text-anchor': 'end'}, l));
      s.append(svg('rect', {x: lw, y: y + 3, width: Math.max(w, values[i] ? 1 : 0), height: row - 8, class: 'bar'}));
      s.append(svg('text', {x: lw + w + 6, y: y + 14, class: 'axis'}, fmt(values[i])));
    });
  } else {
    s = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary});
    s.append(svg('title', null, summary));
    const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
    for (let i = 0; i <= 4; i++) {
      const y = y0 - (y0 - y1) * i / 4;
      s.append(svg('line', {x1: x0, x2: x1, y1: y, y2: y, class: 'grid'}));
      s.append(svg('text', {x: x0 - 6, y: y + 4, class: 'axis', 'text-anchor': 'end'}, fmt(top * i / 4)));
    }
    const bw = (x1 - x0) / Math.max(labels.length, 1);
    labels.forEach((l, i) => {
      const bh = (y0 - y1) * values[i] / top;
      s.append(svg('rect', {x: x0 + i * bw + 2, y: y0 - bh, width: Math.max(bw - 4, 1), height: bh, class: 'bar'}));
      if (labels.length <= 12 || i % 2 === 0) {
        s.append(svg('text', {x: x0 + i * bw + bw / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle'}, l));
      }
    });
  }
  fig.append(s);
  return fig;
}

// sparkline draws a small trend of numbers, labelled for screen readers.
export function sparkline(values, label) {
  const w = 120, hgt = 28;
  const s = svg('svg', {viewBox: `0 0 ${w} ${hgt}`, class: 'spark', role: 'img', 'aria-label': label});
  s.append(svg('title', null, label));
  if (values.length < 2) {
    s.append(svg('line', {x1: 0, x2: w, y1: hgt / 2, y2: hgt / 2, class: 'grid'}));
    return s;
  }
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  const d = values.map((v, i) => `${i ? 'L' : 'M'}${(w * i / (values.length - 1)).toFixed(1)},${(hgt - 3 - (hgt - 6) * (v - lo) / span).toFixed(1)}`).join('');
  s.append(svg('path', {d, class: 'line'}));
  return s;
}
