// evpoll/sim's types for TypeScript's node10 resolution, which does not read package.json's
// "exports" (node16, nodenext and bundler take them from there).
export * from './dist/types/sim.cjs';
