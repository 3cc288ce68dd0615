/**
 * Issue 20: no import circle inside src/capture/ or src/state/. The wire
 * protocol's types live in capture/protocol.ts, which imports nothing of its
 * room; pipeline.ts, spa-gate.ts and validate.ts depend on it, never on each
 * other through it. Reads the sources (type-only imports count: a circle of
 * types is still a circle for the reader).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const SRC = resolve(__dirname, '..', '..', '..', 'src');

/** The same-directory modules each file of `room` imports. */
function graph(room: string): Map<string, string[]> {
  const dir = join(SRC, room);
  const g = new Map<string, string[]>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    const deps = [...text.matchAll(/\bfrom\s+'\.\/([\w-]+)'/g)].map((m) => `${m[1]}.ts`);
    g.set(f, deps);
  }
  return g;
}

/** One circle, as a path a → b → … → a, or undefined. */
function findCircle(g: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of g.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
}

for (const room of ['capture', 'state']) {
  test(`no import circle inside src/${room}/`, () => {
    const c = findCircle(graph(room));
    assert.equal(c, undefined, `circle: ${c?.join(' → ')}`);
  });
}

test('capture/protocol.ts imports nothing of its room', () => {
  assert.deepEqual(graph('capture').get('protocol.ts'), []);
});

test('the circle finder finds a circle', () => {
  const g = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
  ]);
  assert.deepEqual(findCircle(g), ['a.ts', 'b.ts', 'c.ts', 'a.ts']);
});
