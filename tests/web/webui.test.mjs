// Drives the webui page in headless Chromium against a real ordinaut-server
// with the scheduler: create manual tasks through the form (stored by the
// scheduler), run them now, see their runs end, see extension state, see a
// clear message while the scheduler is disabled, and check that
// server-provided text cannot inject markup.
// usage: node webui.test.mjs <ordinaut-server> <extension dir with webtools>
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const [serverBin, extDir] = process.argv.slice(2);
const chromiumPath = '/usr/bin/chromium';
const playwrightPath = join(here, 'node_modules', 'playwright-core', 'index.mjs');
if (!existsSync(chromiumPath) || !existsSync(playwrightPath)) {
  const why = `needs ${chromiumPath} and ${playwrightPath} (apt-get install chromium; npm ci in tests/web)`;
  if (process.env.CI) { console.error(`FAIL: ${why}`); process.exit(1); }
  console.log(`SKIP: ${why}`);
  process.exit(77);
}
const { chromium } = await import(playwrightPath);

const deadline = setTimeout(() => { console.error('FAIL: timeout'); process.exit(1); }, 170_000);

// Each server gets a fresh scheduler store.
function startServer(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'webui-data-'));
  return new Promise((resolve, reject) => {
    const child = spawn(serverBin, ['--port', '0', '--ext-path', extDir, '--no-request-log', '--data-dir', dataDir,
                                    ...extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) resolve({ child, url: m[1] });
    });
    child.stderr.on('data', (d) => { if (process.env.VERBOSE) process.stderr.write(d); });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

const results = [];
async function check(name, fn) {
  try { await fn(); results.push([name, true]); console.log(`ok - ${name}`); }
  catch (e) { results.push([name, false]); console.log(`not ok - ${name}: ${e.stack ?? e}`); }
}

const { child, url } = await startServer();
const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${url}/ext/webui/`);

  await check('system status shows loaded extensions', async () => {
    await page.waitForFunction(() => /extensions loaded/.test(document.querySelector('[data-testid=system-status]').textContent));
    const text = await page.textContent('[data-testid=system-status]');
    assert.match(text, /\d+\/\d+ extensions loaded/);
  });

  await check('extensions table lists webui and the scheduler as active; webui holds no more grants than it uses', async () => {
    await page.waitForSelector('tr[data-extension-id=webui]');
    assert.equal(await page.textContent('tr[data-extension-id=webui] td:nth-child(2)'), 'active');
    await page.waitForSelector('tr[data-extension-id=scheduler]');
    assert.equal(await page.textContent('tr[data-extension-id=scheduler] td:nth-child(2)'), 'active');
    assert.equal(await page.textContent('tr[data-extension-id=webui] td:nth-child(3)'), 'ROUTES, STATIC');
    // Its in-memory task API is gone: tasks live in the scheduler.
    assert.equal((await fetch(`${url}/ext/webui/api/tasks`)).status, 404);
  });

  await check('tool picker lists registry tools and adds a pipeline step', async () => {
    await page.waitForSelector('[data-testid=tool-picker] option[value="ext.webtools.upper"]', { state: 'attached' });
    await page.selectOption('[data-testid=tool-picker]', 'ext.webtools.upper');
    const steps = JSON.parse(await page.inputValue('[data-testid=task-steps]'));
    assert.deepEqual(steps, [{ uses: 'ext.webtools.upper', with: {} }]);
  });

  // Creates a task through the form and returns its id (from the row the page shows).
  async function createTask(title, steps) {
    await page.fill('[data-testid=task-title]', title);
    await page.fill('[data-testid=task-steps]', JSON.stringify(steps));
    await page.click('[data-testid=task-create]');
    const row = page.locator('[data-testid=tasks] tr', { hasText: title });
    await row.waitFor();
    return row.getAttribute('data-task-id');
  }

  // Presses "Run now" and waits (generously) until the task's newest run has ended.
  async function runAndWait(id) {
    await page.click(`[data-testid=run-${id}]`);
    const run = page.locator('[data-testid=runs] tr', { hasText: id }).first();
    await run.waitFor({ timeout: 60_000 });
    await page.waitForFunction((tid) => {
      const row = [...document.querySelectorAll('[data-testid=runs] tr')].find((r) => r.textContent.includes(tid));
      return row && !['queued', 'running'].includes(row.querySelector('[data-testid=run-status]').textContent);
    }, id, { timeout: 60_000 });
    return run;
  }

  await check('a task created in the form is a manual scheduler task and runs its pipeline', async () => {
    const id = await createTask('Shout', [{ uses: 'ext.webtools.upper', with: { text: 'hello agents' } }]);
    const stored = await (await fetch(`${url}/ext/scheduler/api/tasks/${id}`)).json();
    assert.equal(stored.schedule_kind, 'manual');
    assert.deepEqual(stored.payload.pipeline, [{ uses: 'ext.webtools.upper', with: { text: 'hello agents' } }]);
    const run = await runAndWait(id);
    assert.equal(await run.locator('[data-testid=run-status]').textContent(), 'succeeded');
    assert.match(await run.textContent(), /HELLO AGENTS/);
    assert.match(await run.textContent(), /manual/);
    // The scheduler recorded the same.
    const { runs } = await (await fetch(`${url}/ext/scheduler/api/runs?task_id=${id}`)).json();
    assert.equal(runs.length, 1);
    assert.equal(runs[0].status, 'succeeded');
    assert.equal(runs[0].steps[0].output.text, 'HELLO AGENTS');
  });

  await check('a failing step marks the run failed with the reason', async () => {
    const id = await createTask('Broken', [{ uses: 'ext.webtools.fail' }]);
    const run = await runAndWait(id);
    assert.equal(await run.locator('[data-testid=run-status]').textContent(), 'failed');
    assert.match(await run.textContent(), /deliberate failure/);
  });

  await check('bad steps JSON and unknown tools get clear errors and create nothing', async () => {
    const before = await page.locator('[data-testid=tasks] tr').count();
    await page.fill('[data-testid=task-title]', 'Nope');
    await page.fill('[data-testid=task-steps]', '[{"uses": ');
    await page.click('[data-testid=task-create]');
    await page.waitForFunction(() => document.querySelector('[data-testid=form-error]').textContent.includes('not valid JSON'));
    await page.fill('[data-testid=task-steps]', JSON.stringify([{ uses: 'ext.nobody.nothing' }]));
    await page.click('[data-testid=task-create]');
    await page.waitForFunction(() => /\/payload\/pipeline\/0\/uses: .*ext\.nobody\.nothing/.test(
      document.querySelector('[data-testid=form-error]').textContent));
    assert.equal(await page.locator('[data-testid=tasks] tr').count(), before);
    const { tasks } = await (await fetch(`${url}/ext/scheduler/api/tasks`)).json();
    assert.equal(tasks.length, before);
  });

  await check('task titles are shown as text, never as markup', async () => {
    const title = '<img src=x onerror="window.__xss=1">';
    await page.fill('[data-testid=task-title]', title);
    await page.fill('[data-testid=task-steps]', '[]');
    await page.click('[data-testid=task-create]');
    await page.locator('[data-testid=tasks] tr', { hasText: 'onerror' }).waitFor();
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.locator('[data-testid=tasks] img').count(), 0);
  });

  await check('with the scheduler disabled the page says so, and works again once it is enabled', async () => {
    const count = await page.locator('[data-testid=tasks] tr').count();
    assert.ok(count >= 3);
    await page.click('[data-testid=disable-scheduler]');
    await page.waitForSelector('[data-testid=scheduler-missing]:not([hidden])');
    assert.match(await page.textContent('[data-testid=scheduler-missing]'), /scheduler extension.*not available/);
    assert.equal(await page.isDisabled('[data-testid=task-create]'), true);
    assert.equal(await page.locator('[data-testid=tasks] tr').count(), 0);
    // The rest of the page keeps working.
    await page.waitForFunction(() => /extensions loaded/.test(document.querySelector('[data-testid=system-status]').textContent));
    await page.click('[data-testid=enable-scheduler]');
    await page.waitForSelector('[data-testid=scheduler-missing]', { state: 'hidden' });
    assert.equal(await page.isDisabled('[data-testid=task-create]'), false);
    // The tasks were kept by the scheduler's store.
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=tasks] tr').length === n, count);
  });

  await check('the page raised no script errors', async () => { assert.deepEqual(pageErrors, []); });
  const shot = join(process.env.ORDINAUT_BUILD_ROOT ?? mkdtempSync(join(tmpdir(), 'webui-')), 'webui.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
} finally {
  child.kill('SIGTERM');
}

// The same console against a server with --auth: the page loads, asks for a
// token, keeps it in sessionStorage and sends it on every call.
const authDir = mkdtempSync(join(tmpdir(), 'webui-auth-'));
const token = `webui-${randomBytes(12).toString('hex')}`;
writeFileSync(join(authDir, 'auth.json'), JSON.stringify({
  tokens: [{ name: 'operator', sha256: createHash('sha256').update(token).digest('hex'),
             scopes: ['ext:*:routes', 'ext:status', 'ext:admin'] }],
}));
const secured = await startServer(['--auth', join(authDir, 'auth.json')]);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${secured.url}/ext/webui/`);

  await check('with --auth the page loads and asks for a token', async () => {
    await page.waitForSelector('[data-testid=sign-in]:not([hidden])');
    await page.waitForFunction(() => /status unavailable/.test(document.querySelector('[data-testid=system-status]').textContent));
  });

  await check('a wrong token is refused and says so', async () => {
    await page.fill('[data-testid=sign-in-token]', 'not-the-token');
    await page.click('[data-testid=sign-in-submit]');
    await page.waitForFunction(() => /refused/.test(document.querySelector('[data-testid=sign-in-error]').textContent));
  });

  await check('signed in, the console works and the token stays in sessionStorage', async () => {
    await page.fill('[data-testid=sign-in-token]', token);
    await page.click('[data-testid=sign-in-submit]');
    await page.waitForFunction(() => /extensions loaded/.test(document.querySelector('[data-testid=system-status]').textContent));
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ordinaut.token')), token);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    await page.fill('[data-testid=task-title]', 'Secured');
    await page.fill('[data-testid=task-steps]', JSON.stringify([{ uses: 'ext.webtools.upper', with: { text: 'signed' } }]));
    await page.click('[data-testid=task-create]');
    const row = page.locator('[data-testid=tasks] tr', { hasText: 'Secured' });
    await row.waitFor();
    const id = await row.getAttribute('data-task-id');
    await page.click(`[data-testid=run-${id}]`);
    await page.waitForFunction((tid) => {
      const r = [...document.querySelectorAll('[data-testid=runs] tr')].find((x) => x.textContent.includes(tid));
      return r?.querySelector('[data-testid=run-status]').textContent === 'succeeded';
    }, id, { timeout: 60_000 });
  });

  await check('signing out drops the token', async () => {
    await page.click('[data-testid=sign-out]');
    await page.waitForSelector('[data-testid=sign-in]:not([hidden])');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ordinaut.token')), null);
  });

  await check('the signed-in page raised no script errors', async () => { assert.deepEqual(pageErrors, []); });
} finally {
  await browser.close();
  secured.child.kill('SIGTERM');
  clearTimeout(deadline);
}
const failed = results.filter(([, ok]) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
