/**
 * A child of the `dbm-costs` scenario: the anonymous memory (Linux, /proc/self/smaps_rollup)
 * per file that the dbm backend's cache of open files holds. argv: a scratch directory, the
 * cache's capacity, how many files to use one after another (more than the capacity: the
 * cache evicts, as in a long-running server with more sessions than open files).
 * Prints `{ kbPerOpenFile }`: the growth over the whole run divided by the files left open
 * (`null` where /proc is missing).
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { LmdbEnvironments } from '../../lib/namespace/lmdb-environments.js';

const [dir, capacityArgument, filesArgument] = process.argv.slice(2) as [string, string, string];
const capacity = Number(capacityArgument);
const files = Number(filesArgument);
const VALUE = 'v'.repeat(500);

function anonymousKB(): number | undefined {
  try {
    const line = fs
      .readFileSync('/proc/self/smaps_rollup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Anonymous:'));
    return line ? Number(line.split(/\s+/)[1]) : undefined;
  } catch {
    return undefined;
  }
}

function use(environments: LmdbEnvironments, name: string): void {
  const handle = environments.acquire(path.join(dir, `${name}.mdb`), { create: true, namespace: name });
  handle?.db.putSync('a', VALUE);
  if (handle) environments.release(handle);
}

const environments = new LmdbEnvironments(capacity);
const before = anonymousKB();
for (let i = 0; i < files; i++) use(environments, `s${i}`);
const after = anonymousKB();
const kbPerOpenFile = before === undefined || after === undefined ? null : (after - before) / environments.size;
await environments.closeAll();
process.stdout.write(JSON.stringify({ kbPerOpenFile }));
