import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { now, type Timed, TimerWheel } from '../../server/timer-wheel.js';

class Item implements Timed {
  due = 0;
  tPrev: Timed | null = null;
  tNext: Timed | null = null;
  tSlot = -1;
  firedAt = -1;
  constructor(readonly name: string) {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function armed(wheel: TimerWheel<Item>): number {
  let n = 0;
  wheel.forEach(() => {
    n++;
  });
  return n;
}

describe('timer wheel', () => {
  it('fires every item at or after its due time, never early, and stops when empty', async () => {
    const fired: Item[] = [];
    const wheel = new TimerWheel<Item>((it) => {
      it.firedAt = now();
      fired.push(it);
    }, 5);
    const start = now();
    const items = [30, 10, 50, 10, 0, -20].map((d, i) => {
      const it = new Item(`i${i}`);
      wheel.add(it, start + d);
      return it;
    });
    assert.equal(wheel.size, 6);
    await sleep(120);
    assert.equal(fired.length, 6);
    for (const it of items) {
      assert.ok(it.firedAt >= it.due, `${it.name} fired early`);
      assert.equal(it.tSlot, -1);
    }
    assert.equal(wheel.size, 0);
    wheel.stop();
  });

  it('removes items in O(1) from anywhere without firing them, and re-arms on add', async () => {
    const fired: string[] = [];
    const wheel = new TimerWheel<Item>((it) => fired.push(it.name), 5);
    const t = now();
    const a = new Item('a');
    const b = new Item('b');
    const c = new Item('c');
    wheel.add(a, t + 20);
    wheel.add(b, t + 20);
    wheel.add(c, t + 20);
    wheel.remove(b);
    wheel.remove(b); // twice is harmless
    wheel.add(a, t + 300); // moves
    // Waits for events rather than sleeping fixed times: a loaded machine delays timers.
    while (!fired.includes('c')) await sleep(5);
    if (now() < t + 290) assert.deepEqual(fired, ['c'], 'a moved later, b removed');
    while (!fired.includes('a')) await sleep(5);
    assert.ok(now() >= t + 300, 'a fires no earlier than its new time');
    await sleep(20);
    assert.deepEqual(fired.sort(), ['a', 'c']);
    assert.equal(armed(wheel), 0);
    wheel.stop();
  });

  it('fires an item armed in a slot that emptied before its turn, and forgets emptied slots once nothing is armed', async () => {
    const fired: string[] = [];
    const wheel = new TimerWheel<Item>((it) => fired.push(it.name), 5);
    const t = now();
    const a = new Item('a');
    const far = new Item('far');
    wheel.add(a, t + 20);
    wheel.add(far, t + 10_000);
    wheel.remove(a);
    wheel.remove(far); // both slots emptied ahead of the sweep; the wheel stops at its next tick
    await sleep(20);
    const b = new Item('b');
    const c = new Item('c');
    wheel.add(b, t + 20); // the first emptied slot, or a later one if the sweep has passed it
    wheel.add(c, t + 10_000);
    wheel.remove(c);
    wheel.add(c, t + 40);
    while (fired.length < 2) await sleep(5);
    assert.deepEqual(fired, ['b', 'c']);
    assert.ok(now() >= t + 40, 'c fires no earlier than its time');
    assert.equal(wheel.size, 0);
    assert.equal(armed(wheel), 0);
    wheel.stop();
  });

  it('lets a handler arm new items while firing', async () => {
    const fired: string[] = [];
    const wheel: TimerWheel<Item> = new TimerWheel<Item>((it) => {
      fired.push(it.name);
      if (it.name === 'first') wheel.add(new Item('second'), now() + 10);
    }, 5);
    wheel.add(new Item('first'), now() + 5);
    await sleep(80);
    assert.deepEqual(fired, ['first', 'second']);
    wheel.stop();
  });
});

describe('timer wheel re-arming', () => {
  it('fires an item a handler arms with a due time already past', async () => {
    const fired: string[] = [];
    const wheel: TimerWheel<Item> = new TimerWheel<Item>((it) => {
      fired.push(it.name);
      if (it.name === 'a') wheel.add(new Item('b'), now() - 50);
    }, 5);
    wheel.add(new Item('a'), now() + 5);
    await sleep(60);
    assert.deepEqual(fired, ['a', 'b']);
    assert.equal(wheel.size, 0);
    wheel.stop();
  });
});

/**
 * Four items share a slot; the first to fire re-arms (`later` > 0) or disarms (`later` = 0) the
 * one at `victim` (a position among the other three), as the dispatcher's lease expiry does when
 * it hands queued jobs to a consumer that answers one at once. Resolves with what fired.
 */
async function touchOther(victim: number, later: number) {
  const fired: Item[] = [];
  const items = ['a', 'b', 'c', 'd'].map((n) => new Item(n));
  let touched: Item | null = null;
  const wheel: TimerWheel<Item> = new TimerWheel<Item>((it) => {
    it.firedAt = now();
    fired.push(it);
    if (touched) return;
    touched = items.filter((x) => x !== it)[victim]!;
    if (later > 0) wheel.add(touched, now() + later);
    else wheel.remove(touched);
  }, 5);
  const t = now();
  for (const it of items) wheel.add(it, t + 10);
  const othersFired = await within(1000, () => touched !== null && items.every((x) => x === touched || fired.includes(x)));
  // A moved item fires at its new time; a disarmed one must stay quiet well past its old one.
  if (later > 0) await within(1000, () => fired.length === 4);
  else await sleep(40);
  wheel.stop();
  return { othersFired, fired, touched: touched as Item | null, size: wheel.size };
}

/** Polls `pred` until it holds or `ms` pass; says which. */
async function within(ms: number, pred: () => boolean): Promise<boolean> {
  const end = now() + ms;
  while (!pred()) {
    if (now() > end) return false;
    await sleep(2);
  }
  return true;
}

describe('timer wheel handlers that touch another item of the slot being fired', () => {
  it('fires the rest of the slot, and the item a handler moved at its new time, never early', async () => {
    for (const r of await Promise.all([0, 1, 2].map((v) => touchOther(v, 40)))) {
      const moved = r.touched!;
      assert.ok(r.othersFired, 'every other item of the slot fired');
      assert.equal(r.fired.length, 4);
      assert.equal(r.fired.filter((x) => x === moved).length, 1, `${moved.name} fired once`);
      assert.ok(moved.firedAt >= moved.due, `${moved.name} fired early`);
      assert.equal(r.size, 0);
    }
  });

  it('fires the rest of the slot and never the item a handler disarmed', async () => {
    for (const r of await Promise.all([0, 1, 2].map((v) => touchOther(v, 0)))) {
      assert.ok(r.othersFired, 'every other item of the slot fired');
      assert.equal(r.fired.length, 3);
      assert.ok(!r.fired.includes(r.touched!), `${r.touched!.name} fired though disarmed`);
      assert.equal(r.size, 0);
    }
  });
});
