// The mt5bot console: polls /ui/data (served from the helper thread's snapshot) and draws it;
// actions go to the control API with the key kept in sessionStorage, never in a URL or cookie.
'use strict';

const KEY = 'mt5bot.api_key';
const POLL_MS = 2000;
let points = [];
let lastPointMs = null;
let lastStatus = null;

const $ = (id) => document.getElementById(id);

function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function money(x, currency) {
  return fmt(x, 2) + (currency ? ' ' + currency : '');
}

// A fraction as a percentage: two decimals, or two significant digits when smaller.
function pct(f) {
  const p = f * 100;
  return (p !== 0 && Math.abs(p) < 0.01 ? p.toPrecision(2) : fmt(p, 2)) + ' %';
}

function setBadge(el, text, cls) {
  el.textContent = text;
  el.className = 'badge ' + cls;
}

function fillTable(id, rows, cells) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = $(id).querySelectorAll('th').length;
    td.className = 'empty';
    td.textContent = 'none';
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement('tr');
    for (const c of cells(row)) {
      const td = document.createElement('td');
      if (c instanceof Node) td.appendChild(c); else td.textContent = c;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function meter(headroom) {
  const wrap = document.createElement('span');
  const outer = document.createElement('span');
  outer.className = 'meter';
  const inner = document.createElement('span');
  const h = Math.max(0, Math.min(1, headroom));
  inner.style.width = (h * 100).toFixed(0) + '%';
  inner.style.background = h > 0.5 ? 'var(--good)' : h > 0.2 ? 'var(--warn)' : 'var(--bad)';
  outer.appendChild(inner);
  wrap.appendChild(outer);
  wrap.appendChild(document.createTextNode(fmt(h * 100, 0) + '%'));
  return wrap;
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm';
}

function render(data) {
  const s = data.status;
  $('build').textContent = 'v' + data.build.version + ' (' + data.build.commit.slice(0, 12) + ') · up ' + duration(data.uptime_s);
  const drops = Object.entries(data.signals_dropped || {});
  $('drops').textContent = drops.length ? 'dropped: ' + drops.map(([k, v]) => k + ' ' + v).join(', ') : 'nothing dropped';
  const a = data.alerts;
  if (a === null || a === undefined) {
    $('alerts-note').textContent = '(not watched: set PROM_QUERY_URL)';
    fillTable('alerts', [], () => []);
  } else if (a.error) {
    $('alerts-note').textContent = '(cannot read them: ' + a.error + ')';
  } else {
    $('alerts-note').textContent = a.source ? '(from ' + a.source + ')' : '';
    fillTable('alerts', a.alerts || [], (m) => [m.alertname || '?', m.severity || '–', m.instance || '–', m.job || '–']);
  }
  if (!s) {
    $('freshness').textContent = 'waiting for the engine’s first status…';
    return;
  }
  lastStatus = s;
  const t = s.trading;
  setBadge($('state'), t.state, t.state);
  $('state-why').textContent = 'by ' + t.by + (t.reason ? ': ' + t.reason : '') + ' · since ' + t.since.replace('T', ' ').slice(0, 19) + ' UTC';
  const v = s.venue;
  const venueText = v.name + (!v.up ? ' down' : v.ready_for_orders ? ' up' : ' up, not ready for orders');
  setBadge($('venue'), venueText + (v.open_orders ? ' · ' + v.open_orders + ' at the venue' : ''), v.up && v.ready_for_orders ? 'up' : 'down');
  const e = s.equity, cur = e.currency;
  $('equity').textContent = money(e.equity, cur);
  $('balance').textContent = 'balance ' + money(e.balance, cur) + ' · day start ' + money(e.day_start_equity, cur);
  const dd = e.peak_equity > 0 ? (e.peak_equity - e.equity) / e.peak_equity : 0;
  $('drawdown').textContent = pct(dd);
  $('peak').textContent = 'peak ' + money(e.peak_equity, cur);
  $('trades').textContent = String(s.trades);
  $('losses').textContent = 'losses in a row: ' + e.losses_in_a_row;
  $('queue').textContent = s.queue.depth + ' / ' + s.queue.capacity;
  fillTable('positions', s.positions, (p) => [p.symbol, fmt(p.qty, 2), fmt(p.avg_price, 5),
    p.mark === undefined ? '–' : fmt(p.mark, 5), money(p.open_pnl, cur), money(p.realized_money, cur),
    p.sl === undefined ? '–' : fmt(p.sl, 5), p.tp === undefined ? '–' : fmt(p.tp, 5), p.stops_held_by || '–']);
  fillTable('orders', s.open_orders, (o) => [o.id, o.symbol, o.side, fmt(o.qty, 2), fmt(o.filled, 2), fmt(o.price, 5), o.state]);
  fillTable('breakers', e.breakers, (b) => [b.name, b.action, fmt(b.value, 2), fmt(b.limit, 2), meter(b.headroom)]);
  const fills = (s.recent_fills || []).slice(-8).reverse();
  fillTable('fills', fills, (f) => [f.at.slice(11, 23), f.symbol, f.side, fmt(f.qty, 2), fmt(f.price, 5), f.id]);
  fillTable('markets', s.markets, (m) => [m.symbol, m.calendar, m.phase, m.next_change ? m.next_change.replace('T', ' ').slice(0, 16) : '–']);
  const age = data.status_age_ms;
  $('freshness').textContent = 'engine status ' + (age === null ? '–' : (age / 1000).toFixed(1) + ' s old') + ' · ' + points.length + ' chart points';
}

const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs) {
  const n = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
}

function drawChart() {
  const svg = $('chart');
  svg.replaceChildren();
  const W = 900, H = 260, top = 10, eqH = 170, ddTop = 195, ddH = 55;
  if (points.length < 2) {
    const t = el('text', { x: 20, y: 30 });
    t.textContent = 'collecting equity points…';
    svg.appendChild(t);
    return;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  let lo = Infinity, hi = -Infinity, ddMax = 0;
  for (const p of points) {
    lo = Math.min(lo, p[1], p[2]);
    hi = Math.max(hi, p[1], p[2]);
    if (p[3] > 0) ddMax = Math.max(ddMax, (p[3] - p[1]) / p[3]);
  }
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  if (ddMax <= 0) ddMax = 0.0001;
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * W;
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * eqH;
  const line = (i) => points.map((p) => x(p[0]).toFixed(1) + ',' + y(p[i]).toFixed(1)).join(' ');
  svg.appendChild(el('line', { x1: 0, y1: ddTop, x2: W, y2: ddTop, class: 'axis' }));
  svg.appendChild(el('polyline', { points: line(2), class: 'balance' }));
  svg.appendChild(el('polyline', { points: line(1), class: 'equity', id: 'equity-line' }));
  const dd = points.map((p) => x(p[0]).toFixed(1) + ',' + (ddTop + (p[3] > 0 ? (p[3] - p[1]) / p[3] : 0) / ddMax * ddH).toFixed(1));
  svg.appendChild(el('polygon', { points: '0,' + ddTop + ' ' + dd.join(' ') + ' ' + W + ',' + ddTop, class: 'dd' }));
  const label = (tx, ty, text) => { const n = el('text', { x: tx, y: ty }); n.textContent = text; svg.appendChild(n); };
  label(4, top + 10, fmt(hi, 2));
  label(4, top + eqH, fmt(lo, 2));
  label(4, ddTop + ddH, 'drawdown, deepest ' + pct(ddMax));
  $('chart-span').textContent = '(' + duration((t1 - t0) / 1000) + ', equity solid, balance dashed)';
}

async function poll() {
  try {
    const url = lastPointMs === null ? '/ui/data' : '/ui/data?since=' + lastPointMs;
    const r = await fetch(url, { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const data = await r.json();
    for (const p of data.equity_history.points) points.push(p);
    if (points.length > 7200) points = points.slice(points.length - 7200);
    if (points.length) lastPointMs = points[points.length - 1][0];
    render(data);
    drawChart();
  } catch (e) {
    $('freshness').textContent = 'cannot reach mt5bot: ' + e.message;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function showResult(text, ok) {
  const r = $('result');
  r.textContent = text;
  r.className = ok ? 'ok' : 'error';
}

function keyState() {
  $('key-state').textContent = sessionStorage.getItem(KEY) ? 'a key is set for this tab' : 'no key: actions will ask for one';
}

async function act(action) {
  const key = sessionStorage.getItem(KEY);
  if (!key) { showResult('type the API key first', false); return; }
  if (action === 'flatten' && !window.confirm('Flatten: cancel every open order and close every position at market, then halt?')) return;
  const reason = $('reason').value.trim();
  const body = ['halt', 'reduce', 'resume'].includes(action) ? JSON.stringify({ reason: reason || 'from the console' }) : '';
  try {
    const r = await fetch('/api/v1/' + action, {
      method: 'POST',
      headers: { 'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json' },
      body,
      cache: 'no-store',
    });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 401) showResult(action + ': the API key was refused', false);
    else if (!r.ok) showResult(action + ': ' + (answer.error || 'HTTP ' + r.status), false);
    else showResult(action + ': done' + (answer.state ? ' (state ' + answer.state + ')' : ''), true);
  } catch (e) {
    showResult(action + ': cannot reach mt5bot: ' + e.message, false);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = $('key').value.trim();
    if (k) sessionStorage.setItem(KEY, k);
    $('key').value = '';
    keyState();
  });
  $('forget').addEventListener('click', () => { sessionStorage.removeItem(KEY); keyState(); });
  for (const b of document.querySelectorAll('button[data-action]')) {
    b.addEventListener('click', () => act(b.dataset.action));
  }
  keyState();
  poll();
});
