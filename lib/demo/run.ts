/**
 * `npm run demo` / `sessionlock demo`: a node:http server with sessionlock sessions, and
 * client processes that hammer one session with increments — first under the lock, then
 * without it, to show what a lock-free session store loses.
 * @module
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dir } from 'tmp-promise';
import { withSession } from '../adapters/http.js';
import type { SessionOptions } from '../session-options.js';
import { progressBar } from './progress.js';

const HELP = `Usage: npm run demo -- [options]   (or: sessionlock demo [options])

Starts a node:http server with sessionlock sessions on 127.0.0.1, then client processes send
requests that all carry one session cookie and increment one counter: first under the
session lock, then without it.

Options:
  --requests <n>      requests per run (default 2000)
  --concurrency <n>   requests in flight (default 32)
  --clients <n>       client processes (default 2)
  --backend <type>    dbm, file or memory (default dbm, in a temporary directory)
  -h, --help          show this help

Exits 0 when the locked run counts every request exactly.`;

interface DemoSettings {
  requests: number;
  concurrency: number;
  clients: number;
  backend: string;
}

interface RunResult {
  counter: number;
  failed: number;
  seconds: number;
}

/**
 * Runs the demo with command-line `args`; resolves the exit code. A usage error is one line
 * on stderr, led by `program` (how the user started the demo).
 */
export async function runDemo(
  args: string[],
  out: NodeJS.WritableStream = process.stdout,
  program = 'sessionlock demo',
): Promise<number> {
  let settings: DemoSettings;
  try {
    settings = parseSettings(args);
  } catch (error) {
    process.stderr.write(`${program}: ${(error as Error).message} (see ${program} --help)\n`);
    return 2;
  }
  if (args.includes('-h') || args.includes('--help')) {
    out.write(`${HELP}\n`);
    return 0;
  }
  const tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-demo-' });
  const interrupted = (signal: NodeJS.Signals) => {
    fs.rmSync(tmp.path, { recursive: true, force: true });
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  const options: SessionOptions = {
    type: settings.backend,
    key: 'demo',
    ...(settings.backend === 'memory' ? {} : { dataDir: tmp.path }),
  };
  const server = http.createServer(
    withSession(
      async (req, res) => {
        const session = req.session;
        if (req.url?.endsWith('/increment')) {
          const n = (session.data.n as number | undefined) ?? 0;
          await lookUpSomething();
          session.data.n = n + 1;
        }
        if (req.url === '/start') session.data.n = 0;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ n: session.data.n ?? null }));
      },
      { ...options, lock: (req) => req.url?.startsWith('/locked/') === true },
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    out.write(
      `sessionlock demo: node:http on ${base}, ${settings.backend} sessions${settings.backend === 'memory' ? '' : ` in ${tmp.path}`}\n` +
        `${settings.clients} client processes send ${settings.requests} requests, ${settings.concurrency} in flight, all with one session cookie;\n` +
        'each request reads the counter in the session, awaits a (simulated 1 ms) query, and writes it back plus one.\n\n',
    );
    const locked = await measure(base, '/locked/increment', 'with lock()  ', settings);
    report(out, locked, settings.requests);
    const unlocked = await measure(base, '/unlocked/increment', 'without lock ', settings);
    report(out, unlocked, settings.requests);
    const exact = locked.counter === settings.requests && locked.failed === 0;
    out.write(
      exact
        ? '\nThe locked run counted every request. Without the lock, concurrent requests read the same\n' +
            'counter and overwrite each other, as with express-session and its stores.\n'
        : '\nThe locked run lost updates: this is a bug.\n',
    );
    return exact ? 0 : 1;
  } finally {
    process.off('SIGINT', interrupted).off('SIGTERM', interrupted);
    server.closeAllConnections();
    server.close();
    await tmp.cleanup();
  }
}

function parseSettings(args: string[]): DemoSettings {
  const { values } = parseArgs({
    args,
    options: {
      requests: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '32' },
      clients: { type: 'string', default: '2' },
      backend: { type: 'string', default: 'dbm' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const count = (name: 'requests' | 'concurrency' | 'clients') => {
    const value = Number(values[name]);
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`--${name} must be a positive integer, received ${values[name]}`);
    return value;
  };
  const backend = values.backend as string;
  if (!['dbm', 'file', 'memory'].includes(backend))
    throw new Error(`--backend must be dbm, file or memory, received ${backend}`);
  const settings = {
    requests: count('requests'),
    concurrency: count('concurrency'),
    clients: count('clients'),
    backend,
  };
  settings.clients = Math.min(settings.clients, settings.requests, settings.concurrency);
  return settings;
}

/** Starts a fresh session, runs the clients against `path`, and reads the counter back. */
async function measure(base: string, path: string, label: string, settings: DemoSettings): Promise<RunResult> {
  const start = await fetch(`${base}/start`);
  const cookie = (start.headers.get('set-cookie') ?? '').split(';')[0] as string;
  const bar = progressBar(label, settings.requests);
  const started = performance.now();
  const done = new Array<number>(settings.clients).fill(0);
  let failed = 0;
  await Promise.all(
    done.map((_, index) => {
      const share =
        Math.floor(settings.requests / settings.clients) + (index < settings.requests % settings.clients ? 1 : 0);
      const concurrency = Math.max(1, Math.round(settings.concurrency / settings.clients));
      const child = fork(clientScript(), [JSON.stringify({ url: base + path, cookie, count: share, concurrency })], {
        execArgv: import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [],
      });
      child.on('message', (message: { done: number; failed?: number; finished?: boolean }) => {
        done[index] = message.done;
        if (message.finished) failed += message.failed ?? 0;
        bar.update(done.reduce((a, b) => a + b, 0));
      });
      return new Promise((resolve) => child.on('exit', resolve));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  bar.finish(`${Math.round(settings.requests / seconds)} req/s`);
  const final = (await (await fetch(`${base}/count`, { headers: { cookie } })).json()) as { n: number };
  return { counter: final.n, failed, seconds };
}

function report(out: NodeJS.WritableStream, run: RunResult, requests: number): void {
  const lost = requests - run.counter;
  const share = ((lost / requests) * 100).toFixed(1);
  out.write(
    `  counter ${run.counter} after ${requests} requests: lost updates ${lost} (${share}%)` +
      `${run.failed ? `, ${run.failed} failed requests` : ''}\n`,
  );
}

/** Stands in for what a real handler awaits between reading the session and writing it (a database query). */
function lookUpSomething(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

function clientScript(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './client.ts' : './client.js', import.meta.url);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = await runDemo(process.argv.slice(2), process.stdout, 'npm run demo --');
}
