/**
 * The jobs a session holds, by wire id. Wire ids grow by one per job, so a ring indexed by the
 * id's low bits finds almost every job in one step; a job still held when a newer id lands on
 * its slot moves to a small overflow map. Deleting empties the slot at once.
 *
 * Why not a Map: under load a Map of in-flight jobs is rebuilt every few hundred inserts, and
 * a rebuilt table that had reached the old generation keeps every job it listed reachable
 * until the next full collection. With many sessions connected that promoted about a quarter
 * of all jobs and ran a mark-compact every 1.5 s (bench/RESULTS.md, the idle-state cost).
 */
export interface WireHeld {
  wireId: number;
}

const MIN_RING = 64;
const MAX_RING = 1 << 16;

export class WireTable<T extends WireHeld> {
  private ring: (T | undefined)[] = new Array<T | undefined>(MIN_RING).fill(undefined);
  private mask = MIN_RING - 1;
  private overflow: Map<number, T> | null = null;
  size = 0;

  get(id: number): T | undefined {
    const j = this.ring[id & this.mask];
    if (j !== undefined && j.wireId === id) return j;
    return this.overflow?.get(id);
  }

  /** Adds `job` under its current wire id (ids are never reused within a session). */
  add(job: T): void {
    if (this.size >= this.ring.length >> 1 && this.ring.length < MAX_RING) this.grow();
    const i = job.wireId & this.mask;
    const held = this.ring[i];
    if (held !== undefined) (this.overflow ??= new Map()).set(held.wireId, held);
    this.ring[i] = job;
    this.size++;
  }

  /** Removes and returns the job with wire id `id`, if held. */
  take(id: number): T | undefined {
    const i = id & this.mask;
    const j = this.ring[i];
    if (j !== undefined && j.wireId === id) {
      this.ring[i] = undefined;
      this.size--;
      return j;
    }
    const o = this.overflow?.get(id);
    if (o !== undefined) {
      this.overflow!.delete(id);
      this.size--;
    }
    return o;
  }

  /** Every held job, and an empty table. */
  drain(): T[] {
    const all: T[] = [];
    for (const j of this.ring) if (j !== undefined) all.push(j);
    if (this.overflow) for (const j of this.overflow.values()) all.push(j);
    this.ring = new Array<T | undefined>(MIN_RING).fill(undefined);
    this.mask = MIN_RING - 1;
    this.overflow = null;
    this.size = 0;
    return all;
  }

  private grow(): void {
    const old = this.ring;
    this.ring = new Array<T | undefined>(old.length * 2).fill(undefined);
    this.mask = this.ring.length - 1;
    const moved = this.overflow;
    this.overflow = null;
    this.size = 0;
    for (const j of old) if (j !== undefined) this.add(j);
    if (moved) for (const j of moved.values()) this.add(j);
  }
}
