// Node 20 cannot run .ts: the test files are bundled with esbuild into `outdir` (one level
// below the root, like dist/, so the library finds build/ and dist/ the same way). Shared by
// scripts/test.mjs and scripts/valgrind.mjs.
export async function compileTests(entryPoints, outdir) {
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints,
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
    outExtension: { '.js': '.mjs' },
  });
}
