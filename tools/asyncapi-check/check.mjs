// Parses every docs/asyncapi/*.json with the official AsyncAPI parser and fails on any
// error-severity diagnostic (warnings and hints are printed, not fatal).
// Usage: node check.mjs [directory]   (default: the repository's docs/asyncapi)
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const here = dirname(fileURLToPath(import.meta.url));
const directory = resolve(process.argv[2] ?? join(here, '..', '..', 'docs', 'asyncapi'));
const files = (await readdir(directory)).filter((name) => name.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no AsyncAPI documents in ${directory}`);
  process.exit(1);
}

const parser = new Parser();
const severity = ['error', 'warning', 'info', 'hint'];
let failed = 0;
for (const name of files) {
  const path = join(directory, name);
  const { document, diagnostics } = await parser.parse(await readFile(path, 'utf8'), {
    source: path,
  });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const where = d.path.join('/') || '<root>';
    console.log(`${name}: ${severity[d.severity]} ${d.code}: ${d.message} (at ${where})`);
  }
  if (errors.length > 0 || document === undefined) {
    failed += 1;
    console.log(`${name}: INVALID (${errors.length} errors)`);
  } else {
    console.log(`${name}: valid AsyncAPI ${document.version()}`);
  }
}
console.log(`${files.length - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
