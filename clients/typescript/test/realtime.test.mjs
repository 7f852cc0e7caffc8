// The realtime client against the real server: recovery across a restart
// behind two instances sharing Redis, onResync, token renewal and 4001.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient } from "../dist/index.js";
import { countingWebSocket, eventually, freePort, mint, newDatabase, pgAvailable, startProxy, startServer, WebSocket } from "./harness.mjs";

describe("realtime across a restart, two instances sharing Redis", () => {
  const cleanups = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("keeps every event, once, in order", async () => {
    if (!pgAvailable) throw new Error("needs PostgreSQL and Redis: run through scripts/services.sh (make ts-test does)");
    const db = newDatabase();
    cleanups.push(() => db.drop());
    const env = { DATABASE_URL: db.url, REDIS_URL: process.env.AGENTSTORE_TEST_REDIS_URL, RATE_LIMIT_MAX: "100000", WS_HISTORY_SIZE: "5000" };
    const ports = [await freePort(), await freePort()];
    const servers = [await startServer({ env, port: ports[0] }), await startServer({ env, port: ports[1] })];
    cleanups.push(() => Promise.all(servers.map((s) => s.stop())));
    const lb = await startProxy([() => ports[0], () => ports[1]]);
    cleanups.push(() => lb.close());

    const tenant = randomUUID();
    const counting = countingWebSocket();
    const w = counting;
    const resyncs = [];
    const sub = createClient({ baseUrl: lb.base, getToken: () => mint({ tenant }), WebSocket: counting.WebSocket, realtime: { reconnectBaseMs: 50 } });
    cleanups.push(() => sub.close());
    const got = [];
    const s = sub.realtime.subscribe("runs", (e) => got.push(e), { onResync: (i) => resyncs.push(i) });
    await s.ready;

    // The writer goes through the load balancer too; its creates are
    // idempotent, so an instance going away under it costs nothing.
    const writer = createClient({ baseUrl: lb.base, getToken: () => mint({ tenant }), retry: { maxAttempts: 20, baseDelayMs: 50, maxDelayMs: 300 } });
    const created = [];
    let writing = true;
    const load = (async () => {
      while (writing) {
        const r = await writer.runs.create({ agentName: "restart" });
        created.push(r.id);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    const waitCreated = (n) => eventually(() => created.length >= n, 20_000, `${n} runs`);

    await waitCreated(30);
    await servers[0].stop(); // the subscriber's instance shuts down: 1001, then it reconnects to the other
    await waitCreated(created.length + 30);
    servers[0] = await startServer({ env, port: ports[0] });
    await servers[1].stop(); // and back again
    await waitCreated(created.length + 30);
    writing = false;
    await load;

    await eventually(() => got.length >= created.length, 20_000, "every event");
    await new Promise((res) => setTimeout(res, 200)); // any duplicate would arrive now
    const ids = got.filter((e) => e.event === "run.created").map((e) => e.data.id);
    assert.equal(ids.length, created.length, "no duplicate");
    assert.deepEqual(new Set(ids), new Set(created), "no gap");
    for (let i = 1; i < got.length; i++) assert.equal(got[i].offset, got[i - 1].offset + 1, `offsets rise by one at ${i}`);
    assert.deepEqual(resyncs, [], "the shared history covered both gaps");
    assert.ok(counting.made.length >= 3, `reconnected twice (${counting.made.length} sockets)`);
    assert.ok(w.closes.includes(1001), `1001 on shutdown (${w.closes})`);
    const resumes = w.sent.filter((f) => f.type === "subscribe" && f.since !== undefined);
    assert.ok(resumes.length >= 2, "resubscribed with since");
  });
});

describe("realtime on one instance", () => {
  const cleanups = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("calls onResync when the history cannot fill the gap", async () => {
    const port = await freePort();
    let server = await startServer({ port });
    cleanups.push(() => server.stop());
    const tenant = randomUUID();
    const client = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), WebSocket, realtime: { reconnectBaseMs: 50 } });
    cleanups.push(() => client.close());
    const writer = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), retry: { maxAttempts: 20, baseDelayMs: 50 } });

    // A since the history does not reach cannot be recovered (a new
    // channel starts at the clock in microseconds, far above 1000).
    const far = [];
    const s1 = client.realtime.subscribe("runs", () => {}, { since: 1000, onResync: (i) => far.push(i) });
    await s1.ready;
    assert.equal(far.length, 1);
    assert.equal(far[0].since, 1000);
    assert.ok(far[0].offset > 1000 && Number.isSafeInteger(far[0].offset), String(far[0].offset));
    assert.equal(s1.offset, far[0].offset, "events resume after the channel's offset");
    s1.unsubscribe();

    // A restart of the only instance loses its in-memory history: resync, then events flow again.
    const got = [];
    const resyncs = [];
    const s2 = client.realtime.subscribe("runs", (e) => got.push(e), { onResync: (i) => resyncs.push(i) });
    await s2.ready;
    for (let i = 0; i < 3; i++) await writer.runs.create({ agentName: "before" });
    await eventually(() => got.length === 3, 10_000, "3 events");
    await server.stop();
    server = await startServer({ port, dataDir: server.dataDir });
    await eventually(() => resyncs.length === 1, 15_000, "onResync");
    assert.equal(resyncs[0].since, got[2].offset, "resumed from the last offset delivered");
    assert.ok(resyncs[0].offset > resyncs[0].since, "the restarted channel's offsets stay above the old ones");
    const after = await writer.runs.create({ agentName: "after" });
    await eventually(() => got.some((e) => e.data.id === after.id), 10_000, "the event after the resync");
  });

  it("renews the token with an auth frame before it expires", async () => {
    const server = await startServer();
    cleanups.push(() => server.stop());
    const tenant = randomUUID();
    const counting = countingWebSocket();
    const w = counting;
    // Tokens of 3 s: the client must renew to keep its socket past 3 s.
    const client = createClient({ baseUrl: server.base, getToken: () => mint({ tenant, ttlSec: 3 }), WebSocket: counting.WebSocket });
    cleanups.push(() => client.close());
    const got = [];
    await client.realtime.subscribe("runs", (e) => got.push(e)).ready;
    await new Promise((res) => setTimeout(res, 4500));
    const writer = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }) });
    const run = await writer.runs.create({ agentName: "renewed" });
    await eventually(() => got.some((e) => e.data.id === run.id), 10_000, "the event after renewal");
    assert.equal(counting.made.length, 1, `one socket (closes: ${w.closes})`);
    assert.ok(w.sent.some((f) => f.type === "auth" && typeof f.token === "string"), "an auth frame was sent");
  });

  it("reconnects with a fresh token after 4001", async () => {
    const server = await startServer();
    cleanups.push(() => server.stop());
    const tenant = randomUUID();
    const counting = countingWebSocket();
    const w = counting;
    // getToken cannot renew: the same 2 s token, until a fresh one after 3 s.
    const stale = mint({ tenant, ttlSec: 2 });
    const t0 = Date.now();
    const client = createClient({
      baseUrl: server.base,
      getToken: () => (Date.now() - t0 < 3000 ? stale : mint({ tenant, ttlSec: 60 })),
      WebSocket: counting.WebSocket,
      realtime: { reconnectBaseMs: 100, reconnectMaxMs: 500 },
    });
    cleanups.push(() => client.close());
    const got = [];
    await client.realtime.subscribe("runs", (e) => got.push(e)).ready;
    const writer = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }) });
    const first = await writer.runs.create({ agentName: "before expiry" });
    await eventually(() => w.closes.includes(4001), 10_000, "close 4001");
    const second = await writer.runs.create({ agentName: "after expiry" });
    await eventually(() => got.some((e) => e.data.id === second.id), 15_000, "the event after the reconnect");
    assert.deepEqual(got.map((e) => e.data.id), [first.id, second.id], "no gap, no duplicate");
    assert.ok(counting.made.length >= 2);
  });
});
