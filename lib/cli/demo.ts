/**
 * `sessionlock demo`: runs the demo module (lib/demo/run.ts), loaded only when asked for,
 * with the remaining arguments.
 * @module
 */
import { CliError, type Command } from './args.js';

/** Where the demo lives, relative to this file in lib/ and in dist/ alike. */
const DEMO_MODULE = new URL('../demo/run.js', import.meta.url).href;

interface DemoModule {
  runDemo(args: string[], out?: NodeJS.WritableStream): Promise<number>;
}

export const demo: Command = {
  name: 'demo',
  synopsis: 'demo [options]',
  summary: 'run the concurrency demo: locked vs lock-free increments (sessionlock demo --help)',
  help: 'Usage: sessionlock demo [options]   (sessionlock demo --help lists the options)',
  raw: true,
  async run({ args }) {
    let module: Partial<DemoModule>;
    try {
      module = (await import(DEMO_MODULE)) as Partial<DemoModule>;
    } catch (error) {
      throw new CliError(`the demo is not available in this installation: ${(error as Error).message}`);
    }
    if (typeof module.runDemo !== 'function') {
      throw new CliError('the demo is not available in this installation: its module has no runDemo()');
    }
    return module.runDemo(args);
  },
};
