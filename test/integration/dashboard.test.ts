/**
 * The dashboard: its page and JSON over HTTP (with auth on and off), then the page itself in a
 * headless Chromium against real hub and worker processes: a service, its worker and a rising
 * request count appear, a second hub shows as a peer, focus survives the updates, and with auth
 * on the page asks for a monitor token. Leaves a screenshot in test/artifacts/.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Locator, Page } from 'playwright-core';
import { hashToken } from '../../server/auth/auth.js';
import { LATENCY_BOUNDS_MS } from '../../server/request-tally.js';
import { converged, startMesh } from '../helpers/mesh.js';
import { type HubProc, listening, Proc, post, sleep, startHub, startWorker, stopAll, waitUntil } from '../helpers/processes.js';
import { exchange } from '../helpers/raw-http.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/test/integration → the source tree's test/artifacts (ignored by git). */
const ARTIFACTS = path.resolve(here, '../../../test/artifacts');
const CHROMIUM = '/usr/bin/chromium';
const noChromium = existsSync(CHROMIUM) ? false : `chromium is not installed at ${CHROMIUM} (Debian package "chromium"; .ci/run installs it)`;

const T = {
  ops: 'ops-token-0123456789abcdefghijklmn',
  worker: 'worker-token-0123456789abcdefghij',
  caller: 'caller-token-0123456789abcdefghij',
};

function authFile(): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'astromesh-dash-')), 'auth.json');
  const tokens = [
    { name: 'ops', sha256: hashToken(T.ops), monitor: true },
    { name: 'worker', sha256: hashToken(T.worker), serve: ['>'] },
    { name: 'caller', sha256: hashToken(T.caller), request: ['>'] },
  ];
  writeFileSync(file, JSON.stringify({ tokens }));
  return file;
}

/** The text of the element `l` finds; empty when there is none within `timeout` ms. */
async function text(l: Locator, timeout = 5000): Promise<string> {
  return (await l.textContent({ timeout }).catch(() => null)) ?? '';
}

/** Requests to `url` one after another until stopped. */
function load(url: string, headers: Record<string, string> = {}): { stop: () => Promise<void> } {
  let stopped = false;
  const running = (async () => {
    let i = 0;
    while (!stopped) {
      await post(url.replace('{i}', String(i++ % 97)), '{"n":1}', headers).catch(() => undefined);
      await sleep(15);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

describe('dashboard over HTTP', { timeout: 60_000 }, () => {
  after(stopAll);

  it('serves the page and its files from the package, and counts each service with a latency histogram', async () => {
    const hub = await startHub();
    await startWorker({ url: hub.url, services: [{ name: 'echo' }, { name: 'boom', mode: 'fail' }] });
    const page = await fetch(`${hub.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await page.text(), /dashboard\.js/);
    for (const file of ['dashboard.js', 'dashboard.css', 'uPlot.iife.min.js', 'uPlot.min.css']) {
      const r = await fetch(`${hub.url}/dashboard/${file}`);
      assert.equal(r.status, 200, file);
      assert.ok((await r.arrayBuffer()).byteLength > 100, file);
    }
    assert.equal((await fetch(`${hub.url}/dashboard/../package.json`)).status, 404);
    assert.equal((await fetch(`${hub.url}/dashboard/index.html`)).status, 404);

    for (let i = 0; i < 7; i++) assert.equal((await post(`${hub.url}/service/echo`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await post(`${hub.url}/service/boom`)).status, 500);
    // A name nobody serves gets no counters of its own.
    assert.equal((await post(`${hub.url}/service/nobody`)).status, 503);
    const r = await fetch(`${hub.url}/dashboard.json`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    // biome-ignore lint/suspicious/noExplicitAny: the test reads the JSON field by field
    const d: any = await r.json();
    assert.deepEqual(d.latencyBuckets.boundsMs, LATENCY_BOUNDS_MS);
    // biome-ignore lint/suspicious/noExplicitAny: as above
    const svc = (name: string) => d.services.find((s: any) => s.name === name);
    assert.deepEqual([svc('echo').requests, svc('echo').errors], [7, 0]);
    assert.deepEqual([svc('boom').requests, svc('boom').errors], [3, 3]);
    assert.equal(svc('nobody'), undefined);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    assert.equal(sum(svc('echo').latency), 7);
    assert.equal(svc('echo').latency.length, LATENCY_BOUNDS_MS.length + 1);
    assert.equal(d.workers.length, 1);
  });

  it('with auth on, serves the page to anyone and its JSON only with the monitor right', async () => {
    const hub = await startHub({ 'auth-file': authFile() });
    assert.equal((await fetch(`${hub.url}/`)).status, 200);
    assert.equal((await fetch(`${hub.url}/dashboard/dashboard.js`)).status, 200);
    assert.equal((await fetch(`${hub.url}/dashboard.json`)).status, 401);
    assert.equal((await fetch(`${hub.url}/dashboard.json`, { headers: { authorization: `Bearer ${T.caller}` } })).status, 403);
    assert.equal((await fetch(`${hub.url}/dashboard.json`, { headers: { authorization: `Bearer ${T.ops}` } })).status, 200);
  });
});

describe('dashboard files missing from the installation', { timeout: 30_000 }, () => {
  after(stopAll);

  it('a HEAD for one is a 404 without a body: the connection carries the next answer intact', async () => {
    // The compiled hub and client, with the package's modules but without server/dashboard/.
    const root = mkdtempSync(path.join(tmpdir(), 'astromesh-nodash-'));
    const dist = path.resolve(here, '../..');
    for (const dir of ['server', 'client']) cpSync(path.join(dist, dir), path.join(root, 'dist', dir), { recursive: true });
    symlinkSync(path.resolve(dist, '../node_modules'), path.join(root, 'node_modules'));
    writeFileSync(path.join(root, 'package.json'), JSON.stringify({ type: 'module' }));
    const hub = new Proc(spawn(process.execPath, [path.join(root, 'dist/server/cli.js'), 'hub', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const port = (await listening(hub, 'hub')).port as number;
    const get = await exchange(port, ['GET / HTTP/1.1\r\nHost: x\r\n\r\n']);
    assert.equal(get.responses[0]?.status, 404, 'the page is not installed');
    const x = await exchange(port, ['HEAD / HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'], { expect: 2, head: [0] });
    assert.deepEqual(
      x.responses.map((r) => r.status),
      [404, 200],
      `answers: ${x.responses.map((r) => r.status)}; left over: ${JSON.stringify(x.rest.toString('latin1'))}`,
    );
    assert.equal(x.responses[0]!.headers['x-error-code'], 'E_NOT_FOUND');
    assert.equal(x.rest.length, 0);
    hub.kill('SIGTERM');
    await hub.exited;
  });
});

describe('dashboard in a browser', { skip: noChromium, timeout: 120_000 }, () => {
  let browser: Browser;
  let hubs: HubProc[];
  let page: Page;
  const loads: { stop: () => Promise<void> }[] = [];

  before(async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    hubs = await startMesh(['dash-a', 'dash-b']);
    await startWorker({ url: hubs[0]!.url, instanceId: 'worker-a', services: [{ name: 'echo' }, { name: 'orders', mode: 'sleep', sleepMs: 40 }] });
    await startWorker({ url: hubs[1]!.url, instanceId: 'worker-b', services: [{ name: 'echo' }] });
    await converged(hubs, 'echo', 2);
    // Two legacy pollers wait on a service of their own (the requests end when the hubs stop).
    for (let i = 0; i < 2; i++) fetch(`${hubs[0]!.url}/service/legacy/jobs?wait=100`).catch(() => undefined);
    loads.push(load(`${hubs[0]!.url}/api/echo/key-{i}`), load(`${hubs[0]!.url}/service/orders`), load(`${hubs[0]!.url}/service/orders`));
    page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  });

  after(async () => {
    await Promise.all(loads.map((l) => l.stop()));
    await browser?.close();
    await stopAll();
  });

  const requestsOf = async (service: string) =>
    Number((await text(page.locator(`#services-table tbody tr[data-key="${service}"] td`).nth(4))).replace(/,/g, ''));

  it('shows the service, its worker, a rising request count and the other hub as a peer', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(hubs[0]!.url);
    await page.locator('#services-table tbody tr[data-key="echo"]').waitFor({ timeout: 10_000 });
    await page.locator('#workers-table tbody tr', { hasText: 'worker-a' }).first().waitFor();
    const first = await waitUntil(async () => (await requestsOf('echo')) || 0, 5000, 'a request count');
    const later = await waitUntil(
      async () => {
        const n = await requestsOf('echo');
        return n > first ? n : 0;
      },
      5000,
      'the request count to rise',
    );
    assert.ok(later > first, `${first} then ${later}`);
    const peer = page.locator('#peers-table tbody tr', { hasText: 'dash-b' });
    await peer.waitFor();
    assert.match(await text(peer), /open/);
    assert.match(await text(page.locator('#rings-table tbody tr[data-key="echo"]')), /worker-b @ dash-b/);
    await waitUntil(async () => (await text(page.locator('#longpoll-table tbody tr[data-key="legacy"] td').first(), 1000)) === '2', 5000, 'two waiting polls');
    // Enough seconds for the charts to draw lines before the picture is taken.
    await sleep(8000);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });
    assert.deepEqual(errors, []);
  });

  it('keeps the keyboard focus on a chosen service while the page updates', async () => {
    const pick = page.locator('#services-table tbody tr[data-key="orders"] button.pick');
    await pick.focus();
    await page.keyboard.press('Enter');
    assert.equal(await text(page.locator('#chart-subject')), 'orders');
    assert.equal(await pick.getAttribute('aria-pressed'), 'true');
    await sleep(2500);
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'orders');
    // The chart boxes keep their reserved size as data arrives.
    const box = await page.locator('#chart-rate').boundingBox();
    assert.equal(Math.round(box!.height), 170);
  });

  it('filters the tables by service name, and shows at most 100 rows with a note of the rest', async () => {
    await page.locator('#filter').fill('ord');
    await waitUntil(async () => (await page.locator('#services-table tbody tr').count()) === 1, 3000, 'one service left');
    assert.equal(await page.locator('#services-table tbody tr').first().getAttribute('data-key'), 'orders');
    await page.locator('#filter').fill('');
    await page.locator('#services-table tbody tr[data-key="echo"]').waitFor();

    const hub = await startHub();
    const names = Array.from({ length: 130 }, (_, i) => `svc-${String(i).padStart(3, '0')}`);
    await startWorker({ url: hub.url, instanceId: 'many', services: names.map((name) => ({ name })) });
    const p = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    try {
      await p.goto(hub.url);
      await p.locator('#services-table tbody tr[data-key="svc-000"]').waitFor({ timeout: 10_000 });
      assert.equal(await p.locator('#services-table tbody tr').count(), 100);
      assert.equal(await text(p.locator('#services-more')), 'showing 100 of 130 services: filter to see the others');
      await p.locator('#filter').fill('SVC-12');
      await waitUntil(async () => (await p.locator('#services-table tbody tr').count()) === 10, 3000, 'ten services');
      assert.equal(await text(p.locator('#services-more')), '');
      assert.equal(await p.locator('#workers-table tbody tr').count(), 10);
    } finally {
      await p.close();
    }
  });

  it('asks for a monitor token when auth is on, and shows the hub once it has one', async () => {
    const hub = await startHub({ 'auth-file': authFile() });
    await startWorker({ url: hub.url, instanceId: 'secure-worker', token: T.worker, statsToken: T.ops, services: [{ name: 'vault' }] });
    const p = await browser.newPage();
    await p.goto(hub.url);
    await p.locator('#token-form').waitFor();
    assert.match(await text(p.locator('#alert')), /monitor right/);
    await p.locator('#token').fill(T.caller);
    await p.keyboard.press('Enter');
    await waitUntil(async () => /does not have the monitor right/.test(await text(p.locator('#alert'))), 5000, 'the refusal of a token without the right');
    await p.locator('#token').fill(T.ops);
    await p.keyboard.press('Enter');
    await p.locator('#services-table tbody tr[data-key="vault"]').waitFor({ timeout: 5000 });
    await p.locator('#token-form').waitFor({ state: 'hidden' });
    assert.equal(await p.evaluate("sessionStorage.getItem('astromesh.monitorToken')"), T.ops);
    await p.close();
  });
});
