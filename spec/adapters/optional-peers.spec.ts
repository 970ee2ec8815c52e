/** express, fastify and koa are optional peers: no sessionlock module may load them at run time. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ADAPTERS = ['http', 'express', 'fastify', 'koa'];

/** Runs `imports` in a fresh process whose module resolution refuses express, fastify and koa. */
function importWithoutFrameworks(imports: string[]) {
  const hooks = `export async function resolve(specifier, context, next) {
    if (/^(express|fastify|koa)(\\/|$)/.test(specifier)) throw new Error('loaded ' + specifier);
    return next(specifier, context);
  }`;
  const script = `import { register } from 'node:module';
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));
    for (const specifier of ${JSON.stringify(imports)}) await import(specifier);`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  });
}

describe('optional peer dependencies', () => {
  it('loads neither express, fastify nor koa when sessionlock or any adapter is imported', () => {
    const modules = ['lib/index.ts', ...ADAPTERS.map((name) => `lib/adapters/${name}.ts`)];
    const result = importWithoutFrameworks(modules.map((file) => pathToFileURL(`${root}${file}`).href));
    assert.equal(result.status, 0, result.stderr);
    const control = importWithoutFrameworks(['koa']);
    assert.notEqual(control.status, 0, 'the check refuses a framework');
    assert.match(control.stderr, /loaded koa/);
  });

  it('declares the frameworks as optional peers and exports each adapter', () => {
    const pkg = JSON.parse(fs.readFileSync(`${root}package.json`, 'utf8'));
    for (const name of ['express', 'fastify', 'koa']) {
      assert.ok(pkg.peerDependencies[name], name);
      assert.deepEqual(pkg.peerDependenciesMeta[name], { optional: true });
    }
    for (const name of ADAPTERS) {
      assert.deepEqual(pkg.exports[`./${name}`], {
        types: `./dist/adapters/${name}.d.ts`,
        default: `./dist/adapters/${name}.js`,
      });
      assert.ok(fs.existsSync(`${root}lib/adapters/${name}.ts`));
    }
  });
});
