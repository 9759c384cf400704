// Bundles the extension with esbuild: src/extension.ts and its dependencies
// (vscode-languageclient) become one file, out/extension.js, so the .vsix carries no
// node_modules. `tsc --noEmit` type-checks first (npm run compile); esbuild only strips types.
import * as esbuild from 'esbuild';

await esbuild.build({
  entryPoints: ['src/extension.ts'],
  outfile: 'out/extension.js',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Provided by VS Code at run time.
  external: ['vscode'],
  sourcemap: false,
  minify: true,
  keepNames: true,
  logLevel: 'warning',
});
