/**
 * A server process of the `http` scenario. argv[2] is a {@link ServerSpec}; it listens on a
 * free port of 127.0.0.1 and sends `{ port }` to its parent. Routes:
 * - `GET /start`: a new session with `n = 0` (its cookie comes back in Set-Cookie);
 * - `GET /increment`: `n++` in the session (sessionlock: under the lock held for the request);
 * - `GET /count`: `{ n }`, the session's counter.
 * @module
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import session from 'express-session';
import { sessionlock } from 'sessionlock/express';
import { withSession } from 'sessionlock/http';
import {
  type Backend,
  createPeerStore,
  type Environment,
  type Peer,
  sessionlockOptions,
  TIMEOUT_SECONDS,
} from './systems.js';

export type ServerSpec =
  | { kind: 'node:http + sessionlock'; backend: Backend; env: Environment }
  | { kind: 'Express + sessionlock'; backend: Backend; env: Environment }
  | { kind: 'Express + express-session'; peer: Peer; env: Environment };

const SECRET = 'bench-secret-0123456789abcdef';
const spec = JSON.parse(process.argv[2] as string) as ServerSpec;

interface Counted {
  n?: number;
}

function respond(req: IncomingMessage, res: ServerResponse, data: Counted): void {
  if (req.url === '/start') {
    data.n = 0;
  } else if (req.url === '/increment') {
    data.n = (data.n ?? 0) + 1;
  }
  res.setHeader('content-type', 'application/json');
  res.end(req.url === '/count' ? JSON.stringify({ n: data.n ?? null }) : '{"ok":true}');
}

async function createServer(): Promise<http.Server> {
  if (spec.kind === 'node:http + sessionlock') {
    const options = { ...sessionlockOptions(spec.backend, spec.env), secret: SECRET, lock: true };
    const handler = withSession((req, res) => respond(req, res, req.session.data), options);
    return http.createServer(handler);
  }
  const app: Express = express();
  app.set('etag', false);
  if (spec.kind === 'Express + sessionlock') {
    app.use(sessionlock({ ...sessionlockOptions(spec.backend, spec.env), secret: SECRET, lock: true }));
    app.get(['/start', '/increment', '/count'], (req, res) => respond(req, res, req.session.data));
  } else {
    const { store } = await createPeerStore(spec.peer, spec.env);
    app.use(
      session({
        store,
        secret: SECRET,
        resave: false,
        saveUninitialized: false,
        cookie: { maxAge: TIMEOUT_SECONDS * 1000 },
      }) as unknown as express.RequestHandler,
    );
    app.get(['/start', '/increment', '/count'], (req, res) => respond(req, res, req.session as unknown as Counted));
  }
  return http.createServer(app);
}

const server = await createServer();
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
