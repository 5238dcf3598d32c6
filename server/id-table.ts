/**
 * Jobs by a numeric id that grows by one per job: a session's jobs at its worker (wire ids)
 * and its own requests (request ids). A ring indexed by the id's low bits finds almost every
 * entry in one step; an entry still held when a newer id lands on its slot moves to a small
 * overflow map, so ids that do not grow (a hostile caller's) stay correct, only slower.
 * Taking an entry empties its slot at once.
 *
 * Why not a Map: under load a Map of in-flight jobs is rebuilt every few hundred inserts, and
 * a rebuilt table that had reached the old generation keeps every job it listed reachable
 * until the next full collection. With many sessions connected that promoted about a quarter
 * of all jobs and ran a mark-compact every 1.5 s (bench/RESULTS.md, the idle-state cost).
 */
const MIN_RING = 64;
const MAX_RING = 1 << 16;

export class IdTable<T> {
  private ids = new Float64Array(MIN_RING);
  private values: (T | undefined)[] = new Array<T | undefined>(MIN_RING).fill(undefined);
  private mask = MIN_RING - 1;
  private overflow: Map<number, T> | null = null;
  size = 0;

  get(id: number): T | undefined {
    const i = id & this.mask;
    if (this.values[i] !== undefined && this.ids[i] === id) return this.values[i];
    return this.overflow?.get(id);
  }

  /** Adds `value` under `id`, which must not be held already. */
  add(id: number, value: T): void {
    if (this.size >= this.values.length >> 1 && this.values.length < MAX_RING) this.grow();
    const i = id & this.mask;
    const held = this.values[i];
    if (held !== undefined) (this.overflow ??= new Map()).set(this.ids[i]!, held);
    this.ids[i] = id;
    this.values[i] = value;
    this.size++;
  }

  /** Removes and returns the value held under `id`, if any. */
  take(id: number): T | undefined {
    const i = id & this.mask;
    const v = this.values[i];
    if (v !== undefined && this.ids[i] === id) {
      this.values[i] = undefined;
      this.size--;
      return v;
    }
    const o = this.overflow?.get(id);
    if (o !== undefined) {
      this.overflow!.delete(id);
      this.size--;
    }
    return o;
  }

  /** Every held value, leaving the table empty. */
  drain(): T[] {
    const all: T[] = [];
    for (const v of this.values) if (v !== undefined) all.push(v);
    if (this.overflow) for (const v of this.overflow.values()) all.push(v);
    this.reset(MIN_RING);
    return all;
  }

  private reset(length: number): void {
    this.ids = new Float64Array(length);
    this.values = new Array<T | undefined>(length).fill(undefined);
    this.mask = length - 1;
    this.overflow = null;
    this.size = 0;
  }

  private grow(): void {
    const ids = this.ids;
    const values = this.values;
    const moved = this.overflow;
    this.reset(values.length * 2);
    for (let i = 0; i < values.length; i++) if (values[i] !== undefined) this.add(ids[i]!, values[i]!);
    if (moved) for (const [id, v] of moved) this.add(id, v);
  }
}
