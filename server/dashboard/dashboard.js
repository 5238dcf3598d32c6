/**
 * The dashboard page: polls /dashboard.json once a second and turns the hub's cumulative
 * counters into rates and percentiles by the difference between reads, so the hub keeps no
 * history for it. Rows are updated in place (never rebuilt), so focus and scroll positions
 * survive every update.
 */
(() => {
  const TOKEN_KEY = 'astromesh.monitorToken';
  const POLL_MS = 1000;
  /** Seconds of history in the charts. */
  const HISTORY = 120;
  const MIN_SPAN = 30;
  /** Samples the table's rates and percentiles are taken over. */
  const WINDOW = 5;
  const CHART_HEIGHT = 170;
  /** Rows a table shows at most: a hub with thousands of services stays readable and quick to update. */
  const MAX_ROWS = 100;

  const $ = (id) => document.getElementById(id);

  /** One entry per poll: seconds, and per service and peer what changed since the poll before. */
  const history = [];
  let prev = null;
  let selected = null;
  let paused = false;
  let timer = null;
  let inflight = null;
  let buckets = null;
  let charts = null;
  /** The last state polled, so a change of the filter shows at once. */
  let lastSnap = null;

  // ---- counters to rates and percentiles ----

  /** Upper bound of bucket `i` in ms; the last bucket (one past the bounds) has none. */
  function bound(i) {
    return i >= buckets.boundsMs.length ? Number.POSITIVE_INFINITY : buckets.boundsMs[i];
  }

  /** The `q` quantile of a histogram in ms, interpolated within its bucket (linearly in the first). */
  function quantile(counts, q) {
    let total = 0;
    for (const c of counts) total += c;
    if (total === 0) return null;
    const rank = q * total;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i];
      if (c === 0) continue;
      if (seen + c >= rank) {
        const hi = bound(i);
        const lo = i === 0 ? 0 : bound(i - 1);
        if (!Number.isFinite(hi)) return lo;
        const f = (rank - seen) / c;
        return lo === 0 ? hi * f : lo * (hi / lo) ** f;
      }
      seen += c;
    }
    return bound(counts.length - 2);
  }

  /** What changed between two reads of one service; null when its counters started over. */
  function serviceDelta(now, before) {
    if (!before || now.requests < before.requests || now.latency.length !== before.latency.length) return null;
    const lat = new Array(now.latency.length);
    for (let i = 0; i < lat.length; i++) lat[i] = now.latency[i] - before.latency[i];
    return { req: now.requests - before.requests, err: now.errors - before.errors, lat };
  }

  function record(snap) {
    const t = Date.now() / 1000;
    const restarted = !prev || prev.hubId !== snap.hubId || snap.uptimeMs < prev.uptimeMs;
    const dt = restarted ? 0 : (snap.uptimeMs - prev.uptimeMs) / 1000;
    // `all` is the sum over every service, kept with the sample so the page need not add them up again.
    const entry = { t, dt, services: new Map(), peers: new Map(), all: { req: 0, err: 0, lat: new Array(snap.latencyBuckets.boundsMs.length + 1).fill(0) } };
    if (!restarted && dt > 0) {
      const before = new Map(prev.services.map((s) => [s.name, s]));
      for (const s of snap.services) {
        const d = serviceDelta(s, before.get(s.name));
        if (!d) continue;
        entry.services.set(s.name, d);
        entry.all.req += d.req;
        entry.all.err += d.err;
        for (let i = 0; i < d.lat.length && i < entry.all.lat.length; i++) entry.all.lat[i] += d.lat[i];
      }
      const peersBefore = new Map(prev.mesh.peers.map((p) => [peerKey(p), p]));
      for (const p of snap.mesh.peers) {
        const b = peersBefore.get(peerKey(p));
        if (b && p.forwardedOut >= b.forwardedOut && p.forwardedIn >= b.forwardedIn) {
          entry.peers.set(peerKey(p), { out: p.forwardedOut - b.forwardedOut, in: p.forwardedIn - b.forwardedIn });
        }
      }
    }
    if (restarted) history.length = 0;
    history.push(entry);
    while (history.length > HISTORY) history.shift();
    prev = snap;
  }

  /** Sums of the last `n` samples for service `name` (every service when null). */
  function windowOf(name, n) {
    let req = 0;
    let err = 0;
    let dt = 0;
    const lat = new Array(buckets.boundsMs.length + 1).fill(0);
    for (let k = Math.max(0, history.length - n); k < history.length; k++) {
      const e = history[k];
      if (e.dt <= 0) continue;
      dt += e.dt;
      const d = name === null ? e.all : e.services.get(name);
      if (!d) continue;
      req += d.req;
      err += d.err;
      for (let i = 0; i < lat.length; i++) lat[i] += d.lat[i];
    }
    return { rate: dt > 0 ? req / dt : null, errRate: dt > 0 ? err / dt : null, lat, dt };
  }

  function peerRates(key, n) {
    let out = 0;
    let inn = 0;
    let dt = 0;
    for (let k = Math.max(0, history.length - n); k < history.length; k++) {
      const e = history[k];
      const d = e.peers.get(key);
      if (!d || e.dt <= 0) continue;
      out += d.out;
      inn += d.in;
      dt += e.dt;
    }
    return dt > 0 ? { out: out / dt, in: inn / dt } : null;
  }

  // ---- formatting ----

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const oneFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

  function rate(v) {
    if (v === null || v === undefined) return '—';
    return v < 10 ? oneFmt.format(v) : intFmt.format(v);
  }

  function ms(v) {
    if (v === null || v === undefined) return '—';
    if (v < 1) return `${v.toFixed(2)} ms`;
    if (v < 10) return `${v.toFixed(1)} ms`;
    if (v < 1000) return `${Math.round(v)} ms`;
    return `${(v / 1000).toFixed(1)} s`;
  }

  function count(v) {
    return v === null || v === undefined ? '—' : intFmt.format(v);
  }

  function duration(msTotal) {
    let s = Math.floor(msTotal / 1000);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${m}m`;
    if (m > 0) return `${m}m ${s}s`;
    return `${s}s`;
  }

  function peerKey(p) {
    return `${p.hubId ?? ''}|${p.address}|${p.dialed ? 'out' : 'in'}`;
  }

  // ---- tables, updated in place ----

  /** A column: its heading, the class of its <col> (its width), and whether it holds numbers. */
  const plain = (heading, width = '') => ({ heading, width, num: false });
  const numeric = (heading, width = '') => ({ heading, width, num: true });

  /**
   * The tables, by the id of their section, built once: a table `<id>-table` in a wrapper that
   * scrolls, and with `more` a note `<id>-more` of the rows left out. The render functions
   * below fill the rows, cell for cell in the order of these columns.
   */
  const TABLES = {
    services: {
      cls: 'services',
      columns: [
        plain('service', 'c-name'),
        numeric('req/s'),
        numeric('errors/s'),
        numeric('p50'),
        numeric('p99'),
        numeric('requests', 'c-wide'),
        numeric('queued'),
        numeric('in flight'),
        numeric('workers'),
        numeric('long-polls'),
      ],
    },
    workers: {
      more: true,
      columns: [plain('instance', 'c-name'), plain('service', 'c-name'), numeric('credit'), numeric('in flight'), plain('state'), plain('address', 'c-addr')],
    },
    longpoll: { more: true, columns: [plain('service', 'c-name'), numeric('polls waiting'), numeric('jobs leased')] },
    peers: {
      columns: [plain('hub', 'c-name'), plain('link'), numeric('rtt'), numeric('members'), numeric('fwd out/s'), numeric('fwd in/s'), numeric('in flight')],
    },
    rings: { more: true, columns: [plain('stream', 'c-name'), plain('epoch · digest'), plain('members (instance @ hub)', 'c-members')] },
  };

  for (const [id, spec] of Object.entries(TABLES)) {
    const table = document.createElement('table');
    table.id = `${id}-table`;
    if (spec.cls) table.className = spec.cls;
    const cols = table.appendChild(document.createElement('colgroup'));
    const head = table.createTHead().insertRow();
    for (const c of spec.columns) {
      const col = cols.appendChild(document.createElement('col'));
      if (c.width) col.className = c.width;
      const th = head.appendChild(document.createElement('th'));
      th.scope = 'col';
      if (c.num) th.className = 'num';
      th.textContent = c.heading;
    }
    table.createTBody();
    // The keyboard reaches the wrapper, to scroll a table wider or longer than it.
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';
    wrap.tabIndex = 0;
    wrap.append(table);
    $(id).append(wrap);
    if (spec.more) {
      const note = document.createElement('p');
      note.id = `${id}-more`;
      note.className = 'hint more';
      note.setAttribute('aria-live', 'polite');
      $(id).append(note);
    }
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function setClass(el, cls) {
    if (el.className !== cls) el.className = cls;
  }

  /**
   * Makes `tbody` show one row per item, in order, reusing the row of each key: a cell is
   * `text`, or `{ text, cls, title }`, or null to leave it to `created` (which builds it once).
   */
  function syncRows(tbody, items, keyOf, cellsOf, created, emptyText) {
    const columns = tbody.parentElement.tHead.rows[0].cells.length;
    const rows = new Map();
    for (const tr of Array.from(tbody.rows)) rows.set(tr.dataset.key, tr);
    if (items.length === 0) {
      let tr = rows.get('');
      for (const [k, r] of rows) if (k !== '') r.remove();
      if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.key = '';
        const td = document.createElement('td');
        td.colSpan = columns;
        td.className = 'empty';
        tr.append(td);
        tbody.append(tr);
      }
      setText(tr.cells[0], emptyText);
      return;
    }
    rows.get('')?.remove();
    rows.delete('');
    let at = 0;
    for (const item of items) {
      const key = keyOf(item);
      let tr = rows.get(key);
      const cells = cellsOf(item);
      if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.key = key;
        cells.forEach((_, j) => {
          tr.append(document.createElement(j === 0 ? 'th' : 'td'));
          if (j === 0) tr.cells[0].scope = 'row';
        });
        created?.(tr, item);
      }
      rows.delete(key);
      cells.forEach((c, j) => {
        if (c === null) return;
        const td = tr.cells[j];
        const cell = typeof c === 'object' ? c : { text: c };
        setText(td, cell.text);
        setClass(td, cell.cls ?? '');
        if (cell.title !== undefined && td.title !== cell.title) td.title = cell.title;
      });
      // Rows keep their order from one update to the next: only new rows move into place.
      if (tbody.rows[at] !== tr) tbody.insertBefore(tr, tbody.rows[at] ?? null);
      at++;
    }
    for (const tr of rows.values()) tr.remove();
  }

  const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  /** What the filter box asks for: services whose name contains it (any case). */
  function matches(name) {
    const f = $('filter').value.trim().toLowerCase();
    return f === '' || name.toLowerCase().includes(f);
  }

  /** The items of a table the filter lets through, at most MAX_ROWS; says how many were left out. */
  function shown(items, nameOf, noteId, what) {
    const kept = items.filter((x) => matches(nameOf(x)));
    const more = kept.length - MAX_ROWS;
    setText($(noteId), more > 0 ? `showing ${count(MAX_ROWS)} of ${count(kept.length)} ${what}: filter to see the others` : '');
    return more > 0 ? kept.slice(0, MAX_ROWS) : kept;
  }

  function renderServices(snap) {
    const tbody = $('services-table').tBodies[0];
    const services = shown([...snap.services].sort(byName), (s) => s.name, 'services-more', 'services');
    syncRows(
      tbody,
      services,
      (s) => s.name,
      (s) => {
        const w = windowOf(s.name, WINDOW);
        return [
          null,
          { text: rate(w.rate), cls: 'num' },
          { text: rate(w.errRate), cls: w.errRate > 0 ? 'num state-bad' : 'num' },
          { text: ms(quantile(w.lat, 0.5)), cls: 'num' },
          { text: ms(quantile(w.lat, 0.99)), cls: 'num' },
          { text: count(s.requests), cls: 'num' },
          { text: count(s.queued), cls: s.queued > 0 ? 'num state-dialing' : 'num' },
          { text: count(s.inflight), cls: 'num' },
          { text: count(s.workers), cls: s.workers === 0 && !s.served ? 'num state-bad' : 'num' },
          { text: count(s.longPollWaiting), cls: 'num' },
        ];
      },
      (tr, s) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'pick';
        button.textContent = s.name;
        button.title = `Chart ${s.name}`;
        button.setAttribute('aria-pressed', 'false');
        button.addEventListener('click', () => select(selected === s.name ? null : s.name));
        tr.cells[0].append(button);
      },
      'no services yet',
    );
    markSelected();
  }

  /** The chosen service's button shows as pressed, the others not. */
  function markSelected() {
    for (const tr of $('services-table').tBodies[0].rows) {
      const b = tr.querySelector('button.pick');
      if (b) b.setAttribute('aria-pressed', String(tr.dataset.key === selected));
    }
  }

  function renderWorkers(snap) {
    const rows = [];
    for (const w of snap.workers) {
      for (const r of w.services) rows.push({ w, r });
    }
    rows.sort((a, b) => (a.w.instanceId + a.r.name < b.w.instanceId + b.r.name ? -1 : 1));
    syncRows(
      $('workers-table').tBodies[0],
      shown(rows, ({ r }) => r.name, 'workers-more', 'registrations'),
      ({ w, r }) => `${w.sessionId}|${r.name}`,
      ({ w, r }) => [
        { text: w.name ? `${w.instanceId} (${w.name})` : w.instanceId, title: w.instanceId },
        { text: r.name, title: r.name },
        { text: count(r.credit), cls: 'num' },
        { text: count(r.inflight), cls: r.inflight >= r.credit && r.credit > 0 ? 'num state-dialing' : 'num' },
        { text: w.blocked ? `${w.state}, backed up` : w.state, cls: w.blocked ? 'state-bad' : `state-${w.state}` },
        { text: w.remoteAddress || '—', title: `connected ${w.connectedAt}` },
      ],
      null,
      'no WebSocket workers on this hub',
    );
  }

  function renderLongPoll(snap) {
    const rows = snap.services.filter((s) => s.longPollWaiting > 0 || s.longPollLeased > 0).sort(byName);
    syncRows(
      $('longpoll-table').tBodies[0],
      shown(rows, (s) => s.name, 'longpoll-more', 'services'),
      (s) => s.name,
      (s) => [
        { text: s.name, title: s.name },
        { text: count(s.longPollWaiting), cls: 'num' },
        { text: count(s.longPollLeased), cls: 'num' },
      ],
      null,
      'no long-poll workers waiting',
    );
  }

  function renderPeers(snap) {
    const linked = new Set(snap.mesh.peers.map((p) => p.hubId).filter(Boolean));
    const rows = snap.mesh.peers.map((p) => ({ key: peerKey(p), p }));
    // A seed that is not linked yet (or any more) shows as dialing, so a missing peer is visible.
    for (const d of snap.mesh.dialing) {
      if (!d.linkedTo || !linked.has(d.linkedTo)) rows.push({ key: `dial|${d.address}`, p: null, d });
    }
    rows.sort((a, b) => (a.key < b.key ? -1 : 1));
    syncRows(
      $('peers-table').tBodies[0],
      rows,
      (r) => r.key,
      (r) => {
        if (!r.p) return [{ text: r.d.address, title: r.d.address }, { text: 'dialing', cls: 'state-dialing' }, '—', '—', '—', '—', '—'];
        const p = r.p;
        const fw = peerRates(r.key, WINDOW);
        const label = p.hubId ?? p.address;
        return [
          { text: label, title: `${label} at ${p.advertise ?? p.address} (${p.dialed ? 'dialled' : 'accepted'})` },
          { text: p.state === 'open' && !p.synced ? 'open, syncing' : p.state, cls: `state-${p.state}` },
          { text: p.rttMs === null || p.rttMs === undefined ? '—' : ms(p.rttMs), cls: 'num' },
          { text: count(p.members), cls: 'num' },
          { text: rate(fw?.out), cls: 'num' },
          { text: rate(fw?.in), cls: 'num' },
          { text: `${count(p.inflightOut)} / ${count(p.inflightIn)}`, cls: 'num', title: 'out / in' },
        ];
      },
      null,
      'no peers: this hub is not in a mesh',
    );
  }

  function renderRings(snap) {
    const rows = snap.services.filter((s) => s.ring.members.length > 0).sort(byName);
    syncRows(
      $('rings-table').tBodies[0],
      shown(rows, (s) => s.name, 'rings-more', 'streams'),
      (s) => s.name,
      (s) => {
        const members = s.ring.members.map((m) => `${m.instanceId} @ ${m.hubId === snap.hubId ? 'here' : m.hubId}${m.weight === 1 ? '' : ` ×${m.weight}`}`);
        const text = members.join(',  ');
        return [{ text: s.name, title: s.name }, `${s.ring.epoch} · ${s.ring.digest}`, { text, title: members.join('\n') }];
      },
      null,
      'no key owners: no stream has a WebSocket worker',
    );
  }

  /** The tables the filter applies to. */
  function renderTables(snap) {
    renderServices(snap);
    renderWorkers(snap);
    renderLongPoll(snap);
    renderRings(snap);
  }

  $('filter').addEventListener('input', () => {
    if (lastSnap) renderTables(lastSnap);
  });

  function renderSummary(snap) {
    setText($('hub-id'), snap.hubId);
    $('hub-id').title = snap.hubId;
    setText($('sum-state'), snap.state);
    setClass($('sum-state'), `state-${snap.state}`);
    setText($('sum-uptime'), duration(snap.uptimeMs));
    const all = windowOf(null, WINDOW);
    setText($('sum-rate'), rate(all.rate));
    setText($('sum-errors'), rate(all.errRate));
    setText($('sum-open'), count(snap.openJobs));
    setText($('sum-sessions'), count(snap.sockets.connections));
    const open = snap.mesh.peers.filter((p) => p.state === 'open').length;
    setText($('sum-peers'), count(open));
    document.title = `astromesh ${snap.hubId}`;
  }

  // ---- charts ----

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function makeChart(el, series, yLabel) {
    const axis = { stroke: css('--muted'), grid: { stroke: css('--line'), width: 1 }, ticks: { stroke: css('--line'), width: 1 } };
    return new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: CHART_HEIGHT,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: {
            time: true,
            // At least MIN_SPAN seconds wide and at most HISTORY: a fresh page is not one squeezed line.
            range: (_u, min, max) => {
              const end = Number.isFinite(max) ? max : Date.now() / 1000;
              const start = Number.isFinite(min) ? min : end;
              return [Math.max(end - HISTORY, Math.min(start, end - MIN_SPAN)), end];
            },
          },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [axis, { ...axis, size: 56, label: yLabel, labelSize: 14 }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: css(s.color), width: 2, spanGaps: false, points: { show: false } }))],
      },
      [[], ...series.map(() => [])],
      el,
    );
  }

  function chartData() {
    const t = [];
    const req = [];
    const err = [];
    const p50 = [];
    const p99 = [];
    for (const e of history) {
      if (e.dt <= 0) continue;
      const d = selected === null ? e.all : e.services.get(selected);
      t.push(e.t);
      req.push(d ? d.req / e.dt : 0);
      err.push(d ? d.err / e.dt : 0);
      p50.push(d ? quantile(d.lat, 0.5) : null);
      p99.push(d ? quantile(d.lat, 0.99) : null);
    }
    return { rate: [t, req, err], latency: [t, p50, p99] };
  }

  function renderCharts() {
    if (typeof uPlot === 'undefined') return;
    if (!charts) {
      charts = {
        rate: makeChart(
          $('chart-rate'),
          [
            { label: 'requests/s', color: '--rate' },
            { label: 'errors/s', color: '--errors' },
          ],
          'per second',
        ),
        latency: makeChart(
          $('chart-latency'),
          [
            { label: 'p50', color: '--p50' },
            { label: 'p99', color: '--p99' },
          ],
          'ms',
        ),
      };
      window.addEventListener('resize', resizeCharts);
    }
    plotCharts();
  }

  function plotCharts() {
    const d = chartData();
    charts.rate.setData(d.rate);
    charts.latency.setData(d.latency);
  }

  function resizeCharts() {
    if (!charts) return;
    charts.rate.setSize({ width: Math.max(200, $('chart-rate').clientWidth), height: CHART_HEIGHT });
    charts.latency.setSize({ width: Math.max(200, $('chart-latency').clientWidth), height: CHART_HEIGHT });
  }

  function select(name) {
    selected = name;
    setText($('chart-subject'), name ?? 'all services');
    markSelected();
    if (charts && buckets) plotCharts();
  }

  // ---- polling and the token ----

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showAlert(text) {
    const el = $('alert');
    el.hidden = text === null;
    if (text !== null) setText(el, text);
  }

  function askForToken(message) {
    const form = $('token-form');
    const wasHidden = form.hidden;
    form.hidden = false;
    showAlert(message);
    setText($('updated'), 'waiting for a token');
    if (wasHidden) $('token').focus();
  }

  async function poll() {
    timer = null;
    if (paused) return;
    const headers = {};
    const t = token();
    if (t) headers.authorization = `Bearer ${t}`;
    inflight = new AbortController();
    const abort = setTimeout(() => inflight?.abort(), 5000);
    try {
      const res = await fetch('/dashboard.json', { headers, cache: 'no-store', signal: inflight.signal });
      if (res.status === 401) {
        askForToken(t ? 'That token was not accepted by this hub.' : 'This hub has auth on: enter a token with the monitor right.');
        return;
      }
      if (res.status === 403) {
        askForToken('That token does not have the monitor right.');
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const snap = await res.json();
      $('token-form').hidden = true;
      $('forget-token').hidden = !t;
      showAlert(null);
      buckets = snap.latencyBuckets;
      record(snap);
      lastSnap = snap;
      renderSummary(snap);
      renderTables(snap);
      renderPeers(snap);
      renderCharts();
      setText($('updated'), `updated ${new Date().toLocaleTimeString()}`);
      schedule();
    } catch (err) {
      showAlert(`The hub did not answer (${err instanceof Error ? err.message : String(err)}); trying again.`);
      setText($('updated'), 'hub unreachable');
      schedule();
    } finally {
      clearTimeout(abort);
      inflight = null;
    }
  }

  function schedule() {
    if (!paused && timer === null) timer = setTimeout(poll, POLL_MS);
  }

  $('pause').addEventListener('click', () => {
    paused = !paused;
    $('pause').setAttribute('aria-pressed', String(paused));
    setText($('pause'), paused ? 'Resume' : 'Pause');
    setText($('updated'), paused ? 'paused' : 'resuming…');
    if (!paused) schedule();
  });

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('token').value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $('token').value = '';
    if (timer !== null) clearTimeout(timer);
    timer = null;
    poll();
  });

  $('forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('forget-token').hidden = true;
    prev = null;
    history.length = 0;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    poll();
  });

  // A section reached from the navigation takes the focus, so the keyboard continues from there.
  for (const a of document.querySelectorAll('nav a')) {
    a.addEventListener('click', (ev) => {
      const target = document.querySelector(a.getAttribute('href'));
      if (!target) return;
      ev.preventDefault();
      target.scrollIntoView({ block: 'start' });
      target.focus({ preventScroll: true });
    });
  }

  poll();
})();
