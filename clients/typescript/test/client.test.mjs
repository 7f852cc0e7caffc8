// Every method of the client against the real server, on SQLite and on
// PostgreSQL + Redis.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createClient, AgentstoreError } from "../dist/index.js";
import { backends, mint, startServer, WebSocket } from "./harness.mjs";

for (const backend of backends()) {
  describe(`client on ${backend.name}`, () => {
    let server, setup, tenant, client, admin;

    before(async () => {
      setup = backend.setup();
      server = await startServer({ env: setup.env });
      tenant = randomUUID();
      client = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), WebSocket });
      // service_role acting for the tenant: usage and health are recorded by services.
      admin = createClient({ baseUrl: server.base, getToken: () => mint({ role: "service_role" }), tenantId: tenant, WebSocket });
    });
    after(async () => {
      client?.close();
      admin?.close();
      await server?.stop();
      setup?.cleanup();
    });

    it("runs: create, get with include, update, list, iterate, stats", async () => {
      const events = [];
      const sub = client.realtime.subscribe("runs", (e) => events.push(e));
      await sub.ready;

      const run = await client.runs.create({
        agentName: "ts-client",
        input: { prompt: "hello" },
        metadata: { source: "test" },
        model: "gpt-4o",
        steps: [{ type: "llm", name: "plan", input: { q: 1 } }],
        toolCalls: [{ toolName: "web_search", status: "succeeded", arguments: { q: "x" }, durationMs: 12 }],
      });
      assert.equal(run.agentName, "ts-client");
      assert.equal(run.status, "queued");
      assert.equal(run.tenantId, tenant);
      assert.equal(run.steps.length, 1);
      assert.equal(run.steps[0].seq, 1);
      assert.equal(run.toolCalls[0].toolName, "web_search");

      const got = await client.runs.get(run.id, { include: ["steps", "toolCalls"] });
      assert.equal(got.id, run.id);
      assert.equal(got.steps.length, 1);
      assert.equal(got.toolCalls.length, 1);
      const bare = await client.runs.get(run.id);
      assert.equal(bare.steps, undefined);

      const running = await client.runs.update(run.id, { status: "running" });
      assert.equal(running.status, "running");
      const done = await client.runs.update(run.id, { status: "succeeded", output: { answer: 42 } });
      assert.equal(done.status, "succeeded");
      assert.ok(done.endedAt, "a terminal status sets endedAt");
      assert.deepEqual(done.output, { answer: 42 });

      // Enough runs for three pages of two.
      for (let i = 0; i < 4; i++) await client.runs.create({ agentName: "pager" });
      const page = await client.runs.list({ agentName: "pager", limit: 2 });
      assert.equal(page.data.length, 2);
      assert.ok(page.nextCursor);
      const all = [];
      for await (const r of client.runs.iterate({ agentName: "pager", limit: 2 })) all.push(r.id);
      assert.equal(all.length, 4);
      assert.equal(new Set(all).size, 4);
      const succeeded = await client.runs.list({ status: "succeeded" });
      assert.deepEqual(succeeded.data.map((r) => r.id), [run.id]);

      const stats = await client.runs.stats({ groupBy: "status" });
      const byStatus = Object.fromEntries(stats.map((s) => [s.key, s.runs]));
      assert.ok(stats.length >= 2, JSON.stringify(stats));
      assert.ok(byStatus.queued !== undefined && byStatus.succeeded !== undefined, JSON.stringify(stats));

      await new Promise((r) => setTimeout(r, 200));
      sub.unsubscribe();
      const names = events.map((e) => e.event);
      assert.ok(names.includes("run.created") && names.includes("run.updated"), names.join(","));
      for (let i = 1; i < events.length; i++) assert.equal(events[i].offset, events[i - 1].offset + 1, "offsets rise by one");
    });

    it("steps and tool calls: one or many", async () => {
      const run = await client.runs.create({ agentName: "steps", status: "running" });
      const one = await client.steps.append(run.id, { type: "llm", name: "first" });
      assert.equal(one.seq, 1);
      const many = await client.steps.append(run.id, [{ type: "tool" }, { type: "message", output: { text: "hi" } }]);
      assert.deepEqual(many.map((s) => s.seq), [2, 3]);
      const steps = await client.steps.list(run.id);
      assert.deepEqual(steps.map((s) => s.seq), [1, 2, 3]);

      const call = await client.toolCalls.record(run.id, { toolName: "calc", status: "succeeded", stepId: one.id, arguments: { a: 1 }, result: 2 });
      assert.equal(call.stepId, one.id);
      const calls = await client.toolCalls.record(run.id, [
        { toolName: "fetch", status: "failed", error: "timeout" },
        { toolName: "fetch", status: "succeeded" },
      ]);
      assert.equal(calls.length, 2);
      const listed = await client.toolCalls.list(run.id);
      assert.equal(listed.length, 3);
    });

    it("usage, audit and health", async () => {
      const run = await client.runs.create({ agentName: "billing" });
      const u = await admin.usage.record({ runId: run.id, model: "gpt-4o", inputTokens: 100, outputTokens: 20, costUsd: 0.5 });
      assert.equal(u.totalTokens, 120);
      const summary = await client.usage.summary({ groupBy: "model" });
      const row = summary.find((s) => s.key === "gpt-4o");
      assert.ok(row, JSON.stringify(summary));
      assert.equal(row.inputTokens, 100);

      const audit = await client.audit.list({ resourceType: "run", resourceId: run.id });
      assert.ok(audit.data.some((a) => a.action === "run.create"), JSON.stringify(audit.data));
      assert.ok("nextCursor" in audit);

      const component = `ts-${randomUUID().slice(0, 8)}`;
      const h = await admin.health.record({ component, status: "degraded", latencyMs: 40, details: { region: "eu" } });
      assert.equal(h.status, "degraded");
      const latest = await client.health.get();
      assert.ok(latest.some((x) => x.component === component));
      const history = await client.health.get({ component });
      assert.equal(history.length, 1);
    });

    it("errors are AgentstoreError with the API's code, request id and details", async () => {
      const missing = randomUUID();
      await assert.rejects(client.runs.get(missing), (e) => {
        assert.ok(e instanceof AgentstoreError);
        assert.equal(e.status, 404);
        assert.equal(e.code, "NOT_FOUND");
        assert.match(e.requestId, /.+/);
        return true;
      });
      await assert.rejects(client.runs.create({ agentName: "" }), (e) => {
        assert.equal(e.status, 400);
        assert.equal(e.code, "INVALID_ARGUMENT");
        assert.ok(e.details.some((d) => d.field === "agentName"), JSON.stringify(e.details));
        return true;
      });
      await assert.rejects(client.steps.append(randomUUID(), [{ type: "llm" }, {}]), (e) => {
        assert.equal(e.code, "INVALID_ARGUMENT");
        assert.ok(e.details.some((d) => d.field === "steps[1].type"), JSON.stringify(e.details));
        return true;
      });
      const run = await client.runs.create({ agentName: "conflict" });
      await assert.rejects(client.runs.update(run.id, { status: "succeeded" }), (e) => e.status === 409 && e.code === "CONFLICT");
      // The same key with another body is a conflict; with the same body, the first run.
      const key = randomUUID();
      const first = await client.runs.create({ agentName: "idem" }, { idempotencyKey: key });
      const again = await client.runs.create({ agentName: "idem" }, { idempotencyKey: key });
      assert.equal(again.id, first.id);
      await assert.rejects(client.runs.create({ agentName: "other" }, { idempotencyKey: key }), (e) => e.code === "CONFLICT");
      // Another tenant's run does not exist.
      const stranger = createClient({ baseUrl: server.base, getToken: () => mint({ tenant: randomUUID() }) });
      await assert.rejects(stranger.runs.get(run.id), (e) => e.code === "NOT_FOUND");
      // Health and usage are recorded by services only.
      await assert.rejects(client.health.record({ component: "x", status: "up" }), (e) => e.status === 403 && e.code === "FORBIDDEN");
      await assert.rejects(client.usage.record({ runId: run.id, model: "m", inputTokens: 1 }), (e) => e.status === 403 && e.code === "FORBIDDEN");
      // No token.
      const anon = createClient({ baseUrl: server.base, getToken: () => "" });
      await assert.rejects(anon.runs.list(), (e) => e.status === 401 && e.code === "UNAUTHENTICATED");
    });

    it("realtime: one socket for many subscriptions of a run", async () => {
      const counting = [];
      class Counting extends WebSocket {
        constructor(...a) {
          super(...a);
          counting.push(this);
        }
      }
      const rt = createClient({ baseUrl: server.base, getToken: () => mint({ tenant }), WebSocket: Counting });
      const run = await client.runs.create({ agentName: "watched", status: "running" });
      const onRun = [];
      const onAll = [];
      const errors = [];
      const a = rt.realtime.subscribe(`run:${run.id}`, (e) => onRun.push(e));
      const b = rt.realtime.subscribe("runs", (e) => onAll.push(e));
      const c = rt.realtime.subscribe(`run:${randomUUID()}`, () => {}, { onError: (e) => errors.push(e) });
      await Promise.all([a.ready, b.ready, c.ready]);
      assert.equal(errors[0]?.code, "NOT_FOUND", "a run of no one is refused");
      await client.steps.append(run.id, { type: "llm" });
      await client.toolCalls.record(run.id, { toolName: "t", status: "succeeded" });
      await client.runs.update(run.id, { status: "failed", error: "boom" });
      const { eventually } = await import("./harness.mjs");
      await eventually(() => onRun.length >= 3, 10_000, "run events");
      assert.deepEqual(onRun.map((e) => e.event), ["step.appended", "toolcall.recorded", "run.updated"]);
      assert.equal(onRun[2].data.status, "failed");
      assert.equal(onRun[0].channel, `run:${run.id}`);
      await eventually(() => onAll.some((e) => e.event === "run.updated"), 10_000, "runs channel");
      assert.equal(counting.length, 1, "one socket for every subscription");
      rt.close();
    });
  });
}
