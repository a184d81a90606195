// The official MCP TypeScript SDK client schedules work through the scheduler
// extension's tools on a real ordinaut-server.
// usage: node sdk_client_scheduler.mjs <url> create
//          lists the 12 ext.scheduler.* tools; a bad cron is refused (isError
//          naming /schedule_expr) and stores nothing; creates a cron task
//          ("* * * * *", one events_demo.publish step), waits for a run of its
//          schedule to succeed, runs it now and sees that run succeed too;
//          prints "TASK_ID=<id>" for the next phase.
//        node sdk_client_scheduler.mjs <url> after <task_id> <restarted_at_ms>
//          (on a server restarted on the same data folder) get_task finds the
//          task, list_runs has the runs from before the restart, and a new run
//          of its schedule, due after the restart, succeeds.
// Waits poll for a state with a generous deadline (a cron minute is up to 60 s).
// Exit 0 when every check passes.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { check, finish } from './checks.mjs';

const [url, phase, taskArg, restartedArg] = process.argv.slice(2);
if (!url || !['create', 'after'].includes(phase)) {
  console.error('usage: node sdk_client_scheduler.mjs <url> create | after <task_id> <restarted_at_ms>');
  process.exit(2);
}
const timer = setTimeout(() => { console.error('FAIL: timeout'); process.exit(1); }, 200000);

const TOOLS = ['create_task', 'list_tasks', 'get_task', 'update_task', 'delete_task', 'pause_task', 'resume_task',
               'run_now', 'snooze_task', 'cancel_run', 'list_runs', 'get_run'].map((n) => `ext.scheduler.${n}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const client = new Client({ name: 'ordinaut-sdk-scheduler', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url));

async function call(name, args) {
  const result = await client.callTool({ name: `ext.scheduler.${name}`, arguments: args });
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  return result.structuredContent;
}

// Polls `probe` until it returns a truthy value; null after the deadline.
async function until(probe, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await sleep(500);
  }
  return null;
}

async function scheduledSuccess(taskId, after) {
  const page = await call('list_runs', { task_id: taskId, status: 'succeeded' });
  return page.runs.find((r) => r.trigger === 'schedule' && Date.parse(r.scheduled_for) > after);
}

try {
  await client.connect(transport);
  if (phase === 'create') {
    const { tools } = await client.listTools();
    const names = new Set(tools.map((t) => t.name));
    check(TOOLS.every((n) => names.has(n)), 'the 12 scheduler tools are listed', TOOLS.filter((n) => !names.has(n)));
    const create = tools.find((t) => t.name === 'ext.scheduler.create_task');
    check(create?.inputSchema?.type === 'object' && create?.outputSchema, 'create_task has input and output schemas');

    const bad = await client.callTool({ name: 'ext.scheduler.create_task',
      arguments: { title: 'bad', schedule_kind: 'cron', schedule_expr: '61 * * * *' } });
    const badText = bad.content?.map((c) => c.text).join(' ') ?? '';
    check(bad.isError === true && badText.includes('/schedule_expr'), 'a bad cron is refused naming /schedule_expr', bad);
    const before = await call('list_tasks', {});
    check(before.tasks.length === 0, 'nothing was stored', before);

    const created = await call('create_task', {
      title: 'every minute', schedule_kind: 'cron', schedule_expr: '* * * * *', timezone: 'Europe/Bucharest',
      payload: { params: { topic: 'minutely' },
                 pipeline: [{ id: 'publish', uses: 'ext.events_demo.publish',
                              with: { topic: '${params.topic}', payload: { at: '${now}' } }, save_as: 'p' }] } });
    check(typeof created.id === 'string' && typeof created.next_due_at === 'string', 'create_task', created);
    console.log(`TASK_ID=${created.id}`);
    const fromSchedule = await until(() => scheduledSuccess(created.id, 0), 150);
    check(fromSchedule && fromSchedule.steps[0]?.output?.topic === 'events_demo.minutely',
          'a run of the cron schedule succeeded', fromSchedule);

    const queued = await call('run_now', { id: created.id, params: { topic: 'now' } });
    const manual = await until(async () => {
      const run = await call('get_run', { id: queued.id });
      return ['succeeded', 'failed', 'cancelled'].includes(run.status) ? run : null;
    }, 60);
    check(manual?.status === 'succeeded' && manual.trigger === 'manual' &&
          manual.steps[0]?.output?.topic === 'events_demo.now', 'run_now succeeded with its params', manual);
  } else {
    const restartedAt = Number(restartedArg);
    const task = await call('get_task', { id: taskArg });
    check(task.id === taskArg && task.schedule_expr === '* * * * *' && task.timezone === 'Europe/Bucharest',
          'get_task after the restart', task);
    const history = await call('list_runs', { task_id: taskArg, status: 'succeeded' });
    check(history.runs.length >= 2, 'the runs from before the restart are there', history);
    const next = await until(() => scheduledSuccess(taskArg, restartedAt), 150);
    check(Boolean(next), 'a run due after the restart succeeded', next);
    await call('delete_task', { id: taskArg });
    const gone = await client.callTool({ name: 'ext.scheduler.get_task', arguments: { id: taskArg } });
    check(gone.isError === true, 'delete_task: get_task then fails', gone);
  }
  if (transport.sessionId) await transport.terminateSession();
  await client.close();
} catch (e) {
  check(false, 'unexpected error', e?.message ?? String(e));
}
clearTimeout(timer);
finish();
