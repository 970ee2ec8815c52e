/**
 * `npm run bench [-- --quick]`: every scenario, each in its own process (so one's open files,
 * connections and heap do not weigh on the next), then the chart. A failing scenario is
 * reported and the others still run; the exit code says whether all passed.
 *
 *   tsx bench/all.ts [--quick] [scenario ...]
 * @module
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describeMachine, machine, quick, runScenario } from './lib/harness.js';

/** scale last: its hundreds of thousands of file creations and removals slow the disk for a while after. */
const SCENARIOS = ['raw', 'cycle', 'contended', 'readers', 'http', 'cache', 'dbm-costs', 'scale'];

async function runFile(name: string, args: string[]): Promise<number> {
  const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: 'inherit' });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? (signal ? 128 : 1);
}

async function main(): Promise<void> {
  const chosen = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
  const unknown = chosen.filter((name) => !SCENARIOS.includes(name));
  if (unknown.length > 0)
    throw new Error(`unknown scenario ${unknown.join(', ')}; choose from ${SCENARIOS.join(', ')}`);
  const scenarios = chosen.length > 0 ? chosen : SCENARIOS;
  process.stdout.write(
    `# sessionlock benchmarks${quick ? ' (--quick: a smoke run, not numbers to quote)' : ''}\n\n${describeMachine(machine())}\n`,
  );
  const started = performance.now();
  const failed: string[] = [];
  const times: string[] = [];
  for (const name of scenarios) {
    const t0 = performance.now();
    const code = await runFile(name, quick ? ['--quick'] : []);
    times.push(`${name} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (code !== 0) failed.push(name);
  }
  await runFile('chart', quick ? ['--quick'] : []);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`\nbench: ${times.join(', ')}; total ${seconds.toFixed(0)} s\n`);
  if (failed.length > 0) {
    process.stderr.write(`bench: FAILED scenarios: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

runScenario(import.meta, main);
