// `npm run test:valgrind`: a short suite under valgrind's memcheck, once per mechanism and
// driving mode, against a -g build of the addon (.sanitize/valgrind/, EVPOLL_ADDON).
//
// Clean means: no memcheck error with a frame in evpoll's addon in its stack, and no
// definitely or indirectly lost block allocated from it. Node and V8 are not built for
// valgrind: their JIT, their GC and their exit leave reports of their own (uninitialised
// values in generated code, blocks never freed at exit). Rather than suppressing those by
// pattern (fragile across Node versions), every report is classified by its stack: a report
// with no frame in evpoll.node is counted as Node's and only summarised.
//
// Usage: node scripts/valgrind.mjs [--mechanism NAME]... [--mode run|start]... [file filter]
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildAddonVariant, buildDefault } from './addon-variant.mjs';
import { bin, root } from './bin.mjs';
import { compileTests } from './compile-tests.mjs';

// Files whose tests exercise the native code without timing-sensitive child processes
// (valgrind runs Node some 20-50 times slower).
const SHORT_SUITE = ['core', 'fd-events', 'stale', 'errors', 'run', 'integrated', 'net', 'hostile'];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { mechanism: { type: 'string', multiple: true }, mode: { type: 'string', multiple: true } },
});
const files = (positionals.length ? positionals : SHORT_SUITE).map((f) => f.replace(/\.test\.ts$/, ''));
const mechanisms = values.mechanism ?? ['epoll', 'poll', 'select'];
const modes = values.mode ?? ['run', 'start'];

const started = performance.now();
buildDefault();
const addon = buildAddonVariant('valgrind');

// The tests, compiled as scripts/test.mjs does.
const out = join(root, '.sanitize', 'valgrind-tests');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await compileTests(files.map((f) => join(root, 'test', `${f}.test.ts`)), out);

/** The <error> records of a valgrind XML file: kind, what, and the stack's frames. */
function parseErrors(xml) {
  const text = (s, tag) => new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(s)?.[1] ?? '';
  return [...xml.matchAll(/<error>([\s\S]*?)<\/error>/g)].map(([, e]) => ({
    kind: text(e, 'kind'),
    what: text(e, 'what') || text(text(e, 'xwhat'), 'text'),
    frames: [...e.matchAll(/<frame>([\s\S]*?)<\/frame>/g)].map(([, f]) => ({
      obj: text(f, 'obj'),
      fn: text(f, 'fn'),
      where: text(f, 'file') ? `${text(f, 'file')}:${text(f, 'line')}` : '',
    })),
  }));
}

const ours = (e) => e.frames.some((f) => f.obj === addon || f.where.includes('native/'));

function run(mechanism, mode) {
  const xml = join(root, '.sanitize', `valgrind-${mechanism}-${mode}.xml`);
  const argv = [
    '--tool=memcheck',
    '--xml=yes',
    `--xml-file=${xml}`,
    '--leak-check=full',
    '--show-leak-kinds=definite,indirect',
    '--errors-for-leak-kinds=definite,indirect',
    '--num-callers=40',
    '--trace-children=no',
    process.execPath,
    bin('uvu', 'bin.js'),
    out,
    '\\.mjs$',
  ];
  // EVPOLL_VALGRIND: tests leave out what valgrind cannot host (dozens of WebAssembly
  // memories at once: V8 reserves 10 GB of address space for each).
  const env = { ...process.env, EVPOLL_ADDON: addon, EVPOLL_MECHANISM: mechanism, EVPOLL_MODE: mode, EVPOLL_VALGRIND: '1', NO_COLOR: '1' };
  delete env.FORCE_COLOR;
  return new Promise((resolve) => {
    const t0 = performance.now();
    let output = '';
    const child = spawn('valgrind', argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('close', (code) => {
      const num = (label) => Number(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm').exec(output)?.[1] ?? NaN);
      const report = readFileSync(xml, 'utf8');
      const fatal = /<fatal_signal>[\s\S]*?<signame>(\w+)<\/signame>/.exec(report)?.[1];
      resolve({ mechanism, mode, code, output, fatal, total: num('Total'), passed: num('Passed'), errors: parseErrors(report), seconds: (performance.now() - t0) / 1000 });
    });
  });
}

// The verdict is memcheck's: a report in evpoll's frames, or a run that crashed, fails it.
// Tests that fail an assertion are listed but do not: a few time things in milliseconds, and
// valgrind slows everything down some 20-50 times.
let dirty = 0;
let crashed = 0;
let slow = 0;
console.log(`valgrind: ${addon}; files: ${files.join(', ')}`);
for (const mechanism of mechanisms) {
  for (const mode of modes) {
    const r = await run(mechanism, mode);
    const mine = r.errors.filter(ours);
    const theirs = r.errors.length - mine.length;
    const died = r.fatal !== undefined || Number.isNaN(r.total);
    const tests = died ? `CRASHED${r.fatal ? ` (${r.fatal})` : ''}` : `tests ${r.passed}/${r.total}`;
    console.log(`== ${mechanism}/${mode}: ${tests}, ${r.seconds.toFixed(0)} s; memcheck: ${mine.length} in evpoll's frames, ${theirs} in Node's/V8's only`);
    for (const e of mine.slice(0, 5)) {
      console.log(`   ${e.kind}: ${e.what}`);
      for (const f of e.frames.slice(0, 12)) console.log(`     ${f.fn || '???'} ${f.where || f.obj}`);
    }
    if (died || r.passed !== r.total) {
      console.log(r.output.split('\n').filter((l) => /FAIL|Error/.test(l)).slice(0, 10).map((l) => `   ${l.trim()}`).join('\n'));
    }
    dirty += mine.length;
    if (died) crashed++;
    else if (r.passed !== r.total) slow++;
  }
}
console.log(`valgrind: ${dirty} error(s) in evpoll's frames, ${crashed} crashed run(s), ${slow} run(s) with a failed (timing) test; ${((performance.now() - started) / 60000).toFixed(1)} min`);
process.exit(dirty === 0 && crashed === 0 ? 0 : 1);
