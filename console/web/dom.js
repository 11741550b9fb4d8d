// Building the DOM without innerHTML: every value from the API is text,
// never markup.

// h creates an element: h('a', {href: '#/x', class: 'c'}, 'text', child…).
// Attributes starting with "on" are event listeners; null/false skip.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// fill replaces el's children, skipping null, undefined and false.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// svg creates an SVG element with attributes.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// fmt formats a number for people: 1234567 → "1,234,567", 0.1234 → "0.12".
export function fmt(n, digits = 2) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (typeof n !== 'number') return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  const abs = Math.abs(n);
  const d = abs >= 100 ? 0 : abs >= 1 ? 1 : digits;
  return n.toLocaleString('en-US', {maximumFractionDigits: d, minimumFractionDigits: 0});
}

// when formats a time stamp as "2 Dec 2026, 10:49:17".
export function when(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return d.toLocaleString('en-GB', {day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

// table renders rows as a table with a caption and column headings.
export function table(caption, headings, rows, opts = {}) {
  return h('table', {class: opts.class || 'data'},
    h('caption', {class: opts.hideCaption ? 'visually-hidden' : null}, caption),
    h('thead', null, h('tr', null, headings.map((x) => h('th', {scope: 'col'}, x)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', null, r.map((c, i) =>
      i === 0 && opts.rowHeader ? h('th', {scope: 'row'}, c) : h('td', null, c))))
      : h('tr', null, h('td', {colspan: headings.length, class: 'empty'}, opts.empty || 'Nothing yet.'))));
}

// section renders a titled card.
export function card(title, ...children) {
  return h('section', {class: 'card', 'aria-label': title}, h('h2', null, title), ...children);
}

// notice renders a message box; kind is info, error or ok.
export function notice(kind, ...children) {
  return h('p', {class: `notice ${kind}`, role: kind === 'error' ? 'alert' : null}, ...children);
}
