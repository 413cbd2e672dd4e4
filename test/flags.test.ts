// The flag bits are written three times: the JS API's EV and OP_* (src/flags.ts), the core's
// EV_*, REV_* and OP_* (assembly/constants.ts) and the backends' EVP_* (native/backend.h). Each
// side reads the others' numbers without translating them, so they must agree. This reads the
// two source files (the numbers as the compilers see them) and compares. It is about the
// sources, not a backend, so it runs in one suite only.
import { test } from './harness.js';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import * as flags from '../src/flags.js';
import { MECHANISM, MODE } from './helpers.js';

type Bits = Record<string, number>;

/** `export const EV_READ: i32 = 2;` → { EV: { READ: 2 }, REV: …, OP: … } */
function assemblyConstants(source: string): { EV: Bits; REV: Bits; OP: Bits } {
  const found = { EV: {} as Bits, REV: {} as Bits, OP: {} as Bits };
  for (const m of source.matchAll(/^export const (EV|REV|OP)_([A-Z]+)\s*:\s*i32\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*;/gm)) {
    found[m[1] as 'EV' | 'REV' | 'OP'][m[2]] = Number(m[3]);
  }
  return found;
}

/** `#define EVP_READ 2`, `#define EVP_REV_HUP 64` → { EV: { READ: 2 }, REV: { HUP: 64 } } */
function nativeConstants(source: string): { EV: Bits; REV: Bits } {
  const found = { EV: {} as Bits, REV: {} as Bits };
  for (const m of source.matchAll(/^[ \t]*#[ \t]*define[ \t]+EVP_(REV_)?([A-Z]+)[ \t]+\(?(0x[0-9a-fA-F]+|\d+)\)?/gm)) {
    found[m[1] ? 'REV' : 'EV'][m[2]] = Number(m[3]);
  }
  return found;
}

/** The JS side's OP_* constants, by name without the prefix. */
const jsOps: Bits = Object.fromEntries(
  Object.entries(flags).filter(([name, v]) => name.startsWith('OP_') && typeof v === 'number').map(([name, v]) => [name.slice(3), v as number]),
);

/** Every disagreement between the three sides, given the two files' text; empty when they agree. */
function disagreements(assemblySource: string, nativeSource: string): string[] {
  const asm = assemblyConstants(assemblySource);
  const c = nativeConstants(nativeSource);
  const EV: Bits = flags.EV;
  const problems: string[] = [];
  const nothing = (what: string, bits: Bits) => Object.keys(bits).length === 0 && problems.push(`no ${what} found (moved, or no longer a literal?)`);
  nothing('EV_* in assembly/constants.ts', asm.EV);
  nothing('REV_* in assembly/constants.ts', asm.REV);
  nothing('OP_* in assembly/constants.ts', asm.OP);
  nothing('EVP_* in native/backend.h', c.EV);
  nothing('EVP_REV_* in native/backend.h', c.REV);
  nothing('OP_* in src/flags.ts', jsOps);

  // The core knows every flag of the API; the backends those they are handed (a subset).
  for (const [name, bit] of Object.entries(EV)) {
    if (!(name in asm.EV)) problems.push(`EV.${name} (${bit}) has no EV_${name} in assembly/constants.ts`);
  }
  for (const [name, bit] of Object.entries(asm.EV)) {
    if (EV[name] !== bit) problems.push(`EV_${name} is ${bit} in assembly/constants.ts, EV.${name} is ${EV[name]} in src/flags.ts`);
  }
  for (const [name, bit] of Object.entries(c.EV)) {
    if (EV[name] !== bit) problems.push(`EVP_${name} is ${bit} in native/backend.h, EV.${name} is ${EV[name]} in src/flags.ts`);
  }
  // The revents bits: written by the backends, read by the core.
  for (const name of new Set([...Object.keys(asm.REV), ...Object.keys(c.REV)])) {
    if (asm.REV[name] !== c.REV[name]) problems.push(`REV_${name} is ${asm.REV[name]} in assembly/constants.ts, EVP_REV_${name} is ${c.REV[name]} in native/backend.h`);
  }
  // The readiness an fd event can ask for comes back in revents under the same name and value:
  // the core passes `revents & (READ|WRITE|PRI)` on as `which` without translating it.
  for (const name of ['READ', 'WRITE', 'PRI']) {
    for (const [where, rev] of [['assembly/constants.ts REV_', asm.REV], ['native/backend.h EVP_REV_', c.REV]] as const) {
      if (rev[name] !== EV[name]) problems.push(`${where}${name} is ${rev[name]}, EV.${name} is ${EV[name]}`);
    }
  }
  // The registration changes: asked by the core, carried out by the JS side.
  for (const name of new Set([...Object.keys(asm.OP), ...Object.keys(jsOps)])) {
    if (asm.OP[name] !== jsOps[name]) problems.push(`OP_${name} is ${asm.OP[name]} in assembly/constants.ts, ${jsOps[name]} in src/flags.ts`);
  }
  return problems;
}

if (MECHANISM === 'epoll' && MODE === 'run') {
  const assemblySource = readFileSync(join(packageRoot, 'assembly/constants.ts'), 'utf8');
  const nativeSource = readFileSync(join(packageRoot, 'native/backend.h'), 'utf8');

  test('EV, REV and OP values agree across src/flags.ts, assembly/constants.ts and native/backend.h', () => {
    assert.equal(disagreements(assemblySource, nativeSource), []);
  });

  test('the comparison is not vacuous: one constant changed in either file, or a file without any, is a disagreement', () => {
    const mutations: [string, string, string][] = []; // [what, assembly text, native text]
    for (const m of assemblySource.matchAll(/^(export const (?:EV|REV|OP)_[A-Z]+\s*:\s*i32\s*=\s*)(\d+)/gm)) {
      const changed = assemblySource.slice(0, m.index) + m[1] + (Number(m[2]) + 256) + assemblySource.slice(m.index! + m[0].length);
      mutations.push([m[0], changed, nativeSource]);
    }
    for (const m of nativeSource.matchAll(/^([ \t]*#[ \t]*define[ \t]+EVP_(?:REV_)?[A-Z]+[ \t]+\(?)(\d+)/gm)) {
      const changed = nativeSource.slice(0, m.index) + m[1] + (Number(m[2]) + 256) + nativeSource.slice(m.index! + m[0].length);
      mutations.push([m[0], assemblySource, changed]);
    }
    const counted = { asm: assemblyConstants(assemblySource), c: nativeConstants(nativeSource) };
    const expected = [counted.asm.EV, counted.asm.REV, counted.asm.OP, counted.c.EV, counted.c.REV].reduce((n, bits) => n + Object.keys(bits).length, 0);
    assert.is(mutations.length, expected, 'every constant parsed is mutated once');
    for (const [what, asm, c] of mutations) assert.ok(disagreements(asm, c).length > 0, `changing "${what}" went unnoticed`);
    assert.ok(disagreements('', nativeSource).length > 0, 'an assembly file without constants');
    assert.ok(disagreements(assemblySource, '').length > 0, 'a header without constants');
  });

  test.run();
}
