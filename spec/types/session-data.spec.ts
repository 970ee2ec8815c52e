/**
 * The adapters' `SessionData` interface: an application that declares keys in it gets typed
 * session data in Express, Fastify, Koa and node:http handlers; one that does not keeps the
 * loose `Record<string, any>`. A module augmentation would reach every file of the
 * typecheck program, so each case compiles its own program (tsconfig.json's options, lib's
 * sources) with the TypeScript compiler API; a `@ts-expect-error` that expects nothing is an
 * error too, so "no diagnostics" checks both what compiles and what must not.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../', import.meta.url));
/** Where the sources compiled here pretend to be (nothing is written there). */
const virtualDir = path.join(root, 'spec/types/virtual');

/** The files on disk the programs share, parsed once. */
const parsed = new Map<string, ts.SourceFile | undefined>();

/** The diagnostics of a program of `files` (name → source, in {@link virtualDir}) and what they import. */
function diagnostics(files: Record<string, string>): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    },
  );
  assert.ok(config, 'tsconfig.json parses');
  const options = { ...config.options, noEmit: true, incremental: false };
  const sources = new Map(Object.entries(files).map(([name, text]) => [path.join(virtualDir, name), text]));
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => {
    const text = sources.get(name);
    if (text !== undefined) return ts.createSourceFile(name, text, language);
    if (!parsed.has(name)) parsed.set(name, getSourceFile(name, language, ...rest));
    return parsed.get(name);
  };
  host.fileExists = (name) => sources.has(name) || ts.sys.fileExists(name);
  host.readFile = (name) => sources.get(name) ?? ts.sys.readFile(name);
  const program = ts.createProgram([...sources.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (!diagnostic.file || diagnostic.start === undefined) return message;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return `${path.relative(root, diagnostic.file.fileName)}:${line + 1}: ${message}`;
  });
}

const IMPORTS = `
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { sessionlock as expressSessionlock } from '../../../lib/adapters/express.js';
import { sessionlock as fastifySessionlock } from '../../../lib/adapters/fastify.js';
import { withSession } from '../../../lib/adapters/http.js';
import { sessionlock as koaSessionlock } from '../../../lib/adapters/koa.js';
`;

describe('adapter session data types', () => {
  it('types req.session.data by the keys an application declares in SessionData', () => {
    const app = `${IMPORTS}
import type { SessionData } from '../../../lib/index.js';

declare module '../../../lib/index.js' {
  interface SessionData {
    user?: string;
    visits?: number;
  }
}

const app = express();
app.use(expressSessionlock({ dataDir: './sessions' }));
app.get('/', (req, res) => {
  req.session.data.visits = (req.session.data.visits ?? 0) + 1;
  const user: string | undefined = req.session.data.user;
  // @ts-expect-error user is a string
  const wrong: number = req.session.data.user;
  // @ts-expect-error an undeclared key
  req.session.data.usr = 'ann';
  res.json({ user, wrong });
});
const declared: SessionData = { user: 'ann' };

const fastify = Fastify();
void fastify.register(fastifySessionlock, {});
fastify.get('/', async (request) => {
  // @ts-expect-error visits is a number
  request.session.data.visits = 'many';
  return request.session.data.user;
});

const koa = new Koa();
koa.use(koaSessionlock({}));
koa.use((ctx) => {
  const visits: number | undefined = ctx.session.data.visits;
  // @ts-expect-error user is a string
  ctx.session.data.user = 42;
  ctx.body = { visits };
});

withSession((req, res) => {
  // @ts-expect-error user is a string
  const wrong: number = req.session.data.user;
  res.end(String(wrong));
});
`;
    assert.deepEqual(diagnostics({ 'augmented.ts': app }), []);
  });

  it('keeps session data loose (Record<string, any>) while SessionData is not augmented', () => {
    const app = `${IMPORTS}
const app = express();
app.use(expressSessionlock({}));
app.get('/', (req, res) => {
  req.session.data.anything = { nested: [1] };
  const n: number = req.session.data.visits;
  res.json(n);
});
const fastify = Fastify();
void fastify.register(fastifySessionlock, {});
fastify.get('/', async (request) => request.session.data.cart?.length);
const koa = new Koa();
koa.use(koaSessionlock({}));
koa.use((ctx) => {
  ctx.session.data.visits = (ctx.session.data.visits ?? 0) + 1;
});
withSession((req, res) => res.end(String(req.session.data.whatever)));
`;
    assert.deepEqual(diagnostics({ 'loose.ts': app }), []);
  });

  it("takes a custom backend's own options once an application declares them in SessionOptions", () => {
    const declared = `
import { Session } from '../../../lib/index.js';

declare module '../../../lib/index.js' {
  interface SessionOptions {
    flavour?: string;
  }
}

void new Session({ headers: {} }, { type: 'mine', flavour: 'vanilla' });
`;
    assert.deepEqual(diagnostics({ 'declared.ts': declared }), []);
    const undeclared = `
import { Session } from '../../../lib/index.js';
// @ts-expect-error not a Session option until declared
void new Session({ headers: {} }, { type: 'mine', flavour: 'vanilla' });
`;
    assert.deepEqual(diagnostics({ 'undeclared.ts': undeclared }), []);
  });

  it('types the session property as read-only, as replacing it throws (express-session and koa-session logouts)', () => {
    const app = `${IMPORTS}
const app = express();
app.use(expressSessionlock({}));
app.get('/', (req, res) => {
  // @ts-expect-error read-only (the same session's type: only the modifier refuses it)
  req.session = req.session;
  res.end();
});
const fastify = Fastify();
void fastify.register(fastifySessionlock, {});
fastify.get('/', async (request) => {
  // @ts-expect-error read-only (the same session's type: only the modifier refuses it)
  request.session = request.session;
});
const koa = new Koa();
koa.use(koaSessionlock({}));
koa.use((ctx) => {
  // @ts-expect-error read-only (the same session's type: only the modifier refuses it)
  ctx.session = ctx.session;
});
withSession((req, res) => {
  // @ts-expect-error read-only (the same session's type: only the modifier refuses it)
  req.session = req.session;
  res.end();
});
`;
    assert.deepEqual(diagnostics({ 'read-only.ts': app }), []);
  });
});
