// Audiences: the list with sizes and trends, and the builder.
import {h, fill, fmt, when, table, card, notice} from './dom.js';
import {get, post, put, session} from './api.js';
import {sparkline} from './charts.js';

export async function render(main, ctx) {
  const [mode, name] = ctx.params;
  if (mode === 'new' || mode === 'edit') return builder(main, ctx, mode === 'edit' ? name : null);
  return list(main, ctx);
}

async function list(main, ctx) {
  const sizes = await get('/v1/audience-sizes');
  if (!ctx.current()) return;
  const rows = sizes.audiences.map((a) => {
    const trend = a.trend.map((p) => p.count);
    const first = trend.length ? trend[0] : a.members;
    const change = a.members - first;
    return [
      ctx.admin ? h('a', {href: `#/audiences/edit/${encodeURIComponent(a.name)}`}, a.name) : a.name,
      h('code', {class: 'rule'}, a.rule),
      (a.destinations || []).join(', ') || 'every destination that takes it',
      h('span', {class: 'num'}, fmt(a.members)),
      h('span', {class: 'trend'}, sparkline(trend, `${a.name}: ${fmt(a.members)} members, ${change >= 0 ? 'up' : 'down'} ${fmt(Math.abs(change))} over the last hour`),
        ` ${change > 0 ? '+' : ''}${fmt(change)}`),
    ];
  });
  fill(main, 
    h('div', {class: 'titlebar'}, h('h1', null, 'Audiences'),
      ctx.admin ? h('a', {href: '#/audiences/new', class: 'button primary'}, 'New audience') : null),
    h('p', {class: 'lede'}, `${fmt(sizes.profiles)} customer profiles. Members were counted ${when(sizes.as_of)}; the trend covers the last hour.`),
    ctx.admin ? null : notice('info', 'You have viewer access: you can see audiences but not create or change them.'),
    table('Audiences', ['Name', 'Rule', 'Feeds', 'Members', 'Trend (last hour)'], rows,
      {empty: 'No audiences yet. Create one with “New audience”.', hideCaption: true}));
}

// quote writes a string as an expr-lang literal.
const quote = (s) => JSON.stringify(String(s));
const ident = (s) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(s);
const path = (root, key) => (ident(key) ? `${root}.${key}` : `${root}[${quote(key)}]`);

const OPS = {
  number: [['>=', 'is at least'], ['>', 'is more than'], ['<=', 'is at most'], ['<', 'is less than'], ['==', 'equals'], ['!=', 'is not']],
  string: [['==', 'is'], ['!=', 'is not'], ['contains', 'contains'], ['startsWith', 'starts with'], ['exists', 'is set']],
  boolean: [['true', 'is true'], ['false', 'is false']],
  any: [['exists', 'is set'], ['missing', 'is not set']],
};

// fields turns the catalog into the builder's menu, grouped.
function fields(cat) {
  const groups = [];
  groups.push({label: 'Traits', items: cat.traits.map((t) => ({
    id: `trait:${t.key}`, label: t.key, expr: path('traits', t.key),
    type: ['number', 'string', 'boolean'].includes(t.type) ? t.type : 'any', examples: t.examples || [],
    help: `Trait seen on ${fmt(t.count)} of ${fmt(cat.sampled)} sampled customers.`,
  }))});
  groups.push({label: 'Features', items: cat.features.map((f) => ({
    id: `feature:${f.name}`, label: f.name, expr: path('features', f.name),
    type: ['first', 'last', 'most_frequent'].includes(f.agg) ? 'string' : 'number',
    help: `${f.agg.replace('_', ' ')} of ${f.event || f.type}${f.property ? ` ${f.property}` : ''} over ${f.window === 'lifetime' ? 'the customer’s lifetime' : `the last ${f.window}`}.`,
  }))});
  const preds = [];
  for (const hz of cat.horizons) {
    for (const pf of cat.prediction_fields) {
      preds.push({id: `pred:${hz}:${pf.name}`, label: `${pf.name} (${hz})`, expr: `${path('predictions', hz)}.${pf.name}`,
        type: 'number', help: pf.description + (pf.name === 'p_alive' ? ' Enter a number from 0 to 1.' : '')});
    }
  }
  groups.push({label: 'Predictions', items: preds});
  groups.push({label: 'RFM', items: [
    {id: 'rfm:segment', label: 'RFM segment', expr: 'rfm.segment', type: 'string', examples: cat.segments, help: 'The customer’s RFM segment.'},
    ...cat.rfm_fields.map((f) => ({id: `rfm:${f.name}`, label: `RFM ${f.name.toUpperCase()} score`, expr: `rfm.${f.name}`, type: 'number', help: f.description})),
  ]});
  groups.push({label: 'Events (how many)', items: cat.events.map((e) => ({
    id: `event:${e}`, label: e, expr: path('events', e), type: 'number', help: `How many ${e} events the customer has.`,
  }))});
  return groups.filter((g) => g.items.length);
}

// condition renders one field–operator–value expression.
function condition(f, op, value) {
  switch (op) {
    case 'exists': return `${f.expr} != nil`;
    case 'missing': return `${f.expr} == nil`;
    case 'true': return `${f.expr} == true`;
    case 'false': return `${f.expr} == false`;
    case 'contains': case 'startsWith': return `${f.expr} ${op} ${quote(value)}`;
  }
  if (f.type === 'number') {
    const n = Number(value);
    return `${f.expr} ${op} ${Number.isFinite(n) && String(value).trim() !== '' ? n : 0}`;
  }
  return `${f.expr} ${op} ${quote(value)}`;
}

async function builder(main, ctx, editing) {
  const [cat, dests, existing] = await Promise.all([
    get('/v1/catalog'),
    ctx.admin ? get('/v1/destinations') : Promise.resolve({destinations: []}),
    editing ? get(`/v1/audiences/${encodeURIComponent(editing)}`, {what: `an audience called ${editing}`}) : Promise.resolve(null),
  ]);
  if (!ctx.current()) return;
  const groups = fields(cat);
  const byId = new Map(groups.flatMap((g) => g.items).map((f) => [f.id, f]));
  let rows = [];
  let handEdited = !!existing;

  const nameInput = h('input', {id: 'aud-name', name: 'name', required: true, pattern: '[a-z][a-z0-9_]*', value: existing ? existing.name : '',
    readonly: !!existing, 'aria-describedby': 'aud-name-help', autocomplete: 'off'});
  const combine = h('select', {id: 'aud-combine'}, h('option', {value: '&&'}, 'all of these conditions'), h('option', {value: '||'}, 'any of these conditions'));
  const condList = h('ol', {class: 'conditions', id: 'conditions', 'aria-label': 'Conditions'});
  const exprArea = h('textarea', {id: 'aud-rule', name: 'rule', rows: 3, spellcheck: 'false', 'aria-describedby': 'aud-rule-help'});
  exprArea.value = existing ? existing.rule : '';
  const ruleHelp = h('p', {id: 'aud-rule-help', class: 'help'}, 'The rule tessera evaluates, written from the conditions above. You can edit it directly.');
  const previewBox = h('div', {id: 'preview', class: 'preview', 'aria-live': 'polite'},
    ctx.admin ? null : notice('info', 'Previews need administrator access.'));
  const activate = h('input', {type: 'checkbox', id: 'aud-existing', checked: existing ? !!existing.activate_existing : false});
  const destBoxes = dests.destinations.map((d) => h('input', {type: 'checkbox', id: `dest-${d.name}`, value: d.name,
    checked: existing ? (existing.destinations || []).includes(d.name) : false}));
  const saveBtn = h('button', {type: 'submit', class: 'primary', id: 'save', disabled: !ctx.admin, 'aria-describedby': ctx.admin ? null : 'save-help'},
    existing ? 'Save changes' : 'Save audience');
  const formErr = h('div', {'aria-live': 'assertive'});

  const addRow = (fieldId, op, value) => {
    const fieldSel = h('select', {'aria-label': 'Field', class: 'cond-field'},
      groups.map((g) => h('optgroup', {label: g.label}, g.items.map((f) => h('option', {value: f.id}, f.label)))));
    if (fieldId) fieldSel.value = fieldId;
    const opSel = h('select', {'aria-label': 'Operator', class: 'cond-op'});
    const valInput = h('input', {'aria-label': 'Value', class: 'cond-value', autocomplete: 'off'});
    const list = h('datalist', {id: `examples-${Math.random().toString(36).slice(2)}`});
    const help = h('p', {class: 'help cond-help'});
    const remove = h('button', {type: 'button', class: 'link', 'aria-label': 'Remove this condition'}, 'Remove');
    const row = {fieldSel, opSel, valInput};
    const li = h('li', {class: 'condition'}, fieldSel, opSel, valInput, list, remove, help);
    const syncField = () => {
      const f = byId.get(fieldSel.value);
      const ops = OPS[f.type] || OPS.any;
      const keep = opSel.value;
      opSel.replaceChildren(...ops.map(([v, l]) => h('option', {value: v}, l)));
      if (ops.some(([v]) => v === keep)) opSel.value = keep;
      valInput.type = f.type === 'number' ? 'number' : 'text';
      valInput.step = 'any';
      list.replaceChildren(...(f.examples || []).map((x) => h('option', {value: x})));
      valInput.setAttribute('list', list.id);
      help.textContent = f.help || '';
      syncOp();
    };
    const syncOp = () => {
      valInput.hidden = ['exists', 'missing', 'true', 'false'].includes(opSel.value);
    };
    fieldSel.addEventListener('change', () => { syncField(); changed(); });
    opSel.addEventListener('change', () => { syncOp(); changed(); });
    valInput.addEventListener('input', changed);
    remove.addEventListener('click', () => {
      rows = rows.filter((r) => r !== row);
      li.remove();
      changed();
      addBtn.focus();
    });
    syncField();
    if (op) opSel.value = op;
    syncOp();
    if (value !== undefined) valInput.value = value;
    rows.push(row);
    condList.append(li);
    return row;
  };

  const written = () => rows.map((r) => condition(byId.get(r.fieldSel.value), r.opSel.value, r.valInput.value))
    .map((c) => (rows.length > 1 ? `(${c})` : c)).join(` ${combine.value} `);

  let timer = null, seq = 0;
  const schedulePreview = () => {
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  };
  ctx.onLeave(() => clearTimeout(timer));
  const preview = async () => {
    const rule = exprArea.value.trim();
    const mine = ++seq;
    if (!rule) {
      previewBox.replaceChildren(h('p', {class: 'help'}, 'Add a condition to see how many customers match.'));
      return;
    }
    if (!ctx.admin) {
      previewBox.replaceChildren(notice('info', 'Previews need administrator access.'));
      return;
    }
    previewBox.setAttribute('aria-busy', 'true');
    try {
      const p = await post('/v1/audiences/preview', {rule});
      if (mine !== seq || !ctx.current()) return;
      previewBox.replaceChildren(
        h('p', {class: 'preview-count'}, h('strong', {id: 'preview-count', dataset: {count: p.count, rule}}, fmt(p.count)),
          ` of ${fmt(p.scanned)} customers match`),
        p.sample.length ? h('div', null, h('h3', null, 'A sample of matching customers'),
          h('ul', {class: 'sample', id: 'preview-sample'}, p.sample.map((id) => h('li', null, h('code', null, id))))) : null);
    } catch (ex) {
      if (mine !== seq || !ctx.current()) return;
      const b = ex.body || {};
      previewBox.replaceChildren(notice('error', ex.status === 400
        ? `The rule has a problem${b.line ? ` at line ${b.line}, column ${b.column}` : ''}: ${ex.detail}`
        : ex.message));
    } finally {
      previewBox.removeAttribute('aria-busy');
    }
  };
  function changed() {
    if (!handEdited) exprArea.value = written();
    schedulePreview();
  }
  const resetBtn = h('button', {type: 'button', class: 'link', hidden: !handEdited}, 'Write the rule from the conditions again');
  exprArea.addEventListener('input', () => {
    handEdited = true;
    resetBtn.hidden = false;
    schedulePreview();
  });
  resetBtn.addEventListener('click', () => {
    handEdited = false;
    resetBtn.hidden = true;
    exprArea.value = written();
    schedulePreview();
  });
  combine.addEventListener('change', changed);
  const addBtn = h('button', {type: 'button', id: 'add-condition'}, 'Add condition');
  addBtn.addEventListener('click', () => {
    const r = addRow();
    changed();
    r.fieldSel.focus();
  });

  const form = h('form', {class: 'builder', 'aria-labelledby': 'builder-title', novalidate: true},
    h('div', {class: 'titlebar'}, h('h1', {id: 'builder-title'}, existing ? `Audience ${existing.name}` : 'New audience'),
      h('a', {href: '#/audiences'}, 'Back to audiences')),
    ctx.admin ? null : notice('info', h('span', {id: 'save-help'}, 'You have viewer access: you can explore the builder, but only an administrator can preview and save audiences.')),
    h('div', {class: 'grid builder-grid'},
      h('div', null,
        card('Who belongs',
          h('div', {class: 'field'}, h('label', {for: 'aud-name'}, 'Audience name'), nameInput,
            h('p', {id: 'aud-name-help', class: 'help'}, 'Lower-case letters, digits and underscores, such as likely_to_churn.')),
          h('div', {class: 'field inline'}, h('label', {for: 'aud-combine'}, 'Customers who match'), combine),
          condList, addBtn,
          h('div', {class: 'field'}, h('label', {for: 'aud-rule'}, 'Rule'), exprArea, ruleHelp, resetBtn)),
        card('Where to send them',
          dests.destinations.length
            ? h('fieldset', null, h('legend', null, 'Destinations to feed'),
              dests.destinations.map((d, i) => h('div', {class: 'check'}, destBoxes[i], h('label', {for: `dest-${d.name}`}, `${d.name} (${d.type})`))))
            : h('p', {class: 'help'}, ctx.admin ? 'No destinations are configured.' : 'Destinations are visible to administrators.'),
          h('div', {class: 'check'}, activate, h('label', {for: 'aud-existing'}, 'Also send the customers who already match')))),
      card('Preview', previewBox)),
    formErr,
    h('div', {class: 'actions'}, saveBtn));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.replaceChildren();
    if (!ctx.admin) {
      formErr.append(notice('error', 'Only an administrator can save audiences.'));
      return;
    }
    const name = nameInput.value.trim();
    const rule = exprArea.value.trim();
    if (!/^[a-z][a-z0-9_]*$/.test(name)) {
      formErr.append(notice('error', 'Give the audience a name made of lower-case letters, digits and underscores, starting with a letter.'));
      nameInput.focus();
      return;
    }
    if (!rule) {
      formErr.append(notice('error', 'Add at least one condition.'));
      addBtn.focus();
      return;
    }
    const body = {name, rule, destinations: destBoxes.filter((b) => b.checked).map((b) => b.value), activate_existing: activate.checked};
    saveBtn.disabled = true;
    try {
      if (existing) await put(`/v1/audiences/${encodeURIComponent(name)}`, body);
      else await post('/v1/audiences', body);
      ctx.flash(`Audience ${name} saved.`);
      location.hash = '#/audiences';
    } catch (ex) {
      const b = ex.body || {};
      formErr.append(notice('error', ex.status === 400
        ? `The audience was not saved: ${ex.detail}${b.line ? ` (line ${b.line}, column ${b.column})` : ''}`
        : `The audience was not saved. ${ex.message}`));
      saveBtn.disabled = false;
    }
  });

  fill(main, form);
  if (!existing) {
    const first = groups[0] && groups[0].items[0];
    if (first) addRow(first.id);
    changed();
  } else {
    schedulePreview();
  }
  if (session.admin && !existing) { nameInput.focus(); ctx.keepFocus = true; }
}
