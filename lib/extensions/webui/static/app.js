// Ordinaut web UI. Talks to /ext/webui/api/* and /ext/status. Everything the
// server sends is inserted as text (never as HTML), so task titles and error
// messages cannot inject markup.
'use strict';

const api = (path) => `/ext/webui/api${path}`;

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
  const data = text ? JSON.parse(text) : null;
  if (!res.ok && res.status !== 422) throw new Error(data?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

async function refreshTasks() {
  const { tasks } = await call('GET', api('/tasks'));
  const body = document.getElementById('tasks');
  body.replaceChildren(...tasks.map((t) => el('tr', { 'data-task-id': t.id },
    el('td', {}, t.id), el('td', {}, t.title), el('td', {}, t.steps.map((s) => s.tool).join(' → ') || '—'),
    el('td', {}, t.runs), el('td', { class: t.last_status }, t.last_status || '—'),
    el('td', {},
      el('button', { 'data-testid': `run-${t.id}`, onclick: () => runTask(t.id) }, 'Run'), ' ',
      el('button', { class: 'secondary', onclick: () => deleteTask(t.id) }, 'Delete')))));
}

async function refreshRuns() {
  const { runs } = await call('GET', api('/runs'));
  const body = document.getElementById('runs');
  body.replaceChildren(...runs.map((r) => el('tr', { 'data-run-id': r.id },
    el('td', {}, r.id), el('td', {}, r.task_id), el('td', { class: r.status }, r.status),
    el('td', {}, `${r.duration_ms.toFixed(2)} ms`),
    el('td', {}, el('pre', {}, r.error ?? JSON.stringify(r.steps.map((s) => s.output ?? s.message)))))));
}

async function refreshTools() {
  const { tools } = await call('GET', api('/tools'));
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
        el('button', { class: 'secondary', onclick: () => admin(id, action) }, action))))));
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
}

async function runTask(id) {
  await call('POST', api(`/tasks/${encodeURIComponent(id)}/run`));
  await Promise.all([refreshTasks(), refreshRuns()]);
}

async function deleteTask(id) {
  await call('DELETE', api(`/tasks/${encodeURIComponent(id)}`));
  await refreshTasks();
}

document.getElementById('tool-picker').addEventListener('change', (ev) => {
  const name = ev.target.value;
  if (!name) return;
  const area = document.querySelector('[name=steps]');
  let steps = [];
  try { steps = JSON.parse(area.value || '[]'); } catch { /* keep what the user typed out of the way */ }
  steps.push({ tool: name, arguments: {} });
  area.value = JSON.stringify(steps, null, 1);
  ev.target.value = '';
});

document.getElementById('task-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const error = document.getElementById('form-error');
  error.textContent = '';
  let steps;
  try {
    steps = JSON.parse(form.steps.value || '[]');
  } catch (e) {
    error.textContent = `Steps are not valid JSON: ${e.message}`;
    return;
  }
  const task = { title: form.title.value, steps };
  if (form.description.value) task.description = form.description.value;
  try {
    await call('POST', api('/tasks'), task);
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
  refreshTasks().catch(() => {});
  refreshRuns().catch(() => {});
  refreshStatus();
}

refreshTools().catch(() => {});
refreshTasks().catch(() => {});
refreshRuns().catch(() => {});
refreshStatus();
setInterval(refreshStatus, 2000);
