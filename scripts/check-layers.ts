/**
 * `node scripts/check-layers.ts [ROOT]`: the folder-level import graph of the
 * product (manifest/, kiosk/, agent/, update/; tests excluded), checked for
 *
 * - a cycle between folders (scan -> audit -> scan), and
 * - an import between the programs (kiosk/, agent/, update/), or from
 *   manifest/ into any of them.
 *
 * ESLint's layer rules (scripts/layers.js) say which folder may import which;
 * this says the graph they leave has no cycle. Prints the graph's problems and
 * exits 1 when there are any, 0 otherwise. `npm test` runs it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

const SOURCE_ROOTS = ['manifest', 'kiosk', 'agent', 'update'];
/** The programs: none imports another; all may import manifest/, which imports none of them. */
const PROGRAMS = ['kiosk', 'agent', 'update'];
const IMPORT = /^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/gm;

/**
 * The folder a file belongs to for the graph: manifest, agent, or
 * kiosk/<first folder>. The kiosk's top files (main.ts, config.ts,
 * rules-files.ts) are the command line's layer with kiosk/cli/.
 */
export function folderOf(file: string): string {
  const parts = file.split('/');
  if (parts[0] === 'kiosk') return parts.length > 2 ? `kiosk/${parts[1]}` : 'kiosk/cli';
  return parts[0]!;
}

function sourceFiles(root: string, dir: string, out: string[]): void {
  for (const name of readdirSync(join(root, dir))) {
    const path = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(join(root, path)).isDirectory()) sourceFiles(root, path, out);
    else if (/\.(ts|js)$/.test(name) && !/\.test\.ts$/.test(name)) out.push(path.split(sep).join('/'));
  }
}

export interface LayerProblem {
  readonly kind: 'cycle' | 'between-programs';
  readonly detail: string;
}

/** The folder graph of the product under `root`, and what is wrong with it. */
export function checkLayers(root: string): { edges: Map<string, Set<string>>; problems: LayerProblem[] } {
  const files: string[] = [];
  for (const top of SOURCE_ROOTS) {
    try {
      if (statSync(join(root, top)).isDirectory()) sourceFiles(root, top, files);
    } catch {
      // a tree without this program (tests build small ones)
    }
  }
  const edges = new Map<string, Set<string>>();
  const problems: LayerProblem[] = [];
  const examples = new Map<string, string>();
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2]!;
      const target = relative(root, normalize(join(root, dirname(file), spec))).split(sep).join('/');
      const from = folderOf(file);
      const to = folderOf(target);
      if (from === to) continue;
      const fromProgram = from.split('/')[0]!;
      const toProgram = to.split('/')[0]!;
      if (PROGRAMS.includes(toProgram) && fromProgram !== toProgram && (PROGRAMS.includes(fromProgram) || fromProgram === 'manifest')) {
        problems.push({ kind: 'between-programs', detail: `${file} imports ${target}: the programs meet only through manifest/` });
      }
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from)!.add(to);
      if (!examples.has(`${from}>${to}`)) examples.set(`${from}>${to}`, `${file} -> ${target}`);
    }
  }
  // Cycles: a depth-first search that reports each back edge's loop once.
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const seen = new Set<string>();
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of [...(edges.get(node) ?? [])].sort()) {
      if (state.get(next) === 'open') {
        const loop = [...stack.slice(stack.indexOf(next)), next];
        const key = [...loop].sort().join(',');
        if (!seen.has(key)) {
          seen.add(key);
          const via = loop.slice(0, -1).map((f, i) => examples.get(`${f}>${loop[i + 1]!}`)).join('; ');
          problems.push({ kind: 'cycle', detail: `${loop.join(' -> ')} (${via})` });
        }
      } else if (!state.has(next)) {
        visit(next);
      }
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...edges.keys()].sort()) if (!state.has(node)) visit(node);
  return { edges, problems };
}

if (import.meta.main) {
  const root = process.argv[2] ?? join(import.meta.dirname, '..');
  const { edges, problems } = checkLayers(root);
  if (problems.length === 0) {
    const count = [...edges.values()].reduce((n, s) => n + s.size, 0);
    console.log(`layers: ${edges.size} folders, ${count} folder-to-folder imports, no cycle, no import between the programs`);
  } else {
    for (const p of problems) console.error(`layers: ${p.kind}: ${p.detail}`);
    process.exitCode = 1;
  }
}
