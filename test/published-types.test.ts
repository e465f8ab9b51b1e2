import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from './fixtures/bin.js';

/** Every .d.ts file under `dir`. */
function declarations(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.d.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Does the installed package name its own type declarations? */
function shipsTypes(name: string): boolean {
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { types?: string; typings?: string };
  return Boolean(manifest.types ?? manifest.typings);
}

t.test('published types – every package the .d.ts files import comes with the package (its @types too), not only as a devDependency', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const files = declarations(path.join(REPO_ROOT, 'dist'));
  t.ok(files.length > 20, `${files.length} declaration files (npm test builds dist/ first)`);
  const imported = new Set<string>();
  for (const file of files) {
    for (const [, spec] of fs.readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*['"]([^'"]+)['"]/g)) {
      if (spec!.startsWith('.') || spec!.startsWith('node:')) continue;
      imported.add(spec!.startsWith('@') ? spec!.split('/').slice(0, 2).join('/') : spec!.split('/')[0]!);
    }
  }
  t.ok(imported.has('ssh2'), 'ssh2 is among them');
  for (const name of imported) {
    const types = `@types/${name.replace(/^@([^/]+)\//, '$1__')}`;
    t.ok(name in pkg.dependencies, `${name} is a dependency`);
    t.ok(shipsTypes(name) || types in pkg.dependencies, `${name}'s types come with it or with ${types} as a dependency`);
  }
});
