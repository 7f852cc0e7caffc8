// bench.mjs — `make ts-bench` (part of `make bench`): what the TypeScript
// client costs, on the built binary with PostgreSQL + Redis from
// scripts/services.sh.
//
//  1. POST /v1/runs at 16 concurrent callers: the client's runs.create
//     against raw fetch of the same request (same token, same
//     Idempotency-Key header, so the server does the same work), in
//     interleaved rounds; the ratio must be at least 0.95.
//  2. Realtime: 10,000 events published on one run channel through
//     instance B while the client's subscriber, behind a TCP load balancer,
//     sits on instance A, which is shut down halfway (a forced reconnect to
//     B with since); every event must arrive once: 0 lost, 0 duplicated.
//
// BENCH_SECONDS (default 4) is the length of one throughput round.
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { createClient } from "../dist/index.js";
import { countingWebSocket, freePort, mint, newDatabase, pgAvailable, startProxy, startServer } from "../test/harness.mjs";

if (!pgAvailable) {
  console.error("ts-bench needs PostgreSQL and Redis: run it through scripts/services.sh (make ts-bench does)");
  process.exit(2);
}
const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const callers = 16;
const results = {};

async function throughput() {
  const db = newDatabase();
  const server = await startServer({ env: { DATABASE_URL: db.url, REDIS_URL: process.env.AGENTSTORE_TEST_REDIS_URL, RATE_LIMIT_DISABLED: "true" } });
  try {
    const tenant = randomUUID();
    const token = mint({ tenant, ttlSec: 3600 });
    const client = createClient({ baseUrl: server.base, getToken: () => token });
    const body = { agentName: "bench", input: { prompt: "hello" }, steps: [{ type: "llm" }] };
    const raw = async () => {
      const res = await fetch(`${server.base}/v1/runs`, {
        method: "POST",
        headers: { Accept: "application/json", Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": randomUUID() },
        body: JSON.stringify(body),
      });
      if (res.status !== 201) throw new Error(`raw: ${res.status}`);
      await res.json();
    };
    const viaClient = async () => {
      await client.runs.create(body);
    };
    const round = async (fn, ms) => {
      const end = Date.now() + ms;
      let n = 0;
      await Promise.all(
        Array.from({ length: callers }, async () => {
          while (Date.now() < end) {
            await fn();
            n++;
          }
        }),
      );
      return n / (ms / 1000);
    };
    await round(raw, 1000); // warm up both paths
    await round(viaClient, 1000);
    const rawRates = [];
    const clientRates = [];
    for (let i = 0; i < 3; i++) {
      if (i % 2 === 0) {
        rawRates.push(await round(raw, seconds * 1000));
        clientRates.push(await round(viaClient, seconds * 1000));
      } else {
        clientRates.push(await round(viaClient, seconds * 1000));
        rawRates.push(await round(raw, seconds * 1000));
      }
    }
    const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
    results.createRaw = Math.round(mean(rawRates));
    results.createClient = Math.round(mean(clientRates));
    results.createRatio = Number((mean(clientRates) / mean(rawRates)).toFixed(3));
    console.log(`POST /v1/runs, ${callers} callers, 3 interleaved rounds of ${seconds}s: raw fetch ${results.createRaw}/s, client ${results.createClient}/s, ratio ${results.createRatio}`);
  } finally {
    await server.stop();
    db.drop();
  }
}

async function realtime() {
  const total = Number(process.env.BENCH_EVENTS ?? 10_000);
  const db = newDatabase();
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: process.env.AGENTSTORE_TEST_REDIS_URL,
    RATE_LIMIT_DISABLED: "true",
    WS_BROADCAST_MAX: "1000000",
    WS_HISTORY_SIZE: String(total * 2),
  };
  const ports = [await freePort(), await freePort()];
  const servers = [await startServer({ env, port: ports[0] }), await startServer({ env, port: ports[1] })];
  const lb = await startProxy([() => ports[0], () => ports[1]]);
  const tenant = randomUUID();
  const token = mint({ tenant, ttlSec: 3600 });
  const counting = countingWebSocket();
  const client = createClient({ baseUrl: lb.base, getToken: () => token, WebSocket: counting.WebSocket, realtime: { reconnectBaseMs: 50 } });
  try {
    const run = await createClient({ baseUrl: servers[1].base, getToken: () => token }).runs.create({ agentName: "realtime-bench" });
    const seen = new Map();
    let dups = 0;
    let last = 0;
    let disorder = 0;
    let resyncs = 0;
    let done;
    const all = new Promise((r) => (done = r));
    const sub = client.realtime.subscribe(
      `run:${run.id}`,
      (e) => {
        const n = e.data.n;
        if (seen.has(n)) dups++;
        seen.set(n, e.offset);
        if (n !== last + 1) disorder++;
        last = n;
        if (seen.size === total) done();
      },
      { onResync: () => resyncs++ },
    );
    await sub.ready;

    // The publisher: one raw socket on instance B.
    const pub = new WebSocket(`${servers[1].base.replace("http", "ws")}/v1/ws?access_token=${token}`);
    await new Promise((r, j) => {
      pub.once("open", r);
      pub.once("error", j);
    });
    let refused = 0;
    pub.on("message", (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === "error") refused++;
    });
    const started = Date.now();
    let killed;
    for (let n = 1; n <= total; n++) {
      pub.send(JSON.stringify({ type: "publish", ref: String(n), channel: `run:${run.id}`, event: "bench.tick", payload: { n } }));
      if (n % 200 === 0) await new Promise((r) => setTimeout(r, 5)); // let the socket drain
      if (n === total / 2) killed = servers[0].stop(); // the subscriber's instance goes away mid-stream
    }
    await killed;
    const timeout = setTimeout(() => done(), 60_000);
    await all;
    clearTimeout(timeout);
    await new Promise((r) => setTimeout(r, 300)); // a late duplicate would land now
    pub.close();
    const elapsed = (Date.now() - started) / 1000;
    results.realtime = {
      events: total,
      received: seen.size,
      lost: total - seen.size,
      duplicated: dups,
      outOfOrder: disorder,
      refusedPublishes: refused,
      resyncs,
      sockets: counting.made.length,
      closeCodes: counting.closes,
      seconds: Number(elapsed.toFixed(2)),
    };
    console.log(
      `realtime: ${total} events across a forced reconnect (instance shut down at ${total / 2}): received ${seen.size}, lost ${total - seen.size}, duplicated ${dups}, out of order ${disorder}, ` +
        `refused ${refused}, resyncs ${resyncs}, sockets ${counting.made.length} (closes ${counting.closes.join(",")}), ${elapsed.toFixed(2)}s`,
    );
  } finally {
    client.close();
    await lb.close();
    await Promise.all(servers.map((s) => s.stop()));
    db.drop();
  }
}

await throughput();
await realtime();
const ok = results.createRatio >= 0.95 && results.realtime.lost === 0 && results.realtime.duplicated === 0 && results.realtime.outOfOrder === 0 && results.realtime.sockets >= 2;
console.log(JSON.stringify(results));
if (!ok) {
  console.error("ts-bench: below target (ratio >= 0.95; 0 lost, 0 duplicated, in order, across a reconnect)");
  process.exit(1);
}
