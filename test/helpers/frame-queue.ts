/** Frames a test socket received, and waiting for the first one (past or future) that matches. */
export class FrameQueue<F> {
  readonly frames: F[] = [];
  private waiters: { pred: (f: F) => boolean; resolve: (f: F) => void }[] = [];

  push(f: F): void {
    this.frames.push(f);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(f)) return true;
      w.resolve(f);
      return false;
    });
  }

  next(pred: (f: F) => boolean, timeoutMs = 3000): Promise<F> {
    const found = this.frames.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for a frame')), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(t);
          resolve(f);
        },
      });
    });
  }
}
