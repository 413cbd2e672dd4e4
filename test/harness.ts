// Every test file takes `test` (or `suite`) from here instead of from uvu, for two things uvu
// does not do:
// - Progress for scripts/test.mjs's watchdog: each test writes `begin` and `pass`/`fail` lines
//   (time, file, test name) to the file named by EVPOLL_TEST_PROGRESS, synchronously, so that a
//   suite process killed for hanging still tells which test it was in.
// - Cleanup that a failing assertion cannot skip: whatever a test (or a helper it called)
//   handed to `onCleanup()` is released after the test, passed or failed, last first.
import * as uvu from 'uvu';
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

// Each test file is bundled with its own copy of this module: import.meta.url names the file.
const FILE = basename(fileURLToPath(import.meta.url));
// A file, not an inherited fd: children that tests spawn would inherit an fd (and hold the
// watchdog's pipe open after this process is gone).
const PROGRESS = process.env.EVPOLL_TEST_PROGRESS;

function progress(what: 'begin' | 'pass' | 'fail', name: string): void {
  if (!PROGRESS) return;
  try {
    appendFileSync(PROGRESS, `${what}\t${Date.now()}\t${FILE}\t${name.replace(/\s+/g, ' ')}\n`);
  } catch {
    // the watchdog is gone (its run was stopped): nothing to tell, and no reason to fail a test
  }
}

const cleanups: (() => unknown)[] = [];

/** Runs `release` after the current test, whether it passes or fails. */
export function onCleanup(release: () => unknown): void {
  cleanups.push(release);
}

/** Releases everything registered with onCleanup(), last first; throws the first failure. */
export async function cleanUp(): Promise<void> {
  let first: unknown;
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== undefined) throw first;
}

const SIM = process.env.EVPOLL_MECHANISM === 'sim';
/** Why the tests being registered need a kernel, while kernelOnly() says so. */
let kernelReason: string | undefined;

/**
 * The tests `register` makes (or, without it, every test this file makes from here on) test what
 * only a kernel has — signals, processes, worker_threads, real sockets, the process's own fd
 * limit — given as `reason`. On the 'sim' mechanism (evpoll/sim) each is skipped, by name, and
 * the skip is printed with the reason; everywhere else they run as usual.
 */
export function kernelOnly(reason: string, register?: () => void): void {
  const outer = kernelReason;
  kernelReason = reason;
  if (register === undefined) return;
  try {
    register();
  } finally {
    kernelReason = outer;
  }
}

function tracked(name: string, handler: uvu.Callback): uvu.Callback {
  return async (context) => {
    progress('begin', name);
    let failed = true;
    try {
      await handler(context);
      failed = false;
    } finally {
      try {
        await cleanUp();
      } catch (e) {
        // A test that passed fails on its cleanup; a failed test keeps its own error.
        if (!failed) {
          failed = true;
          throw e;
        }
      } finally {
        progress(failed ? 'fail' : 'pass', name);
      }
    }
  };
}

/** uvu's suite(), with each test tracked as above. */
export function suite(name?: string): uvu.Test {
  const base = uvu.suite(name);
  const wrapped = ((testName: string, handler: uvu.Callback) => {
    if (SIM && kernelReason !== undefined) {
      console.log(`sim: skipped ${FILE} "${name ? `${name} > ` : ''}${testName}": ${kernelReason}`);
      return base.skip(testName, handler);
    }
    return base(testName, tracked(testName, handler));
  }) as uvu.Test;
  Object.assign(wrapped, base);
  wrapped.only = (testName, handler) => base.only(testName, tracked(testName, handler));
  // Hooks registered while kernelOnly() is in effect serve its tests (a server started for them):
  // on 'sim' they are left out with them. uvu runs before/after hooks even when every test is skipped.
  const kernelHook = (register: (hook: uvu.Callback) => void) => (hook: uvu.Callback) => {
    if (!(SIM && kernelReason !== undefined)) register(hook);
  };
  wrapped.before = Object.assign(kernelHook(base.before), { each: kernelHook(base.before.each) });
  wrapped.after = Object.assign(kernelHook(base.after), { each: kernelHook(base.after.each) });
  return wrapped;
}

/** The default suite, as uvu's `test`. */
export const test = suite();
