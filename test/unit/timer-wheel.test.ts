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
    wheel.add(a, t + 60); // moves
    await sleep(40);
    assert.deepEqual(fired, ['c']);
    await sleep(50);
    assert.deepEqual(fired.sort(), ['a', 'c']);
    let visited = 0;
    wheel.forEach(() => {
      visited++;
    });
    assert.equal(visited, 0);
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
