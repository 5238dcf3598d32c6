/**
 * One timer for many deadlines: a hashed wheel of slots `granularityMs` wide, each an intrusive
 * list, so arming and disarming a deadline is O(1) and allocates nothing, and one interval runs
 * only while something is armed (it stops at the first tick that finds nothing). A deadline
 * fires up to one slot late, never early.
 */
import { performance } from 'node:perf_hooks';

/** Something with a due time that sits in the wheel. */
export interface Timed {
  due: number;
  tPrev: Timed | null;
  tNext: Timed | null;
  /** Slot index while armed, -1 otherwise. */
  tSlot: number;
}

/** The hub's monotonic clock in milliseconds. */
export function now(): number {
  return performance.now();
}

export class TimerWheel<T extends Timed> {
  /**
   * Each slot's first item, null for a slot that emptied before its turn. An emptied slot keeps
   * its entry until the sweep passes it: under load the wheel empties and refills every round
   * trip, and a Map that loses and regains its last entry that often allocates a new table each
   * time, which V8 links to the table it replaces, so once one of them is promoted all the later
   * ones (and the items they held) are promoted too, until a Mark-Compact.
   */
  private readonly slots = new Map<number, T | null>();
  private timer: NodeJS.Timeout | null = null;
  private lastSlot = 0;
  size = 0;

  constructor(
    private readonly onDue: (item: T) => void,
    private readonly granularityMs = 10,
  ) {}

  /** Arms `item` to fire at `due` (monotonic ms); re-arming moves it. */
  add(item: T, due: number): void {
    if (item.tSlot !== -1) this.remove(item);
    item.due = due;
    if (this.timer === null) this.start();
    // A due time the sweep has already passed goes into the next slot it will visit.
    const slot = Math.max(Math.ceil(due / this.granularityMs), this.lastSlot + 1);
    const head = this.slots.get(slot);
    item.tSlot = slot;
    if (head) {
      // Second place in an existing slot: no map write on the hot path.
      item.tPrev = head;
      item.tNext = head.tNext;
      if (head.tNext) head.tNext.tPrev = item;
      head.tNext = item;
    } else {
      item.tPrev = item.tNext = null;
      this.slots.set(slot, item);
    }
    this.size++;
  }

  remove(item: T): void {
    if (item.tSlot === -1) return;
    if (item.tPrev) item.tPrev.tNext = item.tNext;
    else this.slots.set(item.tSlot, item.tNext as T | null);
    if (item.tNext) item.tNext.tPrev = item.tPrev;
    item.tPrev = item.tNext = null;
    item.tSlot = -1;
    // The interval stops at the next tick that finds the wheel empty, not here: under load the
    // wheel empties and refills every round trip, and re-arming an interval each time costs.
    this.size--;
  }

  /** Visits every armed item. */
  forEach(fn: (item: T) => void): void {
    for (const head of this.slots.values()) {
      for (let item: T | null = head; item; item = item.tNext as T | null) fn(item);
    }
  }

  /** Stops the interval; armed items stay armed but will not fire until `add` restarts it. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private start(): void {
    this.lastSlot = Math.floor(now() / this.granularityMs);
    this.timer = setInterval(() => this.tick(), this.granularityMs);
  }

  private tick(): void {
    const current = Math.floor(now() / this.granularityMs);
    for (let s = this.lastSlot + 1; s <= current && this.size > 0; s++) {
      // Mark the slot visited first, so a handler that arms a past-due item puts it in a
      // later slot rather than one this sweep has already emptied.
      this.lastSlot = s;
      let item = this.slots.get(s);
      while (item) {
        this.remove(item);
        this.onDue(item);
        // The handler may have disarmed or moved other items of this slot (it cannot add to it):
        // read the slot's head again rather than follow a link it may have cut.
        item = this.slots.get(s);
      }
      this.slots.delete(s);
    }
    this.lastSlot = current;
    if (this.size === 0) {
      // Nothing is armed: what is left are emptied slots, some of them past the sweep.
      if (this.slots.size > 0) this.slots.clear();
      this.stop();
    }
  }
}
