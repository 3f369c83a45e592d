import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Driver objects that reach data past the pipeline: no public export may accept or return one. */
const DRIVER_HANDLES = new Set(['Db', 'Collection', 'MongoClient']);

/** Every `.d.ts` entry point of the built packages (pnpm test builds them first). */
function entryPoints(): string[] {
  return ['core', 'tenancy', 'cache', 'search', 'testing'].flatMap((name) =>
    readdirSync(`${root}packages/${name}/dist`)
      // Hashed files are chunks shared by entry points, reachable only through what those re-export.
      .filter((file) => file.endsWith('.d.ts') && !/-[A-Za-z0-9_-]{8}\.d\.ts$/.test(file))
      .map((file) => `${root}packages/${name}/dist/${file}`),
  );
}

/**
 * For each export of `file`, the driver handles it mentions: its declarations are walked, and so,
 * transitively, are the declarations of our own types they reference (a handle nested in an
 * options object or a returned interface counts).
 */
function driverHandlesByExport(file: string): Map<string, string[]> {
  const program = ts.createProgram([file], { strict: true, skipLibCheck: true, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`cannot read ${file}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`${file} is not a module`);
  const isOurs = (declaration: ts.Declaration) => !declaration.getSourceFile().fileName.includes('node_modules');
  const fromDriver = (declaration: ts.Declaration) => /node_modules\/(\.pnpm\/)?(mongodb|bson)/.test(declaration.getSourceFile().fileName);

  const found = new Map<string, string[]>();
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const handles = new Set<string>();
    const visited = new Set<ts.Symbol>();
    const visitSymbol = (symbol: ts.Symbol | undefined) => {
      if (!symbol) return;
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      if (visited.has(target)) return;
      visited.add(target);
      for (const declaration of target.declarations ?? []) {
        if (fromDriver(declaration)) {
          if (DRIVER_HANDLES.has(target.name)) handles.add(target.name);
        } else if (isOurs(declaration)) {
          visitNode(declaration);
        }
      }
    };
    const visitNode = (node: ts.Node) => {
      if (ts.isTypeReferenceNode(node)) visitSymbol(checker.getSymbolAtLocation(node.typeName));
      else if (ts.isExpressionWithTypeArguments(node)) visitSymbol(checker.getSymbolAtLocation(node.expression));
      else if (ts.isTypeQueryNode(node)) visitSymbol(checker.getSymbolAtLocation(node.exprName));
      else if (ts.isImportTypeNode(node) && node.qualifier) visitSymbol(checker.getSymbolAtLocation(node.qualifier));
      // Private members (#field) are not reachable by users.
      if (ts.isPropertyDeclaration(node) && ts.isPrivateIdentifier(node.name)) return;
      ts.forEachChild(node, visitNode);
    };
    visitSymbol(exported);
    if (handles.size > 0) found.set(exported.name, [...handles].sort());
  }
  return found;
}

describe('the public surface', () => {
  const files = entryPoints();

  it('finds the entry points of every package', () => {
    expect(files.some((file) => file.endsWith('core/dist/index.d.ts'))).toBe(true);
    expect(files.some((file) => file.endsWith('core/dist/unsafe.d.ts'))).toBe(true);
  });

  it('has no export outside @caas-db/core/unsafe that accepts or returns a driver Db, Collection or MongoClient', () => {
    const leaks: string[] = [];
    for (const file of files.filter((name) => !name.endsWith('/unsafe.d.ts'))) {
      for (const [name, handles] of driverHandlesByExport(file)) leaks.push(`${file.slice(root.length)}: ${name} -> ${handles.join(', ')}`);
    }
    expect(leaks).toEqual([]);
  });

  it('finds the driver handles where they are meant to be (so the check above can fail)', () => {
    const unsafe = driverHandlesByExport(`${root}packages/core/dist/unsafe.d.ts`);
    expect(unsafe.get('unsafeDriver')).toEqual(['MongoClient']);
    expect(unsafe.get('unsafeDatabase')).toEqual(['Db']);
  });
});
