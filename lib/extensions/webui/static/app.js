// Ordinaut web UI. Tasks and runs come from the scheduler extension's REST API
// (/ext/scheduler/api), the step picker from /ext/webui/api/tools, the rest
// from /ext/status. Everything the server sends is inserted as text (never as
// HTML), so task titles and error messages cannot inject markup.
'use strict';

const scheduler = (path) => `/ext/scheduler/api${path}`;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return node;
}

// Sign-in for a server started with --auth: the bearer token lives in
// sessionStorage (this tab only, gone when it closes) and goes with every
// call. The page itself and its files load without it.
const tokenKey = 'ordinaut.token';
const token = () => sessionStorage.getItem(tokenKey) ?? '';

function showSignIn(message) {
  const box = document.getElementById('sign-in');
  box.hidden = false;
  document.getElementById('sign-in-error').textContent = message ?? '';
}

// An error answer of the server: its message, the JSON pointer it names
// (details.pointer) and the HTTP status.
class ApiError extends Error {
  constructor(status, data, fallback) {
    const pointer = data?.details?.pointer;
    super(`${pointer ? `${pointer}: ` : ''}${data?.message ?? fallback}`);
    this.status = status;
  }
}

async function call(method, url, body) {
  const init = { method, headers: {} };
  if (token()) init.headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  if (res.status === 401) showSignIn(token() ? 'The token was refused: sign in again.' : 'This server needs a token.');
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: the status says enough */ }
  if (!res.ok) throw new ApiError(res.status, data, `${res.status} ${res.statusText}`);
  return data;
}

// The scheduler may be missing or disabled (404), or not loaded (503): the
// task part of the page then says so, and the rest keeps working.
function schedulerAvailable(available, why) {
  const box = document.getElementById('scheduler-missing');
  box.hidden = available;
  box.textContent = available ? '' : `Tasks need the scheduler extension, which is not available: ${why}. ` +
    'Enable it in the Extensions table below (or start the server with it) to create and run tasks.';
  document.querySelector('[data-testid=task-create]').disabled = !available;
}

let taskTitles = new Map();  // task id → title, for the runs table

async function refreshTasks() {
  let page;
  try {
    page = await call('GET', scheduler('/tasks?limit=200'));
  } catch (e) {
    if (e.status === 404 || e.status === 503) {
      schedulerAvailable(false, e.message);
      document.getElementById('tasks').replaceChildren();
      return;
    }
    throw e;
  }
  schedulerAvailable(true);
  const { tasks } = page;
  taskTitles = new Map(tasks.map((t) => [t.id, t.title]));
  const steps = (t) => (t.payload?.pipeline ?? []).map((s) => s.uses).join(' → ') || '—';
  document.getElementById('tasks').replaceChildren(...tasks.map((t) => el('tr', { 'data-task-id': t.id },
    el('td', {}, t.id), el('td', {}, t.title), el('td', {}, steps(t)),
    el('td', {}, t.schedule_kind === 'manual' ? 'manual' : `${t.schedule_kind} ${t.schedule_expr}`),
    el('td', {},
      el('button', { 'data-testid': `run-${t.id}`, onclick: () => runTask(t.id) }, 'Run now'), ' ',
      el('button', { class: 'secondary', onclick: () => deleteTask(t.id) }, 'Delete')))));
}

function duration(r) {
  if (!r.started_at || !r.finished_at) return '—';
  return `${(Date.parse(r.finished_at) - Date.parse(r.started_at)).toFixed(0)} ms`;
}

function detail(r) {
  if (r.error) return r.error.message ?? JSON.stringify(r.error);
  return JSON.stringify((r.steps ?? []).map((s) => s.output ?? s.error ?? s.status));
}

async function refreshRuns() {
  let page;
  try {
    page = await call('GET', scheduler('/runs?limit=50'));
  } catch (e) {
    if (e.status === 404 || e.status === 503) {
      document.getElementById('runs').replaceChildren();
      return;
    }
    throw e;
  }
  document.getElementById('runs').replaceChildren(...page.runs.map((r) => el('tr', { 'data-run-id': r.id },
    el('td', {}, r.id), el('td', {}, taskTitles.get(r.task_id) ?? r.task_id, ' ', el('small', {}, r.task_id)),
    el('td', { class: r.status, 'data-testid': 'run-status' }, r.status), el('td', {}, r.trigger),
    el('td', {}, duration(r)), el('td', {}, el('pre', {}, detail(r))))));
}

async function refreshTools() {
  const { tools } = await call('GET', '/ext/webui/api/tools');
  const picker = document.getElementById('tool-picker');
  picker.replaceChildren(el('option', { value: '' }, 'add a step with tool…'),
    ...tools.map((t) => el('option', { value: t.name, title: t.description }, t.name)));
}

async function refreshStatus() {
  const system = document.getElementById('system');
  try {
    const status = await call('GET', '/ext/status');
    const failed = status.failed_extensions;
    system.className = `status ${failed ? 'degraded' : 'ok'}`;
    system.textContent = `${status.loaded_extensions}/${status.total_extensions} extensions loaded` +
      (failed ? `, ${failed} failed` : '') + ` · bus: ${status.event_bus?.kind ?? '?'}`;
    const body = document.getElementById('extensions');
    body.replaceChildren(...Object.entries(status.extensions).map(([id, x]) => el('tr', { 'data-extension-id': id },
      el('td', {}, id), el('td', { class: `state-${x.state}` }, x.state), el('td', {}, x.grants.join(', ')),
      el('td', {}, x.metrics.requests), el('td', {}, x.metrics.errors), el('td', {}, x.last_error ?? ''),
      el('td', {}, ...['reload', x.state === 'disabled' ? 'enable' : 'disable'].map((action) =>
        el('button', { class: 'secondary', 'data-testid': `${action}-${id}`, onclick: () => admin(id, action) },
          action))))));
  } catch (e) {
    system.className = 'status unknown';
    system.textContent = `status unavailable: ${e.message}`;
  }
}

async function admin(id, action) {
  const out = document.getElementById('admin-error');
  out.textContent = '';
  try {
    await call('POST', `/ext/_admin/extensions/${encodeURIComponent(id)}/${action}`);
  } catch (e) {
    out.textContent = `${action} ${id}: ${e.message}`;
  }
  await refreshStatus();
  if (id === 'scheduler') await refreshTasks().then(refreshRuns).catch(() => {});
}

async function runTask(id) {
  const out = document.getElementById('task-error');
  out.textContent = '';
  try {
    await call('POST', scheduler(`/tasks/${encodeURIComponent(id)}/run`));
  } catch (e) {
    out.textContent = `run ${id}: ${e.message}`;
  }
  await refreshRuns();
}

async function deleteTask(id) {
  const out = document.getElementById('task-error');
  out.textContent = '';
  try {
    await call('DELETE', scheduler(`/tasks/${encodeURIComponent(id)}`));
  } catch (e) {
    out.textContent = `delete ${id}: ${e.message}`;
  }
  await refreshTasks();
}

document.getElementById('tool-picker').addEventListener('change', (ev) => {
  const name = ev.target.value;
  if (!name) return;
  const area = document.querySelector('[name=steps]');
  let steps = [];
  try { steps = JSON.parse(area.value || '[]'); } catch { /* keep what the user typed out of the way */ }
  steps.push({ uses: name, with: {} });
  area.value = JSON.stringify(steps, null, 1);
  ev.target.value = '';
});

document.getElementById('task-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const error = document.getElementById('form-error');
  error.textContent = '';
  let pipeline;
  try {
    pipeline = JSON.parse(form.steps.value || '[]');
  } catch (e) {
    error.textContent = `Steps are not valid JSON: ${e.message}`;
    return;
  }
  // A manual task: it runs when "Run now" is pressed.
  const task = { title: form.title.value, schedule_kind: 'manual', payload: { pipeline } };
  if (form.description.value) task.description = form.description.value;
  try {
    await call('POST', scheduler('/tasks'), task);
    form.reset();
    form.steps.value = '[]';
    await refreshTasks();
  } catch (e) {
    error.textContent = e.message;
  }
});

document.getElementById('sign-in-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const value = ev.target.token.value.trim();
  if (value) sessionStorage.setItem(tokenKey, value);
  else sessionStorage.removeItem(tokenKey);
  ev.target.reset();
  document.getElementById('sign-in').hidden = true;
  refreshAll();
});
document.getElementById('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(tokenKey);
  refreshAll();
});

function refreshAll() {
  refreshTools().catch(() => {});
  refreshTasks().then(refreshRuns).catch(() => {});
  refreshStatus();
}

refreshAll();
// Runs move on their own (queued → running → succeeded): the table follows.
setInterval(() => { refreshStatus(); refreshRuns().catch(() => {}); }, 2000);
