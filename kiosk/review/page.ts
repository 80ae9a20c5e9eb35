/**
 * The review page's static assets, served from memory. The HTML holds no
 * inline script or style (the Content-Security-Policy forbids both); the
 * script builds every element with createElement and fills it with
 * textContent, never innerHTML, so a file name like `<img onerror=...>` from
 * a drive is shown as the characters it is.
 */

export const LOGIN_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis review: sign in</title>
<link rel="stylesheet" href="/app.css"></head>
<body><main class="login">
<h1>Portcullis review</h1>
<form method="post" action="/login" id="password-login">
<label>User <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/login" id="token-login">
<label>One-time token <input name="token" autocomplete="off" required></label>
<button type="submit">Sign in with token</button>
</form>
<p class="hint">Accounts and tokens come from <code>portcullis-kiosk review user add</code> and <code>review token</code> at the kiosk.</p>
</main></body></html>
`;

export const LOGIN_FAILED_HTML = LOGIN_HTML.replace('<h1>Portcullis review</h1>', '<h1>Portcullis review</h1>\n<p class="error" id="login-error">Sign-in failed: wrong user, password or token (tokens work once).</p>');

export const LOGIN_LOCKED_HTML = LOGIN_HTML.replace('<h1>Portcullis review</h1>', '<h1>Portcullis review</h1>\n<p class="error" id="login-locked">Too many failed sign-ins for this account or from this address: password sign-in is paused for up to 10 minutes. A one-time token from <code>portcullis-kiosk review token</code> at the kiosk works now.</p>');

export const APP_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis review</title>
<link rel="stylesheet" href="/app.css"><script src="/app.js" defer></script></head>
<body>
<header><h1>Portcullis review</h1><span id="chain" class="chain">chain: checking…</span>
<form method="post" action="/logout" class="logout"><span id="who"></span> <button type="submit">Sign out</button></form></header>
<section id="health-section" hidden><h2>Hosts</h2><p class="hint">Last seen: warning after 10 minutes, error after an hour; ClamAV signatures: warning after a day, error after a week; chain: every record once, linked, none edited or rewritten.</p>
<table id="health"><thead><tr><th>Site</th><th>Host</th><th>Kind</th><th>Last seen</th><th>State</th><th>Signatures, rules / trust store</th><th>Chains</th><th>Problems</th></tr></thead><tbody></tbody></table></section>
<section id="alerts-section" hidden><h2>Alerts</h2><table id="alerts"><thead><tr><th>Time</th><th>Host</th><th>Code</th><th>What</th></tr></thead><tbody></tbody></table>
<h3>Refused by the receiver</h3><table id="refusals"><thead><tr><th>Last</th><th>Host</th><th>Code</th><th>Times</th><th>What</th></tr></thead><tbody></tbody></table>
<h3>Review sign-ins</h3><table id="sign-ins"><thead><tr><th>Time</th><th>Review</th><th>Event</th><th>User</th><th>Address</th></tr></thead><tbody></tbody></table></section>
<section id="activity-section" hidden><h2>Activity per site, last 30 days</h2><div id="activity"></div>
<div class="tops"><div><h3>Blocked reasons</h3><ol id="activity-reasons"></ol></div><div><h3>Busiest kiosks</h3><ol id="top-kiosks"></ol></div><div><h3>Busiest HMIs (files imported)</h3><ol id="top-hmis"></ol></div></div></section>
<section id="file-section" hidden><h2>Where did a file go?</h2>
<form id="file-path"><label>SHA-256 or BLAKE3 <input name="hash" size="70"></label> <button type="submit">Follow</button></form>
<table id="file-kiosk"><thead><tr><th>Scanned</th><th>Kiosk</th><th>Scan</th><th>Path</th><th>Verdict</th><th>Manifest</th></tr></thead><tbody></tbody></table>
<table id="file-hmi"><thead><tr><th>Time</th><th>HMI</th><th>Event</th><th>Outcome</th><th>Written to</th><th>Log chain</th></tr></thead><tbody></tbody></table></section>
<section id="hmi-events-section" hidden><h2>HMI events without a manifest</h2><p class="hint">Trust changes, drives refused before any manifest was read, storage policy, and manifests no kiosk reported.</p>
<table id="hmi-events"><thead><tr><th>Time</th><th>HMI</th><th>Event</th><th>Outcome</th><th>Code</th><th>Reason</th></tr></thead><tbody></tbody></table></section>
<section id="chart-section"><h2>Per day</h2><div id="chart"></div><ol id="top-reasons"></ol></section>
<section><h2>Scans</h2>
<form id="filters">
<label>From <input name="since" type="date"></label>
<label>To <input name="until" type="date"></label>
<label>Verdict <select name="verdict"><option value="">any</option><option>approved</option><option>partial</option><option>rejected</option><option>interrupted</option></select></label>
<label>Operator <input name="operator" size="10"></label>
<label>Serial <input name="serial" size="12"></label>
<label>File or hash <input name="file" size="24"></label>
<button type="submit">Filter</button>
<a id="export-csv" href="/api/export?format=csv" download="portcullis-scans.csv">Export CSV</a>
<a id="export-json" href="/api/export?format=json" download="portcullis-scans.json">Export JSON</a>
<a id="export-agent-csv" href="/api/export?format=csv&amp;records=agent" download="portcullis-hmi-records.csv">HMI records CSV</a>
<a id="export-agent-json" href="/api/export?format=json&amp;records=agent" download="portcullis-hmi-records.json">HMI records JSON</a>
</form>
<table id="scans"><thead><tr><th>Started</th><th>Verdict</th><th>Operator</th><th>Device serial</th><th>Label</th><th>Files</th><th>Blocked</th><th>Scan</th></tr></thead><tbody></tbody></table>
<p id="scan-count"></p>
</section>
<section id="detail" hidden><h2>Scan <span id="detail-id"></span></h2><div id="detail-body"></div></section>
</body></html>
`;

export const APP_CSS = `body{font:14px system-ui,sans-serif;margin:0;color:#111;background:#f6f6f4}
header{display:flex;gap:1em;align-items:center;background:#22303c;color:#fff;padding:.5em 1em}
header h1{font-size:1.2em;margin:0}.logout{margin-left:auto}
section{margin:1em;padding:.5em 1em;background:#fff;border:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.25em .5em;text-align:left;vertical-align:top}
td.name{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
.yara-match{margin:2px 0}.yara-field{padding-left:1.2em;font-size:90%;word-break:break-all}
.v-approved{color:#176b2c}.v-partial{color:#9a6700}.v-rejected,.v-blocked,.v-refused,.v-failed{color:#b3261e;font-weight:600}
.v-interrupted{color:#555}.h-ok{color:#176b2c}.h-warning{color:#9a6700;font-weight:600}.h-error{color:#b3261e;font-weight:700}
.tops{display:flex;gap:2em}td.chain-unverified{color:#9a6700;font-weight:600}.chain.ok{color:#9fe0a8}.chain.broken{color:#ffb4ab;font-weight:700}
form#filters label{margin-right:.6em}.login{max-width:26em;margin:4em auto;background:#fff;padding:1em 2em;border:1px solid #ddd}
.login label{display:block;margin:.5em 0}.error{color:#b3261e}.hint{color:#555}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
svg text{font:11px system-ui,sans-serif}a.scan-link{cursor:pointer}
`;

export const APP_JS = String.raw`'use strict';
(function () {
  var el = function (tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  var SVG = 'http://www.w3.org/2000/svg';
  var svg = function (tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  };
  var clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); };
  var getJson = function (url) {
    return fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } }).then(function (r) {
      if (r.status === 401) { location.href = '/login'; throw new Error('signed out'); }
      return r.json().then(function (body) { if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status)); return body; });
    });
  };
  var filterQuery = function () {
    var form = document.getElementById('filters');
    var q = new URLSearchParams();
    ['since', 'until', 'verdict', 'operator', 'serial', 'file'].forEach(function (name) {
      var v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    });
    return q;
  };
  var row = function (cells) {
    var tr = el('tr');
    cells.forEach(function (c) { tr.appendChild(c instanceof Node ? c : el('td', c)); });
    return tr;
  };
  var td = function (text, cls) { return el('td', text === null || text === undefined ? '-' : text, cls); };

  function loadScans() {
    var q = filterQuery();
    var exportQ = new URLSearchParams(q);
    exportQ.set('format', 'csv');
    document.getElementById('export-csv').setAttribute('href', '/api/export?' + exportQ.toString());
    exportQ.set('format', 'json');
    document.getElementById('export-json').setAttribute('href', '/api/export?' + exportQ.toString());
    exportQ.set('records', 'agent');
    document.getElementById('export-agent-json').setAttribute('href', '/api/export?' + exportQ.toString());
    exportQ.set('format', 'csv');
    document.getElementById('export-agent-csv').setAttribute('href', '/api/export?' + exportQ.toString());
    q.set('limit', '200');
    return getJson('/api/scans?' + q.toString()).then(function (body) {
      var tbody = document.querySelector('#scans tbody');
      clear(tbody);
      body.scans.forEach(function (s) {
        var link = el('a', s.scanId, 'scan-link');
        link.href = '#scan=' + encodeURIComponent(s.scanId);
        var idCell = el('td');
        idCell.appendChild(link);
        tbody.appendChild(row([
          td(s.startedAt), td(s.status, 'v-' + s.status), td(s.operatorId), td(s.usb ? s.usb.serial : null, 'name'),
          td(s.label, 'name'), td(s.files), td(s.blocked), idCell,
        ]));
      });
      document.getElementById('scan-count').textContent = body.scans.length + ' scan(s) shown' + (body.scans.length === 200 ? ' (first 200: narrow the filter)' : '');
    }).catch(function (e) { document.getElementById('scan-count').textContent = 'Error: ' + e.message; });
  }

  function dl(pairs) {
    var list = el('dl');
    pairs.forEach(function (p) { list.appendChild(el('dt', p[0])); list.appendChild(el('dd', p[1] === null || p[1] === undefined ? '-' : p[1])); });
    return list;
  }

  // A YARA match explained (kiosk/core/yara-match.ts writes the detail): rule, namespace, description,
  // reference and the matched strings' offsets, each on its own line; any other reason as code: detail.
  function yaraFacts(detail) {
    var member = null;
    var text = detail;
    var head = /^(\S+) \[([^\]]*)\] \| /;
    if (!head.test(text)) {
      var at = text.indexOf(': ');
      while (at !== -1 && !head.test(text.slice(at + 2))) at = text.indexOf(': ', at + 1);
      if (at === -1) return null;
      member = text.slice(0, at);
      text = text.slice(at + 2);
    }
    var parts = text.split(' | ');
    var m = head.exec(parts[0] + ' | ');
    var facts = { rule: m[1], namespace: m[2], member: member, description: parts[1], more: parts.slice(2) };
    return facts;
  }
  function reasonsCell(reasons) {
    var cell = el('td');
    reasons.forEach(function (r) {
      var facts = r.code === 'YARA_MATCH' ? yaraFacts(r.detail) : null;
      if (facts === null) { cell.appendChild(el('div', r.code + ': ' + r.detail)); return; }
      var box = el('div', null, 'yara-match');
      box.appendChild(el('div', 'YARA_MATCH: ' + facts.rule + (facts.member ? ' in ' + facts.member : '')));
      box.appendChild(el('div', 'namespace: ' + facts.namespace, 'yara-field'));
      box.appendChild(el('div', 'description: ' + facts.description, 'yara-field'));
      facts.more.forEach(function (p) { box.appendChild(el('div', p, 'yara-field')); });
      cell.appendChild(box);
    });
    return cell;
  }

  function showScan(id) {
    return getJson('/api/scans/' + encodeURIComponent(id)).then(function (body) {
      var s = body.scan;
      var section = document.getElementById('detail');
      section.hidden = false;
      document.getElementById('detail-id').textContent = s.scanId;
      var box = document.getElementById('detail-body');
      clear(box);
      var d = s.device || {};
      var usb = d.usb || {};
      var e = s.engines || {};
      box.appendChild(dl([
        ['Verdict', s.status], ['Kiosk', s.kioskId], ['Operator', s.operatorId], ['Started', s.startedAt], ['Finished', s.finishedAt],
        ['USB', (usb.vendorId || '-') + ':' + (usb.productId || '-') + ' serial ' + (usb.serial || '-')],
        ['Manufacturer / product', (usb.manufacturer || '-') + ' / ' + (usb.product || '-')],
        ['Filesystem / volume', (d.filesystem || '-') + ' / ' + (d.volumeId || '-')], ['Label', d.label], ['Capacity', d.capacity],
        ['ClamAV', e.clamav ? e.clamav.version + ' db ' + (e.clamav.databaseVersion || '-') + ' (' + (e.clamav.databaseTime || '-') + ')' : null],
        ['YARA', e.yara ? e.yara.engine + ' rules ' + (e.yara.ruleSetDigest || '-') + ' (' + e.yara.ruleCount + ')' : null],
        ['Policy', s.policy ? s.policy.id + ' ' + s.policy.digest : null], ['Allowlist', s.allowlist ? s.allowlist.version : null],
        ['Manifest digest', s.manifest ? s.manifest.digest : null], ['Manifest key id', s.manifest ? s.manifest.keyId : null],
        ['Manifest expires', s.manifest ? s.manifest.expiresAt : null],
        ['Drive reasons', s.driveReasons.map(function (r) { return r.code + ': ' + r.detail; }).join('; ') || '-'],
      ]));
      box.appendChild(el('h3', 'Files'));
      var files = el('table', null, 'files');
      files.id = 'detail-files';
      files.appendChild(row([el('th', 'Path'), el('th', 'Verdict'), el('th', 'Size'), el('th', 'SHA-256'), el('th', 'Reasons')]));
      s.files.forEach(function (f) {
        files.appendChild(row([td(f.path, 'name'), td(f.verdict, 'v-' + f.verdict), td(f.size), td(f.sha256, 'name'),
          reasonsCell(f.reasons)]));
      });
      box.appendChild(files);
      box.appendChild(el('h3', 'On the HMIs (agent logs, matched by manifest digest)'));
      var agent = el('table', null, 'agent');
      agent.id = 'detail-agent';
      agent.appendChild(row([el('th', 'Time'), el('th', 'HMI'), el('th', 'Event'), el('th', 'Outcome'), el('th', 'Code'), el('th', 'File'), el('th', 'Written to'), el('th', 'Reason'), el('th', 'Log chain')]));
      body.agent.forEach(function (a) {
        var verified = a.chain === 'verified';
        var words = a.link === 'broken' ? 'unverified: it does not follow the record before it (an earlier record was replaced)'
          : a.link === 'pending' ? 'unverified: the record before it has not arrived'
          : verified ? 'verified' : 'unverified: imported from an export, its chain cannot be checked';
        var chain = td(words, verified ? 'chain chain-verified' : 'chain chain-unverified');
        chain.title = a.link ? 'forwarded by the HMI: its hash checked, and its link to the record before' : verified ? 'imported from the HMI\'s JSON-lines log; its hash chain verified' : 'an agent export carries no prev hashes: an edited record would look the same; import the .jsonl log to verify it';
        agent.appendChild(row([td(a.time), td(a.hmi, 'name'), td(a.event), td(a.outcome, 'v-' + a.outcome), td(a.code), td(a.path, 'name'), td(a.destination, 'name'), td(a.reason), chain]));
      });
      box.appendChild(agent);
      if (body.agent.length === 0) box.appendChild(el('p', s.manifest ? 'No agent log with this manifest has been imported.' : 'No manifest was issued for this scan.'));
      section.scrollIntoView();
    }).catch(function (e) { document.getElementById('detail-body').textContent = 'Error: ' + e.message; });
  }

  function loadChain() {
    return getJson('/api/chain').then(function (body) {
      var c = document.getElementById('chain');
      if (body.state === 'checking') { c.textContent = 'chain: verifying…'; setTimeout(loadChain, 5000); return; }
      if (body.error) { c.textContent = 'chain: cannot verify: ' + body.error; c.className = 'chain broken'; return; }
      if (body.central) {
        c.textContent = body.ok ? 'every host\'s chain intact: ' + body.records + ' records' : 'CHAIN PROBLEM: ' + body.first.reason + ' (see Hosts)';
        c.className = body.ok ? 'chain ok' : 'chain broken';
        return;
      }
      if (body.ok) { c.textContent = 'chain intact: ' + body.records + ' records, head ' + body.head.seq; c.className = 'chain ok'; }
      else { c.textContent = 'CHAIN BROKEN at ' + body.first.table + ' ' + (body.first.seq === null ? '' : body.first.seq) + ': ' + body.first.code; c.className = 'chain broken'; }
    });
  }

  function loadChart() {
    return getJson('/api/stats/daily').then(function (body) {
      var box = document.getElementById('chart');
      clear(box);
      var days = body.days;
      var w = Math.max(300, days.length * 14 + 40), h = 160, base = 130;
      var max = Math.max(1, Math.max.apply(null, days.map(function (d) { return d.scans; })));
      var chart = svg('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h, role: 'img' });
      chart.appendChild(svg('title', {})).textContent = 'Scans (grey) and drives with blocked files (red) per day';
      days.forEach(function (d, i) {
        var x = 30 + i * 14, sh = Math.round(d.scans / max * 110), bh = Math.round(d.blockedScans / max * 110);
        var bar = chart.appendChild(svg('rect', { x: x, y: base - sh, width: 6, height: sh, fill: '#8a97a3' }));
        bar.appendChild(svg('title', {})).textContent = d.day + ': ' + d.scans + ' scans';
        var red = chart.appendChild(svg('rect', { x: x + 6, y: base - bh, width: 6, height: bh, fill: '#b3261e' }));
        red.appendChild(svg('title', {})).textContent = d.day + ': ' + d.blockedScans + ' scans with blocks, ' + d.blockedFiles + ' files blocked';
        if (i % 7 === 0) chart.appendChild(svg('text', { x: x, y: base + 14 })).textContent = d.day.slice(5);
      });
      chart.appendChild(svg('text', { x: 0, y: 12 })).textContent = String(max);
      box.appendChild(chart);
      var top = document.getElementById('top-reasons');
      clear(top);
      body.topReasons.forEach(function (r) { top.appendChild(el('li', r.code + ': ' + r.count)); });
    });
  }

  function route() {
    var m = /^#scan=(.+)$/.exec(location.hash);
    if (m) showScan(decodeURIComponent(m[1]));
  }

  function loadCentral() {
    ['health-section', 'alerts-section', 'activity-section', 'file-section', 'hmi-events-section'].forEach(function (id) { document.getElementById(id).hidden = false; });
    getJson('/api/central/health').then(function (body) {
      var tbody = document.querySelector('#health tbody');
      clear(tbody);
      body.sources.forEach(function (h) {
        var chains = h.chains.map(function (c) { return '#' + c.number + ': ' + c.records + ' records'; }).join(', ') || '-';
        var b = (h.status && h.status.body) || {};
        var versions = h.kind === 'kiosk'
          ? 'ClamAV db ' + (b.clamavDb || '-') + ' (' + (b.clamavDbTime || '-') + '), YARA ' + (b.yaraRules ? String(b.yaraRules).slice(0, 19) : '-')
          : 'trust store #' + (b.trustSequence === undefined ? '-' : b.trustSequence) + ', ' + (b.trustedKeys ? b.trustedKeys.length : 0) + ' key(s)';
        var tr = row([td(h.site, 'name'), td(h.name, 'name'), td(h.kind), td(h.lastSeen), td(h.level, 'h-' + h.level), td(versions), td(chains), td(h.problems.join('; ') || '-')]);
        tr.className = 'health-' + h.level;
        tbody.appendChild(tr);
      });
    }).catch(function () {});
    getJson('/api/central/alerts').then(function (body) {
      var a = document.querySelector('#alerts tbody');
      clear(a);
      body.alerts.forEach(function (x) { a.appendChild(row([td(x.at), td(x.source, 'name'), td(x.code, 'v-refused'), td(x.detail)])); });
      var r = document.querySelector('#refusals tbody');
      clear(r);
      body.refusals.forEach(function (x) { r.appendChild(row([td(x.at), td(x.source, 'name'), td(x.code, 'v-refused'), td(x.times), td(x.detail)])); });
      var s = document.querySelector('#sign-ins tbody');
      clear(s);
      body.signIns.forEach(function (x) { s.appendChild(row([td(x.at), td(x.source, 'name'), td(x.event, /FAILED|LOCKED/.test(x.event) ? 'v-refused' : ''), td(x.username, 'name'), td(x.address)])); });
    }).catch(function () {});
    getJson('/api/central/hmi-events').then(function (body) {
      var tbody = document.querySelector('#hmi-events tbody');
      clear(tbody);
      body.records.forEach(function (x) { tbody.appendChild(row([td(x.time), td(x.hmi, 'name'), td(x.event), td(x.outcome, 'v-' + x.outcome), td(x.code), td(x.reason)])); });
    }).catch(function () {});
    getJson('/api/central/activity').then(function (body) {
      var box = document.getElementById('activity');
      clear(box);
      var days = {}, kiosks = {};
      body.perDay.forEach(function (d) { days[d.day] = days[d.day] || []; days[d.day].push(d); kiosks[d.site] = true; });
      var names = Object.keys(kiosks).sort(), order = Object.keys(days).sort();
      var colours = ['#4e79a7', '#f28e2b', '#59a14f', '#76b7b2', '#edc948', '#af7aa1', '#ff9da7', '#9c755f'];
      var max = 1;
      order.forEach(function (day) { max = Math.max(max, days[day].reduce(function (n, d) { return n + d.scans; }, 0)); });
      var w = Math.max(300, order.length * 14 + 40), h = 170, base = 140;
      var chart = svg('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h, role: 'img', id: 'activity-chart' });
      chart.appendChild(svg('title', {})).textContent = 'Scans per day, stacked by site; red: scans with blocked files';
      order.forEach(function (day, i) {
        var x = 30 + i * 14, y = base;
        days[day].forEach(function (d) {
          var hgt = Math.round(d.scans / max * 120);
          var bar = chart.appendChild(svg('rect', { x: x, y: y - hgt, width: 8, height: hgt, fill: colours[names.indexOf(d.site) % colours.length] }));
          bar.appendChild(svg('title', {})).textContent = day + ' ' + d.site + ': ' + d.scans + ' scans, ' + d.blocked + ' with blocked files';
          y -= hgt;
        });
        var blocked = days[day].reduce(function (n, d) { return n + d.blocked; }, 0), bh = Math.round(blocked / max * 120);
        chart.appendChild(svg('rect', { x: x + 8, y: base - bh, width: 4, height: bh, fill: '#b3261e' }));
        if (i % 7 === 0) chart.appendChild(svg('text', { x: x, y: base + 14 })).textContent = day.slice(5);
      });
      names.forEach(function (n, i) { chart.appendChild(svg('text', { x: 30 + i * 90, y: h - 2, fill: colours[i % colours.length] })).textContent = n; });
      box.appendChild(chart);
      var fill = function (id, list, label) {
        var ol = document.getElementById(id);
        clear(ol);
        list.forEach(function (x) { ol.appendChild(el('li', label(x) + ': ' + x.count)); });
      };
      fill('activity-reasons', body.topReasons, function (x) { return x.code; });
      fill('top-kiosks', body.topKiosks, function (x) { return x.host; });
      fill('top-hmis', body.topHmis, function (x) { return x.host; });
    }).catch(function () {});
    document.getElementById('file-path').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var hash = document.getElementById('file-path').elements.hash.value.trim();
      getJson('/api/central/file?hash=' + encodeURIComponent(hash)).then(function (body) {
        var k = document.querySelector('#file-kiosk tbody');
        clear(k);
        body.kiosk.forEach(function (x) {
          var link = el('a', x.scanId, 'scan-link');
          link.href = '#scan=' + encodeURIComponent(x.scanId);
          var cell = el('td');
          cell.appendChild(link);
          k.appendChild(row([td(x.startedAt), td(x.kioskId, 'name'), cell, td(x.path, 'name'), td(x.verdict, 'v-' + x.verdict), td(x.manifestDigest, 'name')]));
        });
        var hm = document.querySelector('#file-hmi tbody');
        clear(hm);
        body.hmi.forEach(function (x) { hm.appendChild(row([td(x.time), td(x.hmi, 'name'), td(x.event), td(x.outcome, 'v-' + x.outcome), td(x.destination, 'name'), td(x.chain, 'chain chain-' + x.chain)])); });
      }).catch(function (e) { document.querySelector('#file-kiosk tbody').textContent = 'Error: ' + e.message; });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.getElementById('filters').addEventListener('submit', function (ev) { ev.preventDefault(); loadScans(); });
    window.addEventListener('hashchange', route);
    getJson('/api/me').then(function (me) {
      document.getElementById('who').textContent = me.user;
      if (me.central) loadCentral();
    });
    loadChain().catch(function () {});
    loadChart().catch(function () {});
    loadScans().then(route);
  });
})();
`;
