/** What the harness measures per scenario: the figures report.ts and chart.ts print. */

/** One measured window of a scenario. */
export interface Rep {
  rps: number;
  p50us: number;
  p99us: number;
  p999us: number;
  errors: number;
  cpuUsPerReq: number;
  serverCpuUsPerReq: number;
  stealPct: number;
  /** CPU of a Node load driver (WebSocket or NATS caller) per request; null for wrk. */
  loadCpuUsPerReq: number | null;
}
export interface Result {
  name: string;
  description: string;
  kind: string;
  bodyBytes: number;
  connections: number;
  reps: Rep[];
  remeasured?: number;
  rps: number;
  p50us: number;
  p99us: number;
  p999us: number;
  cpuUsPerReq: number;
  serverCpuUsPerReq: number;
  stealPct: number;
  loadCpuUsPerReq: number | null;
  peakRssMB: number;
  errors: number;
  ratios: Record<string, number>;
}
