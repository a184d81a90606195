// Drives the webui page in headless Chromium against a real ordinaut-server:
// create tasks through the form, run them, see runs and extension state, and
// check that server-provided text cannot inject markup.
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

const deadline = setTimeout(() => { console.error('FAIL: timeout'); process.exit(1); }, 100_000);

function startServer(extraArgs = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(serverBin, ['--port', '0', '--ext-path', extDir, '--no-request-log', ...extraArgs],
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

  await check('extensions table lists webui as active', async () => {
    await page.waitForSelector('tr[data-extension-id=webui]');
    assert.equal(await page.textContent('tr[data-extension-id=webui] td:nth-child(2)'), 'active');
  });

  await check('tool picker lists registry tools and adds a step', async () => {
    await page.waitForSelector('[data-testid=tool-picker] option[value="ext.webtools.upper"]', { state: 'attached' });
    await page.selectOption('[data-testid=tool-picker]', 'ext.webtools.upper');
    const steps = JSON.parse(await page.inputValue('[data-testid=task-steps]'));
    assert.deepEqual(steps, [{ tool: 'ext.webtools.upper', arguments: {} }]);
  });

  await check('a task created in the form runs its pipeline', async () => {
    await page.fill('[data-testid=task-title]', 'Shout');
    await page.fill('[data-testid=task-steps]', JSON.stringify([{ tool: 'ext.webtools.upper', arguments: { text: 'hello agents' } }]));
    await page.click('[data-testid=task-create]');
    const row = page.locator('[data-testid=tasks] tr', { hasText: 'Shout' });
    await row.waitFor();
    const id = await row.getAttribute('data-task-id');
    await page.click(`[data-testid=run-${id}]`);
    const run = page.locator('[data-testid=runs] tr', { hasText: id });
    await run.waitFor();
    assert.equal(await run.locator('td:nth-child(3)').textContent(), 'succeeded');
    assert.match(await run.textContent(), /HELLO AGENTS/);
    // The task row now counts the run.
    await page.waitForFunction((tid) => document.querySelector(`tr[data-task-id="${tid}"] td:nth-child(4)`).textContent === '1', id);
  });

  await check('a failing step marks the run failed with the reason', async () => {
    await page.fill('[data-testid=task-title]', 'Broken');
    await page.fill('[data-testid=task-steps]', JSON.stringify([{ tool: 'ext.webtools.fail' }]));
    await page.click('[data-testid=task-create]');
    const row = page.locator('[data-testid=tasks] tr', { hasText: 'Broken' });
    await row.waitFor();
    const id = await row.getAttribute('data-task-id');
    await page.click(`[data-testid=run-${id}]`);
    const run = page.locator('[data-testid=runs] tr', { hasText: id });
    await run.waitFor();
    assert.equal(await run.locator('td:nth-child(3)').textContent(), 'failed');
    assert.match(await run.textContent(), /deliberate failure/);
  });

  await check('bad steps JSON and unknown tools get clear errors and create nothing', async () => {
    const before = await page.locator('[data-testid=tasks] tr').count();
    await page.fill('[data-testid=task-title]', 'Nope');
    await page.fill('[data-testid=task-steps]', '[{"tool": ');
    await page.click('[data-testid=task-create]');
    await page.waitForFunction(() => document.querySelector('[data-testid=form-error]').textContent.includes('not valid JSON'));
    await page.fill('[data-testid=task-steps]', JSON.stringify([{ tool: 'ext.nobody.nothing' }]));
    await page.click('[data-testid=task-create]');
    await page.waitForFunction(() => document.querySelector('[data-testid=form-error]').textContent.includes('/steps/0/tool'));
    assert.equal(await page.locator('[data-testid=tasks] tr').count(), before);
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
    await page.fill('[data-testid=task-steps]', '[]');
    await page.click('[data-testid=task-create]');
    await page.locator('[data-testid=tasks] tr', { hasText: 'Secured' }).waitFor();
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
