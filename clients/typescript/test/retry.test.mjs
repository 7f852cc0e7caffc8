// Retries: 429 waits for Retry-After, 503 and network errors back off,
// unsafe requests are never repeated, and an idempotent create retried
// across a server killed mid-request creates exactly one run.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient, AgentstoreError } from "../dist/index.js";
import { freePort, mint, newDatabase, pgAvailable, startServer } from "./harness.mjs";

/** recording wraps fetch, keeping the method, path and status (or "network") of each attempt. */
function recording(inner = fetch) {
  const calls = [];
  const f = async (url, init) => {
    const entry = { method: init.method, path: new URL(url).pathname, status: "network", key: init.headers["Idempotency-Key"] };
    calls.push(entry);
    const res = await inner(url, init);
    entry.status = res.status;
    return res;
  };
  return { fetch: f, calls };
}

describe("429 retry", () => {
  let server;
  before(async () => {
    server = await startServer({ env: { RATE_LIMIT_MAX: "3", RATE_LIMIT_WINDOW_MS: "1500" } });
  });
  after(() => server.stop());

  it("waits for Retry-After on safe requests and throws on unsafe ones", async () => {
    const tenant = randomUUID();
    const rec = recording();
    const client = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), fetch: rec.fetch, retry: { maxAttempts: 4 } });
    const run = await client.runs.create({ agentName: "limited" }); // 1 of 3
    await client.runs.get(run.id); // a different route: its own budget
    for (let i = 0; i < 5; i++) await client.runs.list(); // 3 pass, then 429s wait for the window
    const listCalls = rec.calls.filter((c) => c.path === "/v1/runs" && c.method === "GET");
    assert.ok(listCalls.some((c) => c.status === 429), "the limit was hit");
    assert.equal(listCalls.filter((c) => c.status === 200).length, 5, "every list succeeded in the end");

    // An append is not safe to repeat: its 429 is thrown at once.
    const before = rec.calls.length;
    const refused = [];
    for (let i = 0; i < 8 && refused.length === 0; i++) await client.steps.append(run.id, { type: "llm" }).catch((e) => refused.push(e));
    assert.equal(refused.length, 1, "the append budget ran out");
    const e = refused[0];
    assert.ok(e instanceof AgentstoreError);
    assert.equal(e.status, 429);
    assert.equal(e.code, "RATE_LIMITED");
    assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 2000, String(e.retryAfterMs));
    assert.match(e.requestId, /.+/);
    const appends = rec.calls.slice(before);
    assert.equal(appends.filter((c) => c.status === 429).length, 1, "the refused append was sent once");
    assert.equal(appends.at(-1).status, 429);

    // maxAttempts 1: no retry at all.
    const once = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), fetch: rec.fetch, retry: { maxAttempts: 1 } });
    const from = rec.calls.length;
    let limited;
    for (let i = 0; i < 8 && !limited; i++) limited = await once.runs.list().then(() => undefined, (err) => err);
    assert.equal(limited?.code, "RATE_LIMITED");
    assert.equal(rec.calls.slice(from).filter((c) => c.status === 429).length, 1, "maxAttempts 1 sends once");
  });
});

describe("503 and network errors", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.stop());

  it("backs off on safe requests only", async () => {
    // A load balancer's 503 in front of the real server, once per request.
    const seen = new Set();
    const lb = async (url, init) => {
      const k = `${init.method} ${url}`;
      if (!seen.has(k)) {
        seen.add(k);
        return new Response('{"code":"UNAVAILABLE","message":"no healthy upstream"}', { status: 503, headers: { "Content-Type": "application/json" } });
      }
      return fetch(url, init);
    };
    const rec = recording(lb);
    const tenant = randomUUID();
    const client = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), fetch: rec.fetch, retry: { baseDelayMs: 20 } });
    const run = await client.runs.create({ agentName: "lb" });
    assert.deepEqual(rec.calls.map((c) => c.status), [503, 201]);
    assert.equal(rec.calls[0].key, rec.calls[1].key, "the retry carries the same Idempotency-Key");
    const steps = await client.steps.list(run.id);
    assert.deepEqual(steps, []);
    await assert.rejects(client.runs.update(run.id, { status: "running" }), (e) => e.status === 503 && e.code === "UNAVAILABLE");
    assert.equal(rec.calls.filter((c) => c.method === "PATCH").length, 1, "PATCH is not retried");

    // No server at all: safe requests are tried maxAttempts times, then NETWORK_ERROR.
    const deadPort = await freePort();
    const rec2 = recording();
    const dead = createClient({ baseUrl: `http://127.0.0.1:${deadPort}`, getToken: () => "x", fetch: rec2.fetch, retry: { maxAttempts: 3, baseDelayMs: 10 } });
    await assert.rejects(dead.runs.list(), (e) => e instanceof AgentstoreError && e.status === 0 && e.code === "NETWORK_ERROR");
    assert.equal(rec2.calls.length, 3);
    await assert.rejects(dead.usage.record({ model: "m" }), (e) => e.code === "NETWORK_ERROR");
    assert.equal(rec2.calls.length, 4, "an unsafe request is sent once");
  });
});

describe("idempotent create across a server killed mid-request", { skip: false }, () => {
  let db, port, env, server;
  before(async () => {
    if (!pgAvailable) throw new Error("needs PostgreSQL: run through scripts/services.sh (make ts-test does)");
    db = newDatabase();
    port = await freePort();
    env = { DATABASE_URL: db.url };
    server = await startServer({ env, port });
  });
  after(async () => {
    await server?.stop();
    db?.drop();
  });

  // kill kills the server with SIGKILL and starts it again on the same
  // port in the background; the client's retries find it back.
  function killAndRestart() {
    const dying = server;
    const restarted = (async () => {
      await dying.kill();
      server = await startServer({ env, port });
    })();
    return restarted;
  }

  for (const when of ["after the commit, before the response", "while the request is in flight"]) {
    it(`creates one run when killed ${when}`, async () => {
      const tenant = randomUUID();
      const agentName = `idem-${randomUUID().slice(0, 8)}`;
      let restarted;
      const attempts = [];
      const crashing = async (url, init) => {
        attempts.push(init.headers["Idempotency-Key"]);
        if (attempts.length > 1) {
          const res = await fetch(url, init);
          attempts.replayed = res.headers.get("Idempotent-Replayed");
          return res;
        }
        if (when.startsWith("after")) {
          const res = await fetch(url, init);
          assert.equal(res.status, 201, "the first attempt committed");
          restarted = killAndRestart();
          throw new TypeError("fetch failed: the response was lost");
        }
        const p = fetch(url, init);
        restarted = killAndRestart();
        await p; // rejects when the kill won the race; a response that made it is dropped as lost
        throw new TypeError("fetch failed: the response was lost");
      };
      const client = createClient({
        baseUrl: `http://127.0.0.1:${port}`,
        getToken: () => mint({ tenant }),
        fetch: crashing,
        retry: { maxAttempts: 30, baseDelayMs: 100, maxDelayMs: 400 },
      });
      const run = await client.runs.create({ agentName, input: { n: 1 } });
      await restarted;
      assert.ok(attempts.length >= 2, "the create was retried");
      assert.equal(new Set(attempts).size, 1, "every attempt carried the same Idempotency-Key");
      if (when.startsWith("after")) assert.equal(attempts.replayed, "true", "the retry got the first run back");
      const check = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }) });
      const listed = await check.runs.list({ agentName });
      assert.deepEqual(listed.data.map((r) => r.id), [run.id], "exactly one run");
    });
  }
});
