/**
 * Draws bench/results/chart.svg from the JSON results, by hand (no charting dependency):
 * cycles/s per system (log scale), contended increments/s with lost updates, HTTP req/s with
 * lost increments, and the readers' waits.
 *
 *   tsx bench/chart.ts
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  describeMachine,
  displayPath,
  formatNumber,
  RESULTS_DIR,
  type ResultFile,
  type Row,
  runScenario,
} from './lib/harness.js';

const WIDTH = 960;
const LABEL_WIDTH = 300;
const BAR_AREA = 450;
const BAR_HEIGHT = 13;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

const COLORS: Record<'sessionlock' | 'peer' | 'limit', readonly [string, string]> & { lost: string } = {
  sessionlock: ['#2563eb', '#93c5fd'],
  peer: ['#ea580c', '#fdba74'],
  limit: ['#6b7280', '#d1d5db'],
  lost: '#dc2626',
};

interface Bar {
  value: number;
  color: string;
  text: string;
}

interface PanelRow {
  label: string;
  bars: Bar[];
  /** Text after the bars, e.g. lost updates. */
  note?: string;
  noteColor?: string;
}

interface Panel {
  title: string;
  subtitle: string;
  rows: PanelRow[];
  scale: 'log' | 'linear';
  legend: { color: string; text: string }[];
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function kindOf(system: string): 'sessionlock' | 'peer' | 'limit' {
  if (system.startsWith('limit')) return 'limit';
  return system.includes('sessionlock') ? 'sessionlock' : 'peer';
}

function drawPanel(panel: Panel, top: number): { svg: string; height: number } {
  const values = panel.rows.flatMap((row) => row.bars.map((bar) => bar.value)).filter((v) => v > 0);
  const max = Math.max(...values, 1);
  const min = Math.min(...values, max);
  const logMin = 10 ** Math.floor(Math.log10(min));
  const logMax = 10 ** Math.ceil(Math.log10(max));
  const x = (value: number) => {
    if (value <= 0) return 0;
    if (panel.scale === 'linear') return (value / max) * BAR_AREA;
    return ((Math.log10(value) - Math.log10(logMin)) / (Math.log10(logMax) - Math.log10(logMin))) * BAR_AREA;
  };
  const parts: string[] = [];
  let y = top;
  parts.push(`<text x="16" y="${y + 18}" font-size="16" font-weight="600" ${FONT}>${xmlEscape(panel.title)}</text>`);
  parts.push(`<text x="16" y="${y + 36}" font-size="12" fill="#4b5563" ${FONT}>${xmlEscape(panel.subtitle)}</text>`);
  let lx = 16;
  for (const item of panel.legend) {
    parts.push(`<rect x="${lx}" y="${y + 44}" width="10" height="10" fill="${item.color}"/>`);
    parts.push(
      `<text x="${lx + 14}" y="${y + 53}" font-size="11" fill="#374151" ${FONT}>${xmlEscape(item.text)}</text>`,
    );
    lx += 24 + item.text.length * 6;
  }
  y += panel.scale === 'log' ? 84 : 66;
  const chartTop = y;
  if (panel.scale === 'log') {
    for (let tick = logMin; tick <= logMax; tick *= 10) {
      const tx = LABEL_WIDTH + x(tick);
      parts.push(`<line x1="${tx}" y1="${chartTop - 4}" x2="${tx}" y2="CHART_BOTTOM" stroke="#e5e7eb"/>`);
      parts.push(
        `<text x="${tx}" y="${chartTop - 8}" font-size="10" fill="#6b7280" text-anchor="middle" ${FONT}>${formatNumber(tick)}</text>`,
      );
    }
  }
  for (const row of panel.rows) {
    const rowHeight = row.bars.length * (BAR_HEIGHT + 2) + 8;
    parts.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + rowHeight / 2 + 1}" font-size="12" text-anchor="end" dominant-baseline="middle" ${FONT}>${xmlEscape(row.label)}</text>`,
    );
    let by = y + 4;
    let right = 0;
    for (const bar of row.bars) {
      const width = Math.max(1, x(bar.value));
      right = Math.max(right, width);
      parts.push(
        `<rect x="${LABEL_WIDTH}" y="${by}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${bar.color}" rx="2"/>`,
      );
      parts.push(
        `<text x="${LABEL_WIDTH + width + 4}" y="${by + BAR_HEIGHT - 3}" font-size="10.5" fill="#111827" ${FONT}>${xmlEscape(bar.text)}</text>`,
      );
      by += BAR_HEIGHT + 2;
    }
    if (row.note) {
      parts.push(
        `<text x="${LABEL_WIDTH + BAR_AREA + 100}" y="${y + rowHeight / 2 + 1}" font-size="11.5" font-weight="600" fill="${row.noteColor ?? '#111827'}" dominant-baseline="middle" ${FONT}>${xmlEscape(row.note)}</text>`,
      );
    }
    y += rowHeight;
  }
  const svg = parts.join('\n').replaceAll('CHART_BOTTOM', String(y));
  return { svg, height: y - top + 20 };
}

function load(scenario: string): ResultFile | undefined {
  const file = path.join(RESULTS_DIR, `${scenario}.json`);
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as ResultFile;
}

function value(rows: Row[], system: string, metric: string): number | undefined {
  return rows.find((row) => row.system === system && row.metric === metric)?.value;
}

function systemsOf(rows: Row[]): string[] {
  return [...new Set(rows.map((row) => row.system))];
}

function cyclePanel(file: ResultFile): Panel {
  const rows = systemsOf(file.rows)
    .filter((system) => value(file.rows, system, 'cycles/s 1 at a time') !== undefined)
    .map((system) => {
      const [dark, light] = COLORS[kindOf(system)];
      const one = value(file.rows, system, 'cycles/s 1 at a time') ?? 0;
      const many = value(file.rows, system, 'cycles/s 32 in flight') ?? 0;
      return {
        label: system,
        bars: [
          { value: one, color: dark, text: `${formatNumber(one)}/s` },
          { value: many, color: light, text: `${formatNumber(many)}/s` },
        ],
      };
    });
  return {
    title: 'cycle: load a random session → change one key → save (per second, log scale)',
    subtitle:
      '1,000 stored sessions; dark: one at a time, light: 32 in flight; grey: the raw storage loop without any session logic',
    rows,
    scale: 'log',
    legend: [
      { color: COLORS.sessionlock[0], text: 'sessionlock' },
      { color: COLORS.peer[0], text: 'express-session stores' },
      { color: COLORS.limit[0], text: 'machine limit' },
    ],
  };
}

function lostPanel(
  file: ResultFile,
  title: string,
  subtitle: string,
  metric: string,
  unit: string,
  lostMetric: string,
): Panel {
  const rows = systemsOf(file.rows)
    .filter((system) => value(file.rows, system, metric) !== undefined)
    .map((system) => {
      const rate = value(file.rows, system, metric) ?? 0;
      const lost = value(file.rows, system, lostMetric) ?? 0;
      return {
        label: system,
        bars: [{ value: rate, color: COLORS[kindOf(system)][0], text: `${formatNumber(rate)}${unit}` }],
        note: `${lost.toFixed(lost === 0 ? 0 : 1)}% lost`,
        noteColor: lost > 0 ? COLORS.lost : '#15803d',
      };
    });
  return {
    title,
    subtitle,
    rows,
    scale: 'linear',
    legend: [
      { color: COLORS.sessionlock[0], text: 'sessionlock (locked)' },
      { color: COLORS.peer[0], text: 'express-session stores (no lock)' },
    ],
  };
}

function readersPanel(file: ResultFile): Panel {
  const rows = systemsOf(file.rows).map((system) => {
    const color = system.includes('whole-request') ? COLORS.peer : COLORS.sessionlock;
    const idle = value(file.rows, system, 'idle: all served ms') ?? 0;
    const writer = value(file.rows, system, 'writer: all served ms') ?? 0;
    return {
      label: system.replace('sessionlock ', ''),
      bars: [
        { value: idle, color: color[0], text: `${idle.toFixed(1)} ms` },
        { value: writer, color: color[1], text: `${writer.toFixed(1)} ms` },
      ],
    };
  });
  return {
    title: 'readers: 16 concurrent read-only requests of one session (ms until all are served)',
    subtitle:
      'dark: nothing holds the lock; light: a writer holds it for 20 ms. Each request works 5 ms after loading.',
    rows,
    scale: 'linear',
    legend: [
      { color: COLORS.sessionlock[0], text: 'load, then unlock (sessionlock)' },
      { color: COLORS.peer[0], text: 'lock for the whole request (PHP-style)' },
    ],
  };
}

async function main(): Promise<void> {
  const panels: Panel[] = [];
  const cycle = load('cycle');
  if (cycle) panels.push(cyclePanel(cycle));
  const contended = load('contended');
  if (contended) {
    panels.push(
      lostPanel(
        contended,
        'contended: 4 processes × 250 increments of one session',
        'increments per second; right: share of increments lost (sessionlock uses withLock(); the peers have no lock)',
        'increments/s',
        '/s',
        'lost %',
      ),
    );
  }
  const http = load('http');
  if (http) {
    panels.push(
      lostPanel(
        http,
        'http: 32 connections, one session, every request increments a counter',
        'requests per second; right: share of increments lost (sessionlock holds the session lock on every request)',
        'req/s',
        ' req/s',
        'lost %',
      ),
    );
  }
  const readers = load('readers');
  if (readers) panels.push(readersPanel(readers));
  if (panels.length === 0) {
    process.stderr.write(`no results in ${displayPath(RESULTS_DIR)}: run npm run bench first\n`);
    process.exitCode = 1;
    return;
  }
  const body: string[] = [];
  let y = 12;
  for (const panel of panels) {
    const drawn = drawPanel(panel, y);
    body.push(drawn.svg);
    y += drawn.height + 12;
  }
  const first = cycle ?? contended ?? http ?? readers;
  const lines = first
    ? [
        `${first.mode === 'quick' ? 'QUICK RUN (a smoke test, not numbers to quote). ' : ''}npm run bench — medians of interleaved rounds; tables with min–max in README.md`,
        describeMachine(first.machine),
      ]
    : [];
  for (const [i, line] of lines.entries()) {
    body.push(`<text x="16" y="${y + 4 + i * 14}" font-size="10.5" fill="#6b7280" ${FONT}>${xmlEscape(line)}</text>`);
  }
  const height = y + 4 + lines.length * 14;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">
<rect width="100%" height="100%" fill="#ffffff"/>
${body.join('\n')}
</svg>
`;
  const out = path.join(RESULTS_DIR, 'chart.svg');
  fs.writeFileSync(out, svg);
  process.stdout.write(`chart: ${displayPath(out)}\n`);
}

runScenario(import.meta, main);
