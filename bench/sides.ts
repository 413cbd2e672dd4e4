// Sides as long-lived processes, so that the orchestrator can alternate between them run by
// run without paying a set-up and a JIT warm-up each time. The protocol (the C anchors speak it
// too, see bench/c/chain-common.h): the side sets up, warms up, prints "ready"; then each stdin
// line "run K" is answered by one stdout line of K numbers; "quit" (or EOF) ends it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export class SideProcess {
  #child: ChildProcessWithoutNullStreams;
  #lines: AsyncIterator<string>;
  #stderr = '';

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (this.#stderr = (this.#stderr + s).slice(-4000)));
    this.#lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  static async start(cmd: string, args: string[]): Promise<SideProcess> {
    const side = new SideProcess(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
    const first = await side.#next();
    if (first !== 'ready') throw side.#failure(`expected "ready", got ${JSON.stringify(first)}`);
    return side;
  }

  async #next(): Promise<string | undefined> {
    const r = await this.#lines.next();
    return r.done ? undefined : r.value;
  }

  #failure(what: string): Error {
    // The error's own line (Node prints the stack after it), else the last lines.
    const lines = this.#stderr.trim().split('\n').filter((l) => l.trim() !== '');
    const error = lines.find((l) => /^\w*Error\b|^\w+: /.test(l.trim()));
    const err = error ?? lines.slice(-3).join(' | ');
    return new Error(`${what}${err ? `: ${err}` : ''}`);
  }

  /** K timed runs: their figures. */
  async run(k: number): Promise<number[]> {
    this.#child.stdin.write(`run ${k}\n`);
    const line = await this.#next();
    if (line === undefined) {
      await new Promise((r) => setTimeout(r, 50)); // let stderr arrive
      throw this.#failure('the side exited');
    }
    const figures = line.trim().split(/\s+/).map(Number);
    if (figures.length !== k || figures.some((x) => !Number.isFinite(x))) throw this.#failure(`bad answer ${JSON.stringify(line)}`);
    return figures;
  }

  async quit(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((r) => this.#child.once('exit', r));
    this.#child.stdin.end('quit\n');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The child's half: warm up, say "ready", answer "run K" lines; then clean up. */
export async function serveSide(runOnce: () => Promise<number> | number, warmupRuns: number, close: () => void): Promise<void> {
  for (let i = 0; i < warmupRuns; i++) await runOnce();
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    const m = /^run (\d+)$/.exec(line.trim());
    if (!m) break;
    const figures: string[] = [];
    for (let i = 0; i < Number(m[1]); i++) figures.push((await runOnce()).toFixed(4));
    process.stdout.write(figures.join(' ') + '\n');
  }
  close();
  process.exit(0);
}
