/**
 * A demo client process: sends `count` requests to `url` with one session cookie, `concurrency`
 * at a time over keep-alive connections, and reports progress to its parent.
 * @module
 */
import http from 'node:http';

interface ClientInput {
  url: string;
  cookie: string;
  count: number;
  concurrency: number;
}

const { url, cookie, count, concurrency } = JSON.parse(process.argv[2] as string) as ClientInput;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function request(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: { cookie } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

let sent = 0;
let failed = 0;
let done = 0;
async function worker(): Promise<void> {
  while (sent < count) {
    sent++;
    if ((await request()) !== 200) failed++;
    done++;
    if (done % 25 === 0) process.send?.({ done });
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
agent.destroy();
process.send?.({ done, failed, finished: true });
process.disconnect?.();
