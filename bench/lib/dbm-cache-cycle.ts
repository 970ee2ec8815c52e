/**
 * A child of the `dbm-costs` scenario: the `cycle` scenario's load → change → save through
 * the Session API on sessions the parent stored, with the dbm backend's cache of open files
 * set to a given capacity (the cache is one per process, hence a child per capacity).
 * argv: the scratch directory the parent seeded (`Environment.dir`), a JSON file of the
 * session ids, the capacity, milliseconds to measure. Every session is cycled once untimed
 * first, so the cache holds as many files as it will. Prints `{ perSecond }`.
 * @module
 */
import fs from 'node:fs';
import { throughput } from './harness.js';
import { randomPicks, sessionlockSystem } from './systems.js';

const [dir, idsFile, capacityArgument, durationArgument] = process.argv.slice(2) as [string, string, string, string];
const ids = JSON.parse(fs.readFileSync(idsFile, 'utf8')) as string[];
const system = sessionlockSystem('dbm', { dir }, { maxOpenFiles: Number(capacityArgument) });

for (const id of ids) await system.cycle(id);
const picks = randomPicks(1 << 16, ids.length);
const { perSecond } = await throughput((i) => system.cycle(ids[picks[i & 0xffff] as number] as string), {
  duration: Number(durationArgument),
  concurrency: 1,
});
process.stdout.write(JSON.stringify({ perSecond }));
