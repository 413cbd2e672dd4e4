// The built addon, for scripts (test runner, benchmarks) that need it before src/ is compiled.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// EVPOLL_ADDON=path: that build instead, as src/native.ts does.
const path = process.env.EVPOLL_ADDON || ['Release', 'Debug'].map((d) => join(root, 'build', d, 'evpoll.node')).find(existsSync);
if (!path) throw new Error('evpoll: the native addon is not built; run `npm run build`');
export const addon = createRequire(import.meta.url)(path);
