// opshost Studio: a dependency-free single page over the operations API. Every action is a
// `POST /` with a JSON operation and the user's Authorization header, so the server enforces
// permissions exactly as for any other client. Data is rendered with textContent only (never
// innerHTML), so a stored value cannot become markup or script.
'use strict';

const $ = (sel) => document.querySelector(sel);
const STORE = 'opshost.studio.auth';
const HISTORY = 'opshost.studio.history';
let auth = null; // {header, username}
let timers = [];

/** Creates an element: h('button', {id: 'x', onclick: f}, 'text', child...). */
function h(tag, attrs, ...children) {
  const el = tag === 'svg' || tag === 'rect' || tag === 'text' || tag === 'title'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function status(text, isError) {
  const s = $('#status');
  s.textContent = text || '';
  s.className = isError ? 'error' : 'ok';
}

/** Runs one operation; resolves with the answer, rejects with the server's `error` text. */
async function op(body, header) {
  const res = await fetch('/', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: header || (auth && auth.header) || '' },
    body: JSON.stringify(body),
    credentials: 'omit',
  });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const msg = (data && data.error) || `HTTP ${res.status}`;
    const detail = data && Array.isArray(data.unauthorized_access) && data.unauthorized_access.length
      ? `: ${data.unauthorized_access.map((x) => typeof x === 'string' ? x : JSON.stringify(x)).join('; ')}` : '';
    const e = new Error(msg + detail);
    e.status = res.status;
    e.body = data;
    throw e;
  }
  return data;
}

/** Runs `f`, reporting its failure in the status line. */
async function attempt(f, done) {
  try {
    const r = await f();
    if (done) status(done);
    return r;
  } catch (e) {
    status(e.message, true);
    return undefined;
  }
}

// ---- login ----

async function login(ev) {
  ev.preventDefault();
  const user = $('#login-user').value;
  const pass = $('#login-pass').value;
  const basic = 'Basic ' + btoa(unescape(encodeURIComponent(`${user}:${pass}`)));
  $('#login-error').textContent = '';
  try {
    let header = basic;
    if ($('#login-token').checked) {
      const t = await op({ operation: 'create_authentication_tokens', username: user, password: pass }, basic);
      header = 'Bearer ' + t.operation_token;
    }
    const me = await op({ operation: 'user_info' }, header);
    auth = { header, username: me.username || user, superUser: !!(me.role && me.role.permission && me.role.permission.super_user) };
    sessionStorage.setItem(STORE, JSON.stringify(auth));
    $('#login-pass').value = '';
    enter();
  } catch (e) {
    $('#login-error').textContent = e.message;
  }
}

function logout() {
  auth = null;
  sessionStorage.removeItem(STORE);
  stopTimers();
  $('#nav').hidden = true;
  $('#logout').hidden = true;
  $('#whoami').textContent = '';
  $('#view').replaceChildren();
  status('');
  $('#login').hidden = false;
  $('#login-user').focus();
}

function enter() {
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#logout').hidden = false;
  $('#whoami').textContent = `${auth.username}${auth.superUser ? ' (super_user)' : ''}`;
  show(location.hash.slice(1) || 'tables');
}

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

const VIEWS = {};

function show(name) {
  if (!VIEWS[name]) name = 'tables';
  stopTimers();
  status('');
  for (const b of document.querySelectorAll('#nav button')) {
    if (b.dataset.view === name) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  }
  if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
  const view = h('div', { id: 'view-' + name });
  $('#view').replaceChildren(view);
  VIEWS[name](view);
}

// ---- shared renderers ----

/** A table of objects: one column per key (first `max` keys seen), optional row actions. */
function grid(rows, opts) {
  opts = opts || {};
  const cols = opts.columns || [...new Set(rows.flatMap((r) => Object.keys(r || {})))];
  const head = h('tr', null, cols.map((c) => h('th', { scope: 'col' },
    opts.onSort ? h('button', { type: 'button', onclick: () => opts.onSort(c), 'aria-label': `sort by ${c}` },
      c + (opts.sort && opts.sort.attribute === c ? (opts.sort.descending ? ' ▼' : ' ▲') : '')) : c)),
  opts.actions ? h('th', { scope: 'col' }, 'actions') : null);
  const body = rows.map((r) => h('tr', null, cols.map((c) => h('td', null, cell(r[c]))),
    opts.actions ? h('td', null, opts.actions(r)) : null));
  return h('div', { class: 'scroll' }, h('table', { id: opts.id }, h('thead', null, head), h('tbody', null, body)));
}

function cell(v) {
  if (v instanceof Node) return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function pretty(v) { return h('pre', { tabindex: '0' }, JSON.stringify(v, null, 2)); }

/** A horizontal SVG bar chart of [label, value] pairs. */
function bars(title, pairs, unit, max) {
  const top = max || Math.max(1, ...pairs.map((p) => p[1] || 0));
  const rowH = 24, labelW = 120, width = 420;
  const svg = h('svg', { viewBox: `0 0 ${width} ${pairs.length * rowH + 4}`, width: '100%', role: 'img', 'aria-label': title },
    h('title', null, title));
  pairs.forEach(([label, value], i) => {
    const w = Math.max(0, Math.round(((value || 0) / top) * (width - labelW - 90)));
    svg.append(h('text', { x: 0, y: i * rowH + 16, 'font-size': 13 }, label.length > 16 ? label.slice(0, 15) + '…' : label));
    svg.append(h('rect', { class: max && value / top > 0.85 ? 'bar warn' : 'bar', x: labelW, y: i * rowH + 4, width: w, height: 14 }));
    svg.append(h('text', { x: labelW + w + 6, y: i * rowH + 16, 'font-size': 13 }, `${value === null || value === undefined ? '–' : fmt(value)}${unit || ''}`));
  });
  return h('figure', null, h('figcaption', null, title), svg);
}

function fmt(n) { return typeof n === 'number' ? (Number.isInteger(n) ? n.toLocaleString('en') : n.toFixed(2)) : String(n); }
function gb(bytes) { return Math.round((bytes / 1073741824) * 100) / 100; }

function field(label, id, attrs) {
  return h('label', { for: id }, label, h('input', Object.assign({ id, name: id }, attrs || {})));
}

// ---- databases and tables ----

VIEWS.tables = async (view) => {
  const tree = h('nav', { class: 'tree panel', 'aria-label': 'Databases and tables' });
  const pane = h('div', { id: 'table-pane' });
  view.append(h('div', { class: 'layout' }, tree, pane));
  const create = h('form', { id: 'create-table-form', class: 'panel' },
    h('h3', null, 'Create a table'),
    field('Database', 'new-db', { required: true, value: 'dev' }),
    field('Table', 'new-table', { required: true }),
    field('Primary key', 'new-pk', { required: true, value: 'id' }),
    h('button', { id: 'create-table', type: 'submit', class: 'primary' }, 'Create table'));
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const database = $('#new-db').value, table = $('#new-table').value;
    const r = await attempt(() => op({ operation: 'create_table', database, table, primary_key: $('#new-pk').value }));
    if (r) { status(r.message || 'created'); await load(); openTable(database, table); }
  });
  async function load() {
    const all = await attempt(() => op({ operation: 'describe_all' }));
    tree.replaceChildren(h('h2', null, 'Databases'));
    if (!all) return;
    const list = h('ul', { id: 'db-tree' });
    for (const [db, tables] of Object.entries(all)) {
      list.append(h('li', null, h('strong', null, db), h('ul', null, Object.keys(tables).map((t) =>
        h('li', null, h('button', { type: 'button', 'data-table': `${db}.${t}`, onclick: () => openTable(db, t) },
          `${t} (${tables[t].record_count ?? '?'})`))))));
    }
    tree.append(list, create);
  }
  async function openTable(database, table) {
    for (const b of tree.querySelectorAll('button[data-table]')) b.setAttribute('aria-current', String(b.dataset.table === `${database}.${table}`));
    const desc = await attempt(() => op({ operation: 'describe_table', database, table }));
    if (!desc) return;
    const pk = desc.hash_attribute;
    const state = { offset: 0, limit: 25, sort: null, conditions: [] };
    const results = h('div', { id: 'records-area' });
    const attr = h('select', { id: 'search-attr' });
    // Attributes appear as records bring them: refreshed after every write.
    const drawAttrs = (d) => {
      const chosen = attr.value;
      attr.replaceChildren(...d.attributes.map((a) => h('option', { value: a.attribute }, a.attribute)));
      if (chosen) attr.value = chosen;
    };
    const refreshAttrs = async () => { const d = await op({ operation: 'describe_table', database, table }).catch(() => null); if (d) drawAttrs(d); };
    drawAttrs(desc);
    const comparator = h('select', { id: 'search-cmp' }, ['equals', 'contains', 'starts_with', 'ends_with', 'greater_than', 'less_than'].map((c) => h('option', { value: c }, c)));
    const value = h('input', { id: 'search-value' });
    const editor = h('textarea', { id: 'record-json', 'aria-describedby': 'record-help' }, JSON.stringify({ [pk]: '' }, null, 2));
    async function page() {
      const req = { operation: 'search_by_conditions', database, table, get_attributes: ['*'], conditions: state.conditions, offset: state.offset, limit: state.limit };
      if (state.sort) req.sort = state.sort;
      const rows = await attempt(() => op(req));
      if (!rows) return;
      results.replaceChildren(
        grid(rows, {
          id: 'records', sort: state.sort,
          onSort: (c) => { state.sort = { attribute: c, descending: !!(state.sort && state.sort.attribute === c && !state.sort.descending) }; page(); },
          actions: (r) => [
            h('button', { type: 'button', onclick: () => { editor.value = JSON.stringify(r, null, 2); editor.focus(); } }, 'Edit'), ' ',
            h('button', { type: 'button', 'data-delete': cell(r[pk]), onclick: async () => {
              if (!confirm(`Delete record ${cell(r[pk])}?`)) return;
              const d = await attempt(() => op({ operation: 'delete', database, table, ids: [r[pk]] }));
              if (d) { status(d.message); page(); }
            } }, 'Delete')],
        }),
        h('div', { class: 'row' },
          h('button', { id: 'prev', type: 'button', disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); page(); } }, 'Previous'),
          h('span', { id: 'page-info' }, `rows ${rows.length ? state.offset + 1 : 0}–${state.offset + rows.length}`),
          h('button', { id: 'next', type: 'button', disabled: rows.length < state.limit, onclick: () => { state.offset += state.limit; page(); } }, 'Next')));
    }
    const search = h('form', { id: 'search-form', class: 'row', role: 'search' },
      h('label', { for: 'search-attr' }, 'Attribute', attr), h('label', { for: 'search-cmp' }, 'Comparator', comparator),
      h('label', { for: 'search-value' }, 'Value', value),
      h('button', { id: 'search-btn', type: 'submit', class: 'primary' }, 'Search'),
      h('button', { type: 'button', onclick: () => { value.value = ''; state.conditions = []; state.offset = 0; page(); } }, 'Show all'));
    search.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let v = value.value;
      try { v = JSON.parse(v); } catch (_) { /* a plain string */ }
      state.conditions = value.value === '' ? [] : [{ attribute: attr.value, comparator: comparator.value, value: v }];
      state.offset = 0;
      page();
    });
    const save = async (operation) => {
      let record;
      try { record = JSON.parse(editor.value); } catch (e) { status(`record: not JSON (${e.message})`, true); return; }
      const r = await attempt(() => op({ operation, database, table, records: [record] }));
      if (r) { status(r.message); page(); refreshAttrs(); }
    };
    pane.replaceChildren(h('section', null,
      h('h2', null, `${database}.${table}`, h('span', { class: 'muted' }, ` primary key ${pk}`)),
      search, results,
      h('h3', null, 'Insert or edit a record'),
      h('label', { for: 'record-json' }, 'Record (JSON)'), editor,
      h('p', { id: 'record-help', class: 'hint' }, 'Insert adds a new record; Update changes the record with this primary key.'),
      h('div', { class: 'row' },
        h('button', { id: 'record-insert', type: 'button', class: 'primary', onclick: () => save('insert') }, 'Insert'),
        h('button', { id: 'record-update', type: 'button', onclick: () => save('upsert') }, 'Update'),
        h('button', { id: 'drop-table', type: 'button', onclick: async () => {
          if (!confirm(`Drop table ${database}.${table} and all its records?`)) return;
          const r = await attempt(() => op({ operation: 'drop_table', database, table }));
          if (r) { status(r.message); pane.replaceChildren(); load(); }
        } }, 'Drop table'))));
    page();
  }
  await load();
};

// ---- operation runner ----

VIEWS.runner = async (view) => {
  const pick = h('select', { id: 'op-pick' });
  const editor = h('textarea', { id: 'op-json', spellcheck: 'false' }, '{\n  "operation": "describe_all"\n}');
  const answer = h('div', { id: 'op-answer', 'aria-live': 'polite' });
  const hist = h('ol', { id: 'op-history' });
  const history = () => JSON.parse(sessionStorage.getItem(HISTORY) || '[]');
  const drawHistory = () => hist.replaceChildren(...history().map((entry) => h('li', null,
    h('button', { type: 'button', onclick: () => { editor.value = entry; } }, entry.length > 90 ? entry.slice(0, 90) + '…' : entry))));
  pick.addEventListener('change', () => { editor.value = JSON.stringify({ operation: pick.value }, null, 2); editor.focus(); });
  const form = h('form', { id: 'op-form' },
    h('label', { for: 'op-pick' }, 'Operation'), pick,
    h('label', { for: 'op-json' }, 'Request (JSON)'), editor,
    h('button', { id: 'op-run', type: 'submit', class: 'primary' }, 'Run (Ctrl+Enter)'));
  editor.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) form.requestSubmit(); });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let body;
    try { body = JSON.parse(editor.value); } catch (e) { answer.replaceChildren(h('p', { class: 'error' }, `not JSON: ${e.message}`)); return; }
    const text = JSON.stringify(body);
    sessionStorage.setItem(HISTORY, JSON.stringify([text, ...history().filter((x) => x !== text)].slice(0, 30)));
    drawHistory();
    const started = performance.now();
    try {
      const r = await op(body);
      answer.replaceChildren(h('p', { class: 'ok' }, `200 in ${Math.round(performance.now() - started)} ms`), pretty(r));
    } catch (e) {
      answer.replaceChildren(h('p', { class: 'error' }, `${e.status || ''} ${e.message}`), e.body ? pretty(e.body) : '');
    }
  });
  view.append(h('div', { class: 'grid2' }, h('section', null, h('h2', null, 'Run an operation'), form),
    h('section', null, h('h2', null, 'Answer'), answer, h('h3', null, 'History (this tab)'), hist)));
  drawHistory();
  const ops = await op({ operation: 'list_operations' }).catch(() => null);
  const names = ops ? ops.map((o) => o.name).sort() : ['describe_all', 'user_info', 'sql', 'search_by_value', 'get_job'];
  pick.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
};

// ---- jobs ----

VIEWS.jobs = async (view) => {
  const list = h('div', { id: 'jobs-list' });
  const form = h('form', { id: 'export-form', class: 'row' },
    field('Table (database.table)', 'export-table', { required: true, placeholder: 'dev.dog' }),
    field('Folder', 'export-path', { required: true, placeholder: '/root/opshost/exports' }),
    h('label', { for: 'export-format' }, 'Format', h('select', { id: 'export-format' }, h('option', null, 'json'), h('option', null, 'csv'))),
    h('button', { id: 'export-run', type: 'submit', class: 'primary' }, 'Export (export_local)'));
  const watched = new Set();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const [database, table] = $('#export-table').value.split('.');
    const r = await attempt(() => op({ operation: 'export_local', path: $('#export-path').value, format: $('#export-format').value,
      search_operation: { operation: 'sql', sql: `SELECT * FROM ${database}.${table}` } }));
    if (r) { status(r.message); watched.add(r.job_id); refresh(); }
  });
  async function refresh() {
    const now = Date.now();
    const jobs = await attempt(() => op({ operation: 'search_jobs_by_start_date', from_date: new Date(now - 7 * 86400000).toISOString(), to_date: new Date(now + 60000).toISOString() }));
    if (!jobs) return;
    // Live progress of the running ones comes from get_job.
    const detailed = await Promise.all(jobs.map((j) => (j.status === 'IN_PROGRESS' || watched.has(j.id))
      ? op({ operation: 'get_job', id: j.id }).then((a) => a[0] || j).catch(() => j) : j));
    detailed.sort((a, b) => (b.start_datetime || 0) - (a.start_datetime || 0));
    list.replaceChildren(grid(detailed.map((j) => {
      const p = j.progress && j.progress.total ? Math.min(100, Math.round((j.progress.done / j.progress.total) * 100)) : (j.status === 'COMPLETE' ? 100 : 0);
      const bar = h('span', { class: 'job-progress', 'data-job': j.id },
        h('progress', { max: 100, value: p, 'aria-label': `progress of job ${j.id}` }), ` ${p}%`);
      return { id: j.id, type: j.type, status: j.status, progress: bar, started: j.start_datetime ? new Date(j.start_datetime).toLocaleString() : '',
        result: j.result ? (j.result.path || j.result.message || JSON.stringify(j.result)) : (j.message || '') };
    }), { id: 'jobs', columns: ['id', 'type', 'status', 'progress', 'started', 'result'] }));
  }
  view.append(h('section', null, h('h2', null, 'Export a table'), form), h('section', null, h('h2', null, 'Jobs (last 7 days)'), list));
  await refresh();
  timers.push(setInterval(refresh, 1000));
};

// ---- components ----

VIEWS.components = async (view) => {
  const area = h('div', { id: 'components-area' });
  const deploy = h('form', { id: 'deploy-form', class: 'row' },
    field('Component name', 'deploy-name', { required: true }),
    field('Component file (.wasm)', 'deploy-file', { type: 'file', accept: '.wasm', required: true }),
    field('Grants (space-separated)', 'deploy-grants', { placeholder: 'storage' }),
    h('button', { id: 'deploy-run', type: 'submit', class: 'primary' }, 'Deploy (deploy_component)'));
  deploy.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = $('#deploy-file').files[0];
    if (!file) { status('deploy: choose a .wasm file', true); return; }
    const bytes = new Uint8Array(await file.arrayBuffer());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    const body = { operation: 'deploy_component', name: $('#deploy-name').value, payload: btoa(binary) };
    const grants = $('#deploy-grants').value.split(/\s+/).filter(Boolean);
    if (grants.length) body.grants = grants;
    const r = await attempt(() => op(body));
    if (r) { status(r.message); refresh(); }
  });
  view.append(h('section', null, h('h2', null, 'Components'),
    h('p', { class: 'hint' }, 'Every operation is a WebAssembly component; a file dropped into componentsRoot is hot-loaded.'), area),
  h('section', null, h('h2', null, 'Deploy a component'), deploy));
  async function refresh() {
    const list = await attempt(() => op({ operation: 'list_operations' }));
    if (!list) { area.replaceChildren(h('p', { class: 'error', id: 'components-error' }, $('#status').textContent)); return; }
    const busiest = list.filter((c) => c.stats && c.stats.calls).sort((a, b) => b.stats.calls - a.stats.calls).slice(0, 12);
    area.replaceChildren(
      grid(list.map((c) => ({ name: c.name, version: c.version, hash: (c.hash || '').slice(0, 12), loaded: c.loaded_at ? new Date(c.loaded_at).toLocaleTimeString() : '',
        status: c.status, source: c.builtin ? 'built-in' : c.source,
        grants: (c.grants || []).join(' '), calls: c.stats ? c.stats.calls : '', errors: c.stats ? c.stats.errors : '',
        p50: c.stats && c.stats.latency_ms.p50 !== null ? c.stats.latency_ms.p50 : '', p99: c.stats && c.stats.latency_ms.p99 !== null ? c.stats.latency_ms.p99 : '',
        deployed: c.deployed_version ?? '', last_error: c.last_error || '' })), {
        id: 'components',
        actions: (row) => {
          const c = list.find((x) => x.name === row.name);
          return c && c.deployed_version > 1 ? h('button', { type: 'button', 'data-rollback': c.name, onclick: async () => {
            if (!confirm(`Roll ${c.name} back to its previous version?`)) return;
            const r = await attempt(() => op({ operation: 'rollback_component', name: c.name }));
            if (r) { status(r.message); refresh(); }
          } }, 'Roll back') : '';
        },
      }),
      h('div', { class: 'charts' },
        bars('Calls (busiest operations)', busiest.map((c) => [c.name, c.stats.calls])),
        bars('Latency p99 (ms)', busiest.map((c) => [c.name, c.stats.latency_ms.p99]), ' ms')));
  }
  await refresh();
  timers.push(setInterval(refresh, 3000));
};

// ---- certificates ----

VIEWS.certs = async (view) => {
  const area = h('div', { id: 'certs-area' });
  const form = h('form', { id: 'cert-form' },
    field('Name', 'cert-name', { required: true }),
    h('label', { for: 'cert-pem' }, 'Certificate (PEM)'), h('textarea', { id: 'cert-pem', required: true }),
    h('label', { for: 'cert-key' }, 'Private key (PEM, optional)'), h('textarea', { id: 'cert-key' }),
    h('label', { class: 'check' }, h('input', { id: 'cert-ca', type: 'checkbox' }), ' certificate authority'),
    h('button', { type: 'submit', class: 'primary' }, 'Add certificate'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { operation: 'add_certificate', name: $('#cert-name').value, certificate: $('#cert-pem').value, is_authority: $('#cert-ca').checked };
    if ($('#cert-key').value) body.private_key = $('#cert-key').value;
    const r = await attempt(() => op(body));
    if (r) { status(r.message || 'added'); refresh(); }
  });
  async function refresh() {
    const certs = await attempt(() => op({ operation: 'list_certificates' }));
    if (!certs) return;
    area.replaceChildren(grid(certs.map((c) => ({ name: c.name, authority: c.is_authority ? 'yes' : '', serves_https: c.name === location.hostname && !c.is_authority ? 'node certificate' : '',
      uses: (c.uses || []).join(' '), details: c.details ? `${c.details.subject || ''} until ${c.details.valid_to || ''}` : '' })), {
      id: 'certs', actions: (c) => h('button', { type: 'button', onclick: async () => {
        if (!confirm(`Remove certificate ${c.name}?`)) return;
        const r = await attempt(() => op({ operation: 'remove_certificate', name: c.name }));
        if (r) { status(r.message || 'removed'); refresh(); }
      } }, 'Remove') }));
  }
  view.append(h('section', null, h('h2', null, 'Certificates'), area), h('section', null, h('h2', null, 'Add a certificate'), form));
  await refresh();
};

// ---- configuration ----

function flatten(obj, prefix, out) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) flatten(v, key, out); else out.push([key, v]);
  }
  return out;
}

VIEWS.config = async (view) => {
  const cfg = await attempt(() => op({ operation: 'get_configuration' }));
  if (!cfg) return;
  const form = h('form', { id: 'config-form' });
  const entries = flatten(cfg, '', []);
  for (const [key, value] of entries) {
    const id = 'cfg-' + key.replace(/[^A-Za-z0-9]/g, '-');
    form.append(h('div', { class: 'row' }, h('label', { for: id }, key,
      h('input', { id, 'data-key': key, 'data-orig': JSON.stringify(value), value: typeof value === 'string' ? value : JSON.stringify(value), size: 48 })),
    h('span', { class: 'field-error', id: id + '-error', 'aria-live': 'polite' })));
  }
  form.append(h('div', { class: 'row' }, h('button', { id: 'config-save', type: 'submit', class: 'primary' }, 'Save changes'),
    h('button', { id: 'config-restart', type: 'button', onclick: async () => {
      if (!confirm('Restart the server now?')) return;
      const r = await attempt(() => op({ operation: 'restart' }));
      if (r) status(r.message || 'restarting');
    } }, 'Restart')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { operation: 'set_configuration' };
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    for (const input of form.querySelectorAll('input[data-key]')) {
      const orig = JSON.parse(input.dataset.orig);
      let v = input.value;
      if (typeof orig !== 'string') { try { v = JSON.parse(v); } catch (_) { /* sent as typed: the server names the field */ } }
      if (JSON.stringify(v) !== input.dataset.orig) body[input.dataset.key] = v;
    }
    if (Object.keys(body).length === 1) { status('nothing changed'); return; }
    try {
      const r = await op(body);
      status((r.message || 'saved') + ' (restart to apply)');
    } catch (e) {
      status(e.message, true);
      // Show the error next to the field it names.
      for (const input of form.querySelectorAll('input[data-key]')) {
        if (e.message.includes(input.dataset.key)) $('#' + input.id + '-error').textContent = e.message;
      }
    }
  });
  view.append(h('section', null, h('h2', null, 'Configuration'), h('p', { class: 'hint' }, 'Changes are written to the configuration file and apply after a restart.'), form));
};

// ---- system information ----

VIEWS.system = async (view) => {
  const area = h('div', { id: 'system-area', class: 'charts' });
  view.append(h('section', null, h('h2', null, 'System information'), h('p', { class: 'hint' }, 'Refreshes every 3 seconds.'), area));
  async function refresh() {
    const s = await attempt(() => op({ operation: 'system_information' }));
    if (!s) return;
    const load = s.cpu && s.cpu.current_load ? s.cpu.current_load.currentLoad : 0;
    const mem = s.memory || {};
    const disks = (s.disk && s.disk.size) || [];
    area.replaceChildren(
      h('div', null, h('h3', null, 'Host'), h('p', null, `${s.system.hostname} · ${s.system.distro} ${s.system.release} · opshost ${s.system.opshost_version}`),
        h('p', null, `${s.cpu.cores} cores · ${s.cpu.brand}`)),
      bars('CPU load (%)', [['current', Math.round(load)]], '%', 100),
      bars('Memory (GB)', [['used', gb(mem.used || 0)], ['total', gb(mem.total || 0)], ['opshost RSS', gb(mem.rss || 0)]], ' GB'),
      bars('Disk used (%)', disks.map((d) => [d.mount, d.use]), '%', 100));
  }
  await refresh();
  timers.push(setInterval(refresh, 3000));
};

// ---- users and roles ----

VIEWS.users = async (view) => {
  const users = h('div', { id: 'users-area' });
  const roles = h('div', { id: 'roles-area' });
  const form = h('form', { id: 'user-form', class: 'row' },
    field('Username', 'user-name', { required: true }), field('Password', 'user-pass', { type: 'password', required: true, autocomplete: 'new-password' }),
    field('Role', 'user-role', { required: true, value: 'user' }), h('button', { type: 'submit', class: 'primary' }, 'Add user'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await attempt(() => op({ operation: 'add_user', username: $('#user-name').value, password: $('#user-pass').value, role: $('#user-role').value, active: true }));
    if (r) { status(r.message); refresh(); }
  });
  async function refresh() {
    const u = await attempt(() => op({ operation: 'list_users' }));
    if (u) users.replaceChildren(grid(u.map((x) => ({ username: x.username, role: x.role && x.role.role, active: x.active })), {
      id: 'users', actions: (x) => h('button', { type: 'button', onclick: async () => {
        if (!confirm(`Drop user ${x.username}?`)) return;
        const r = await attempt(() => op({ operation: 'drop_user', username: x.username }));
        if (r) { status(r.message); refresh(); }
      } }, 'Drop') }));
    const r = await op({ operation: 'list_roles' }).catch(() => null);
    if (r) roles.replaceChildren(grid(r.map((x) => ({ role: x.role, super_user: !!(x.permission && x.permission.super_user), permission: x.permission })), { id: 'roles' }));
  }
  view.append(h('section', null, h('h2', null, 'Users'), users, h('h3', null, 'Add a user'), form), h('section', null, h('h2', null, 'Roles'), roles));
  await refresh();
};

// ---- start ----

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', login);
  $('#logout').addEventListener('click', logout);
  for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => { show(b.dataset.view); $('#main').focus(); });
  try { auth = JSON.parse(sessionStorage.getItem(STORE) || 'null'); } catch (_) { auth = null; }
  if (auth && auth.header) enter(); else $('#login-user').focus();
});
