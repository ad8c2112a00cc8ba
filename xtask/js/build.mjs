//! The JavaScript side of `cargo xtask build-guests` (run by xtask/src/js.rs with Node, cwd = the
//! repo root). Two commands:
//!
//!   node build.mjs component <npm-dir> <entry.js> <wit-dir> <world> <out.wasm> <features-to-disable,...>
//!     componentize-js's library call (its `jco componentize --wit` path fails to open folders
//!     here); the entry and every module it imports must lie under the current folder, which
//!     the build maps to `/` for the JS engine.
//!   node build.mjs types <npm-dir> <wit-dir> <out-dir>
//!     TypeScript declarations of every host interface, generated from the WIT by jco's
//!     bindgen. jco's `types` command cannot open a WIT folder here either (its WASI sandbox
//!     has no preopen for it), so the package's files are merged into one source text first.

import { readFileSync, readdirSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

const [command, npmDir, ...rest] = process.argv.slice(2);
const modules = join(npmDir ?? '', 'node_modules', '@bytecodealliance');

if (command === 'component') {
  const [entry, witDir, world, out, disable] = rest;
  const { componentize } = await import(pathToFileURL(join(modules, 'componentize-js', 'src', 'componentize.js')));
  const started = Date.now();
  const { component } = await componentize({
    sourcePath: entry,
    // Relative to the current folder: the splicer (a wasm component under preview2-shim) can
    // open paths below it, not absolute ones.
    witPath: relative(process.cwd(), witDir),
    worldName: world,
    // What the engine would otherwise import from WASI (stdio, clocks, random, HTTP): an
    // operation not granted `wasi` must import none of it.
    disableFeatures: disable ? disable.split(',').filter(Boolean) : [],
  });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, component);
  console.log(`componentize-js: ${out} (${(component.length / 1048576).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} else if (command === 'types') {
  const [witDir, outDir] = rest;
  const bindgen = await import(pathToFileURL(join(modules, 'jco-transpile', 'vendor', 'js-component-bindgen-component.js')));
  await bindgen.$init;
  let header = null;
  const bodies = [];
  for (const file of readdirSync(witDir).filter((f) => f.endsWith('.wit')).sort()) {
    const text = readFileSync(join(witDir, file), 'utf8');
    const pkg = text.match(/^\s*package\s+[^;]+;\s*$/m);
    if (pkg) {
      header = pkg[0].trim();
      bodies.push(text.replace(pkg[0], ''));
    } else {
      bodies.push(text);
    }
  }
  const files = bindgen.generateTypes('opshost', {
    wit: { tag: 'source', val: `${header}\n${bodies.join('\n')}` },
    world: 'operation',
    guest: true,
    features: { tag: 'list', val: [] },
    tlaCompat: false,
  });
  rmSync(outDir, { recursive: true, force: true });
  for (const [name, bytes] of files) {
    const path = join(outDir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, Buffer.concat([Buffer.from('//! Generated from wit/ by `cargo xtask build-guests` (jco): do not edit.\n'), Buffer.from(bytes)]));
  }
  console.log(`jco: ${files.length} type declaration files in ${outDir}`);
} else {
  console.error('usage: node build.mjs component|types ...');
  process.exit(2);
}
