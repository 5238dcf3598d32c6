/**
 * Outgoing frames are collected per socket and written once per event-loop turn inside one
 * `cork`, so a burst of jobs costs one syscall per socket instead of one per frame.
 */

/** Something with frames to write. */
export interface Flushable {
  flushQueued: boolean;
  flush(): void;
}

const dirty: Flushable[] = [];
let scheduled = false;

/** Schedules `target.flush()` for the end of this loop turn, once. */
export function scheduleFlush(target: Flushable): void {
  if (target.flushQueued) return;
  target.flushQueued = true;
  dirty.push(target);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}

function flushAll(): void {
  scheduled = false;
  // Flushing can schedule more (a flush that frees credit); those run next turn.
  const batch = dirty.splice(0, dirty.length);
  for (const t of batch) {
    t.flushQueued = false;
    t.flush();
  }
}
