// Destinations: each one's state and counts, recent deliveries and errors,
// and its dead letters with a replay button.
import {h, fill, fmt, when, table, card, notice} from './dom.js';
import {get, post} from './api.js';

const REFRESH_MS = 3000;
const DEAD_REFRESH_MS = 15000;

const STATES = {
  connected: 'Connected', connecting: 'Connecting', starting: 'Starting', stopped: 'Stopped',
};

export async function render(main, ctx) {
  const [name] = ctx.params;
  if (name) return detail(main, ctx, name);
  const draw = async () => {
    const {destinations} = await get('/v1/destinations');
    if (!ctx.current()) return;
    // Each entry is the definition, with the runner's status under
    // "status" once it runs here.
    const rows = destinations.map((d) => {
      const st = d.status || {state: 'starting'};
      return [
        h('a', {href: `#/destinations/${encodeURIComponent(d.name)}`}, d.name), d.type, stateBadge(st),
        fmt(st.sent), fmt(st.failed), fmt(st.retried), fmt(st.dead_lettered), st.last_error || '—'];
    });
    tbl.replaceChildren(table('Destinations', ['Name', 'Type', 'State', 'Delivered', 'Failed attempts', 'Retried', 'Dead letters', 'Last error'], rows,
      {empty: 'No destinations are configured.', hideCaption: true}));
  };
  const tbl = h('div');
  fill(main, h('h1', null, 'Destinations'),
    h('p', {class: 'lede'}, 'Where audiences and triggers are delivered. Counts are since tessera started.'), tbl);
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}

function stateBadge(d) {
  const ok = d.state === 'connected';
  return h('span', {class: `badge ${ok ? 'ok' : d.state === 'stopped' ? 'bad' : 'warn'}`}, STATES[d.state] || d.state);
}

async function detail(main, ctx, name) {
  const base = `/v1/destinations/${encodeURIComponent(name)}`;
  const what = `a destination called ${name}`;
  const statusBox = h('div', {class: 'totals'});
  const errBox = h('div');
  const deliveries = h('div', {id: 'deliveries'});
  const dead = h('div', {id: 'dead-letters'});
  const replayMsg = h('div', {'aria-live': 'polite'});
  const replay = h('button', {type: 'button', id: 'replay'}, 'Replay dead letters');
  replay.addEventListener('click', async () => {
    if (!window.confirm(`Send ${name}'s dead letters again?`)) return;
    replay.disabled = true;
    replayMsg.replaceChildren();
    try {
      const r = await post(`${base}/replay`);
      replayMsg.replaceChildren(notice('ok', r.replayed ? `Sent ${fmt(r.replayed)} dead letter${r.replayed > 1 ? 's' : ''} again. They appear below as they are delivered.` : 'There was nothing new to replay.'));
      await Promise.all([draw(), drawDead()]);
    } catch (ex) {
      replayMsg.replaceChildren(notice('error', `The replay did not finish. ${ex.message}`));
    } finally {
      replay.disabled = false;
    }
  });
  // The status and the delivery log are in memory: cheap to poll. The
  // dead letters are read from Kafka: polled less often.
  const draw = async () => {
    const [st, dl] = await Promise.all([get(`${base}/status`, {what}), get(`${base}/deliveries?limit=50`, {what})]);
    if (!ctx.current()) return;
    statusBox.replaceChildren(
      h('div', {class: 'stat'}, h('span', {class: 'stat-value'}, stateBadge(st)), h('span', {class: 'stat-label'}, 'State')),
      stat('Delivered', st.sent), stat('Failed attempts', st.failed), stat('Retrying', st.retried),
      stat('Dead letters', st.dead_lettered), stat('Waiting', st.lag));
    fill(errBox, st.last_error ? notice('error', `Last error (${when(st.last_error_at)}): ${st.last_error}`) : null);
    deliveries.replaceChildren(table('Recent deliveries', ['When', 'Audience or trigger', 'What', 'Customer', 'Status', 'Attempts', 'Error'],
      dl.deliveries.map((d) => [when(d.at), d.name, d.type.replace('_', ' '), h('code', null, d.profile_id),
        h('span', {class: `badge ${d.status === 'delivered' ? 'ok' : d.status === 'retrying' ? 'warn' : 'bad'}`}, d.status.replace('_', ' ')),
        fmt(d.attempts), d.error || '']),
      {empty: 'Nothing delivered yet.', class: 'data deliveries', hideCaption: true}));
  };
  const drawDead = async () => {
    const dq = await get(`${base}/dead-letters?limit=50`, {what});
    if (!ctx.current()) return;
    dead.replaceChildren(
      h('p', null, `${fmt(dq.total)} dead letter${dq.total === 1 ? '' : 's'}, ${fmt(dq.pending)} not replayed yet.`),
      table('Dead letters', ['When', 'Audience or trigger', 'Customer', 'Attempts', 'Error', 'Replayed'],
        dq.dead_letters.map((d) => [when(d.at), d.name || '(unreadable)', d.profile_id ? h('code', null, d.profile_id) : '—', fmt(d.attempts), d.error, d.replayed ? 'Yes' : 'No']),
        {empty: 'No dead letters: every activation was delivered or is still being tried.', hideCaption: true}));
    replay.disabled = dq.pending === 0;
  };
  fill(main, 
    h('div', {class: 'titlebar'}, h('h1', null, `Destination ${name}`), h('a', {href: '#/destinations'}, 'All destinations')),
    statusBox, errBox,
    card('Recent deliveries', deliveries),
    card('Dead letters', h('p', {class: 'help'}, 'Activations that could not be delivered after every retry. Replaying sends them to this destination again.'), dead, replay, replayMsg));
  await Promise.all([draw(), drawDead()]);
  const timer = setInterval(() => draw().catch(() => {}), REFRESH_MS);
  const deadTimer = setInterval(() => drawDead().catch(() => {}), DEAD_REFRESH_MS);
  ctx.onLeave(() => { clearInterval(timer); clearInterval(deadTimer); });
}

function stat(label, value) {
  return h('div', {class: 'stat'}, h('span', {class: 'stat-value'}, fmt(value)), h('span', {class: 'stat-label'}, label));
}
