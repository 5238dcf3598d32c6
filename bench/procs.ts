/** Processes for the bench: started pinned to a core, read back from their JSON output, stopped by PID. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running)
    if (p.pid)
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
});

export const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

export interface BenchProc {
  pid: number;
  child: ChildProcess;
  /** First JSON line matching `pred`. */
  line(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  output(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts `cmd args` on `cpu` (when taskset exists). */
export function start(cpu: number | null, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): BenchProc {
  const [c, a] = cpu !== null && hasTaskset ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
  const child = spawn(c, a as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  running.add(child);
  const lines: Record<string, unknown>[] = [];
  let text = '';
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    text += `${l}\n`;
    try {
      const v = JSON.parse(l) as Record<string, unknown>;
      lines.push(v);
      for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!.pred(v)) waiters.splice(i, 1)[0]!.resolve(v);
    } catch {
      /* not JSON */
    }
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  const exited = new Promise<void>((r) =>
    child.on('exit', () => {
      running.delete(child);
      r();
    }),
  );
  return {
    pid: child.pid!,
    child,
    line(pred, timeoutMs = 15_000) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')}: no expected output; stderr: ${err}`)), timeoutMs);
        waiters.push({
          pred,
          resolve: (v) => {
            clearTimeout(t);
            resolve(v);
          },
        });
      });
    },
    async output() {
      // 'exit' can come before the last of stdout is read: 'close' comes after the streams end.
      await closed;
      return text;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      }
    },
  };
}

export const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim() || 100);

/** CPU time (user + system) of a process in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

/** Peak resident memory of a process in bytes. */
export function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
