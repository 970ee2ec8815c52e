/**
 * The benchmark harness: the machine's description, interleaved rounds (every system once per
 * round, in a new order each round) after a warm-up, medians with min–max, ratios paired round
 * by round, markdown tables, and JSON rows in bench/results/.
 * @module
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Progress, progressBar } from '../../lib/demo/progress.js';

/** `--quick`: a smoke run of every scenario, well under a minute in all. */
export const quick = process.argv.includes('--quick');

/**
 * Where the JSON results and the chart go: bench/results/ (checked in) for full runs; a
 * temporary directory for `--quick` runs, so a smoke run never replaces the real numbers.
 */
export const RESULTS_DIR = quick
  ? path.join(os.tmpdir(), 'sessionlock-bench-quick')
  : fileURLToPath(new URL('../results/', import.meta.url));

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  date: string;
  /** The 1-minute load average when the scenario started: other work on the machine shows here. */
  loadAverage: number;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    date: new Date().toISOString(),
    loadAverage: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, ${m.date.slice(0, 16).replace('T', ' ')} UTC, load average ${m.loadAverage}`;
}

/** `file` relative to the working directory when inside it, else absolute. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') ? file : relative;
}

/** One result: the median of `runs` (one value per round). */
export interface Row {
  scenario: string;
  system: string;
  metric: string;
  value: number;
  unit: string;
  runs: number[];
}

/** An issue-6 target checked against this run. */
export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

export interface ResultFile {
  scenario: string;
  mode: 'quick' | 'full';
  machine: Machine;
  notes: string[];
  targets: Target[];
  rows: Row[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The `p`-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** A number with three significant digits and a k/M suffix: 216k, 2.93k, 557, 0.42. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

/** A ratio row (see {@link Results.pairedRatios}): "1.23× (0.98–1.40× by round)". */
export function formatRatio(row: Row): string {
  const range =
    row.runs.length > 1 ? ` (${Math.min(...row.runs).toFixed(2)}–${Math.max(...row.runs).toFixed(2)}× by round)` : '';
  return `${row.value.toFixed(2)}×${range}`;
}

function trim(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toFixed(digits).replace(/\.0+$|(\.\d*?)0+$/, '$1');
}

/** Collects the rows of one scenario, prints its tables and writes its JSON. */
export class Results {
  readonly scenario: string;
  readonly machine = machine();
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly targets: Target[] = [];

  constructor(scenario: string) {
    this.scenario = scenario;
    process.stdout.write(
      `\n## ${scenario}${quick ? ' (--quick)' : ''}\n\nMachine: ${describeMachine(this.machine)}\n\n`,
    );
  }

  add(system: string, metric: string, unit: string, runs: readonly number[]): Row {
    const row = { scenario: this.scenario, system, metric, value: median(runs), unit, runs: runs.map(round) };
    row.value = round(row.value);
    this.rows.push(row);
    return row;
  }

  get(system: string, metric: string): Row | undefined {
    return this.rows.find((row) => row.system === system && row.metric === metric);
  }

  /**
   * `system`'s `metric` over `other`'s `otherMetric`, round by round: each round ran both within
   * seconds of each other, so a machine that speeds up or slows down between rounds moves both alike.
   * `undefined` unless both have a value for every round.
   */
  pairedRatios(system: string, other: string, metric: string, otherMetric = metric): number[] | undefined {
    const own = this.get(system, metric)?.runs;
    const theirs = this.get(other, otherMetric)?.runs;
    if (!own || !theirs || own.length !== theirs.length || own.length === 0) return undefined;
    return own.map((value, round) => value / (theirs[round] as number));
  }

  /** A note printed under the tables and kept in the JSON. */
  note(text: string): void {
    this.notes.push(text);
  }

  /**
   * A markdown table: one line per system, one column per metric, each cell the median
   * with min–max. `extra` adds columns computed from a system's rows.
   */
  table(title: string, systems: readonly string[], columns: readonly Column[]): string {
    const header = ['system', ...columns.map((column) => column.label)];
    const lines = [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
    for (const system of systems) {
      const cells = columns.map((column) => column.cell?.(system, this) ?? this.cell(system, column.metric ?? ''));
      if (cells.every((cell) => cell === '–')) continue;
      lines.push(`| ${system} | ${cells.join(' | ')} |`);
    }
    const text = `### ${title}\n\n${lines.join('\n')}\n`;
    process.stdout.write(`${text}\n`);
    return text;
  }

  /** "median (min–max)" of one row, or "–". */
  cell(system: string, metric: string, format: (value: number) => string = formatNumber): string {
    const row = this.get(system, metric);
    if (!row) return '–';
    if (row.runs.length < 2) return format(row.value);
    return `${format(row.value)} (${format(Math.min(...row.runs))}–${format(Math.max(...row.runs))})`;
  }

  /** Records whether a target (from the issues) is met (`measured` is shown as given). */
  target(target: string, measured: string, met: boolean): void {
    this.targets.push({ target, measured, met });
  }

  write(): string {
    if (this.targets.length > 0) {
      const lines = this.targets.map((t) => `| ${t.target} | ${t.measured} | ${t.met ? 'met' : '**missed**'} |`);
      process.stdout.write(`### Targets\n\n| target | measured | |\n| --- | ---: | --- |\n${lines.join('\n')}\n\n`);
    }
    for (const note of this.notes) process.stdout.write(`- ${note}\n`);
    if (this.notes.length > 0) process.stdout.write('\n');
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `${this.scenario}.json`);
    const content: ResultFile = {
      scenario: this.scenario,
      mode: quick ? 'quick' : 'full',
      machine: this.machine,
      notes: this.notes,
      targets: this.targets,
      rows: this.rows,
    };
    const temp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temp, `${JSON.stringify(content, null, 1)}\n`);
    fs.renameSync(temp, file);
    process.stdout.write(`results: ${displayPath(file)}\n`);
    return file;
  }
}

export interface Column {
  label: string;
  metric?: string;
  cell?: (system: string, results: Results) => string;
}

function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  const abs = Math.abs(value);
  const digits = abs >= 1000 ? 0 : abs >= 10 ? 2 : 4;
  return Number(value.toFixed(digits));
}

/** One thing measured in every round: a system in one mode. Returns metric → value. */
export interface Contender {
  name: string;
  /** Runs once, untimed, before the first round. */
  warmup?: () => Promise<unknown>;
  run: (round: number) => Promise<Record<string, number>>;
}

/**
 * Runs every contender once per round, interleaved, after a warm-up of each, and returns
 * name → metric → the value of each round (in round order). The first round runs them in the
 * order given, each later one in a new order (shuffled, the same in every run), so no system
 * always follows the same neighbour and pays for what it leaves behind. Each run starts with
 * nothing left to write back (`sync`, untimed, skipped by `--quick`), so no system pays for the
 * disk writes of the one before it.
 */
export async function interleave(
  label: string,
  contenders: readonly Contender[],
  rounds: number,
): Promise<Map<string, Map<string, number[]>>> {
  const results = new Map(contenders.map((c) => [c.name, new Map<string, number[]>()]));
  const total = contenders.length * (rounds + 1);
  const bar = progressBar(label, total);
  let done = 0;
  for (const contender of contenders) {
    bar.update(done, `warm-up ${contender.name}`);
    await (contender.warmup ?? (() => contender.run(-1)))();
    bar.update(++done, `warm-up ${contender.name}`);
  }
  const order = [...contenders];
  const next = randomSequence(rounds);
  for (let round = 0; round < rounds; round++) {
    if (round > 0) shuffle(order, next);
    for (const contender of order) {
      bar.update(done, `round ${round + 1}/${rounds} ${contender.name}`);
      if (!quick) flushDisk();
      const values = await contender.run(round);
      const metrics = results.get(contender.name) as Map<string, number[]>;
      for (const [metric, value] of Object.entries(values)) {
        const list = metrics.get(metric) ?? [];
        list.push(value);
        metrics.set(metric, list);
      }
      bar.update(++done, `round ${round + 1}/${rounds} ${contender.name}`);
    }
  }
  bar.finish(`${contenders.length} systems × ${rounds} rounds`);
  return results;
}

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32), so every run makes the same choices. */
export function randomSequence(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shuffles `items` in place (Fisher–Yates) with `next` from {@link randomSequence}. */
function shuffle<T>(items: T[], next: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

/** A progress bar over `total` steps, for setup phases. */
export function progress(label: string, total: number): Progress {
  return progressBar(label, total);
}

export interface ThroughputOptions {
  /** How long to keep starting operations, in ms. */
  duration: number;
  /** Operations in flight at once. */
  concurrency: number;
  /** Record each operation's latency (ms). */
  latencies?: boolean;
}

export interface Throughput {
  ops: number;
  seconds: number;
  perSecond: number;
  latencies: number[];
}

/**
 * Runs `op` in `concurrency` loops until `duration` has passed and counts the operations
 * completed. `op(i)` gets a running index (for picking inputs).
 */
export async function throughput(
  op: (i: number) => unknown,
  { duration, concurrency, latencies: record = false }: ThroughputOptions,
): Promise<Throughput> {
  const latencies: number[] = [];
  let ops = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + duration;
  let now = started;
  const loop = async () => {
    while (now < deadline) {
      const t0 = record ? performance.now() : 0;
      await op(next++);
      ops++;
      if (record) {
        now = performance.now();
        latencies.push(now - t0);
      } else if ((ops & 15) === 0 || concurrency > 1) {
        now = performance.now();
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - started) / 1000;
  return { ops, seconds, perSecond: ops / seconds, latencies };
}

/**
 * Writes every dirty page to disk (`sync`) and returns the seconds it took, so data just
 * generated is not being flushed in the background while something is timed.
 */
export function flushDisk(): number {
  const started = performance.now();
  try {
    execFileSync('sync');
  } catch {}
  return (performance.now() - started) / 1000;
}

/** Stops the process with a loud message (a benchmark that proves something wrong must not pass quietly). */
export function fail(message: string): never {
  process.stderr.write(`\nBENCHMARK FAILED: ${message}\n`);
  process.exit(1);
}

/** Runs `main` when this module is the entry point; exits non-zero on errors. */
export function runScenario(meta: ImportMeta, main: () => Promise<void>): void {
  const entry = process.argv[1] && path.resolve(process.argv[1]);
  if (entry !== fileURLToPath(meta.url)) return;
  main().then(
    () => process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0),
    (error: unknown) => {
      process.stderr.write(`\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
