// `npm run test:asan`: the native addon built with -fsanitize=address,undefined (binding.gyp's
// EVPOLL_SANITIZE=1, a -g build in .sanitize/asan/), then the whole conformance suite on
// every mechanism and in both driving modes against it. Arguments go to scripts/test.mjs
// (`npm run test:asan -- --mechanism poll timers`).
//
// Node itself is not built with ASan, so the runtimes are preloaded (LD_PRELOAD) into every
// node process of the run, children included. ASan options:
// - detect_leaks=0: LeakSanitizer would report Node's and V8's own allocations at exit.
// - handle_segv=0, allow_user_segv_handler=1: V8 turns WebAssembly out-of-bounds accesses into
//   traps through its own SIGSEGV handler; ASan must leave SIGSEGV to it.
// - abort_on_error=1 (and UBSan's halt_on_error=1): the first report kills the process, so
//   the test that triggered it fails and the report is in the output.
// A report anywhere in the output fails the run even if every test passed.
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildAddonVariant, buildDefault } from './addon-variant.mjs';
import { root } from './bin.mjs';

const started = performance.now();
buildDefault(); // the suite's own build step then finds nothing to do
const addon = buildAddonVariant('asan', { EVPOLL_SANITIZE: '1' });
const runtime = (lib) => execFileSync('gcc', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim();
const env = {
  ...process.env,
  EVPOLL_ADDON: addon,
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so')].join(' '),
  ASAN_OPTIONS: 'detect_leaks=0:handle_segv=0:allow_user_segv_handler=1:abort_on_error=1:print_summary=1',
  UBSAN_OPTIONS: 'halt_on_error=1:abort_on_error=1:print_stacktrace=1',
};
const built = performance.now();

// Preflight: the sanitized addon is the one loaded, with the ASan runtime in the process.
const check = spawnSync(process.execPath, ['--input-type=module', '-e', `
  import { readFileSync } from 'node:fs';
  const { addon } = await import(${JSON.stringify(pathToFileURL(join(root, 'scripts/load-addon.mjs')).href)});
  const maps = readFileSync('/proc/self/maps', 'utf8');
  if (!maps.includes(process.env.EVPOLL_ADDON)) throw new Error('the sanitized addon is not loaded');
  if (!/libasan/.test(maps)) throw new Error('the ASan runtime is not loaded');
  console.log('mechanisms: ' + addon.mechanisms().map((m) => m.name).join(', '));
`], { env, encoding: 'utf8' });
if (check.status !== 0) {
  console.error(`asan: preflight failed\n${check.stdout}${check.stderr}`);
  process.exit(1);
}
console.log(`asan: ${addon} (${check.stdout.trim()})`);

let output = '';
const child = spawn(process.execPath, [join(root, 'scripts/test.mjs'), '--no-typecheck', ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: ['ignore', 'pipe', 'pipe'],
});
child.stdout.on('data', (d) => { output += d; process.stdout.write(d); });
child.stderr.on('data', (d) => { output += d; process.stderr.write(d); });
const code = await new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? signal)));

const reports = output.match(/ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer/g) ?? [];
const tests = /^tests: .*$/m.exec(output)?.[0] ?? 'tests: no summary';
const minutes = (ms) => `${(ms / 60000).toFixed(1)} min`;
console.log(`\nasan: ${tests}; ${reports.length} sanitizer report line(s); build ${minutes(built - started)}, suite ${minutes(performance.now() - built)}`);
process.exit(code === 0 && reports.length === 0 ? 0 : 1);
