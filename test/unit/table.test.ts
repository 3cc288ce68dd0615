import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADVANCED, AttemptTable, FRESH, type Tier } from '../../src/matcher/table';
import { Rng } from '../support/rng';

interface Row {
  door: number;
  family: 4 | 6;
  w: [number, number, number, number];
  stage: number;
  start: number;
  tier: Tier;
}

const keyOf = (door: number, family: number, w: readonly number[]): string => `${door}/${family}/${w.join('.')}`;

/** Walk a door's tier list from head to tail. */
function list(t: AttemptTable, door: number, tier: Tier): number[] {
  const out: number[] = [];
  for (let r = t.head(door, tier); r !== -1; r = t.next[r]!) out.push(r);
  return out;
}

test('AttemptTable agrees with a Map model through random inserts, promotions, removals and door remaps (tiny table: long probe runs, wrap-around)', () => {
  const rng = new Rng(7);
  const rnd = (): number => rng.next();
  const pick = (n: number): number => Math.floor(rnd() * n);
  for (const capacity of [1, 3, 8, 50]) {
    let doors = 3;
    const t = new AttemptTable(capacity, doors, 12345);
    // Model: key → row data, plus list order per (door, tier) as keys.
    const model = new Map<string, Row>();
    let order = new Map<string, string[]>();
    const lk = (d: number, tier: Tier) => `${d}:${tier}`;
    const listOf = (d: number, tier: Tier): string[] => {
      let l = order.get(lk(d, tier));
      if (!l) order.set(lk(d, tier), (l = []));
      return l;
    };
    // Few distinct addresses so that keys repeat and IPv4/IPv6 with equal last words coexist.
    const randomKey = (): { door: number; family: 4 | 6; w: [number, number, number, number] } => {
      const family = rnd() < 0.5 ? 4 : 6;
      const last = [0, 1, 0xffffffff, 0x0a000001][pick(4)];
      const w: [number, number, number, number] =
        family === 4 ? [0, 0, 0, last] : [pick(2) * 0x20010db8, 0, pick(2), last];
      return { door: pick(doors), family, w };
    };
    let now = 0;
    for (let step = 0; step < 20_000; step++) {
      now += 1;
      const k = randomKey();
      const key = keyOf(k.door, k.family, k.w);
      const r = t.find(k.door, k.family, ...k.w);
      const m = model.get(key);
      assert.equal(r !== -1, m !== undefined, `find(${key}) at step ${step}`);
      const op = rnd();
      if (r === -1) {
        if (t.size >= capacity) {
          // Evict the head of some non-empty list.
          const all = [...model.entries()];
          const [vk, v] = all[pick(all.length)];
          const head = t.head(v.door, v.tier);
          const hk = listOf(v.door, v.tier)[0];
          assert.ok(head !== -1);
          t.remove(head);
          model.delete(hk);
          listOf(v.door, v.tier).shift();
          void vk;
        }
        t.insert(k.door, k.family, ...k.w, now);
        model.set(key, { ...k, stage: 1, start: now, tier: FRESH });
        listOf(k.door, FRESH).push(key);
      } else if (op < 0.4 && m!.tier === FRESH) {
        t.promote(r);
        t.stage[r] = 2;
        m!.tier = ADVANCED;
        m!.stage = 2;
        const l = listOf(k.door, FRESH);
        l.splice(l.indexOf(key), 1);
        listOf(k.door, ADVANCED).push(key);
      } else if (op < 0.8) {
        t.remove(r);
        model.delete(key);
        const l = listOf(k.door, m!.tier);
        l.splice(l.indexOf(key), 1);
      } else if (op < 0.82) {
        // Reload: door 0 dropped, the others renumbered down; then one new door.
        const map = Array.from({ length: doors }, (_, d) => d - 1);
        t.remapDoors(map, doors);
        const next = new Map<string, string[]>();
        const rows = [...model.values()];
        model.clear();
        for (const row of rows) {
          if (row.door === 0) continue;
          row.door -= 1;
          model.set(keyOf(row.door, row.family, row.w), row);
        }
        for (let d = 1; d < doors; d++) {
          for (const tier of [FRESH, ADVANCED] as const) {
            next.set(
              lk(d - 1, tier),
              (order.get(lk(d, tier)) ?? []).map((x) => x.replace(/^\d+\//, `${d - 1}/`)),
            );
          }
        }
        order = next;
        doors = Math.max(1, doors);
      }
      // Invariants: size, list order and every row's fields.
      assert.equal(t.size, model.size, `size at step ${step}`);
      for (let d = 0; d < doors; d++) {
        for (const tier of [FRESH, ADVANCED] as const) {
          const rows = list(t, d, tier);
          assert.equal(t.length(d, tier), rows.length);
          assert.deepEqual(
            rows.map((x) =>
              keyOf(
                t.door[x],
                t.family[x],
                [0, 1, 2, 3].map((i) => t.word(x, i)),
              ),
            ),
            listOf(d, tier),
            `list door ${d} tier ${tier} at step ${step}`,
          );
          for (const x of rows) {
            const row = model.get(
              keyOf(
                d,
                t.family[x],
                [0, 1, 2, 3].map((i) => t.word(x, i)),
              ),
            )!;
            assert.equal(t.find(d, row.family, ...row.w), x, 'find returns the listed row');
            assert.equal(t.start[x], row.start);
            assert.equal(t.stage[x], row.stage);
          }
        }
      }
    }
  }
});

test('AttemptTable refuses to insert past its capacity instead of overwriting', () => {
  const t = new AttemptTable(2, 1, 1);
  t.insert(0, 4, 0, 0, 0, 1, 0);
  t.insert(0, 4, 0, 0, 0, 2, 0);
  assert.throws(() => t.insert(0, 4, 0, 0, 0, 3, 0), /full/);
});

test('AttemptTable: the last advancing packet is per row, survives a door remap, and a reused row does not inherit it', () => {
  const t = new AttemptTable(2, 2, 99);
  const a = t.insert(0, 4, 0, 0, 0, 0x0a000002, 0);
  assert.equal(t.repeatsLast(a, 0, 0, 0), false, 'a fresh row has no last packet');
  t.setLast(a, true, 41000, 0xfedcba98 | 0, 3333);
  assert.equal(
    t.repeatsLast(a, 41000, 0xfedcba98, 3333),
    true,
    'unsigned and signed spellings of the sequence number agree',
  );
  assert.equal(t.repeatsLast(a, 41000, 0xfedcba98 | 0, 3333), true);
  assert.equal(t.repeatsLast(a, 41001, 0xfedcba98, 3333), false, 'another source port');
  assert.equal(t.repeatsLast(a, 41000, 0xfedcba99, 3333), false, 'another sequence number');
  assert.equal(t.repeatsLast(a, 41000, 0xfedcba98, 4444), false, 'another port');
  const b = t.insert(1, 4, 0, 0, 0, 0x0a000003, 0);
  t.setLast(b, false, 41000, 0, 2222);
  assert.equal(t.repeatsLast(b, 41000, 0, 2222), false, 'a UDP packet is never repeated');
  t.promote(a);
  t.remapDoors([1, 0], 2);
  const a2 = t.find(1, 4, 0, 0, 0, 0x0a000002);
  assert.notEqual(a2, -1);
  assert.equal(t.repeatsLast(a2, 41000, 0xfedcba98, 3333), true, 'kept across remapDoors');
  t.remove(a2);
  const c = t.insert(0, 4, 0, 0, 0, 0x0a000004, 1);
  assert.equal(c, a2, 'the freed row is reused');
  assert.equal(t.repeatsLast(c, 41000, 0xfedcba98, 3333), false, 'and starts without a last packet');
});
