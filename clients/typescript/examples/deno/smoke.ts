// A Deno (Supabase Edge Function) smoke test of the client, straight from
// its TypeScript sources: `deno check` type-checks it, and the test suite
// runs it against the real server with Deno's own fetch and WebSocket.
import { createClient, type RealtimeEvent, type Run } from "../../src/index.ts";

const baseUrl = Deno.env.get("AGENTSTORE_URL") ?? "http://127.0.0.1:8080";
const token = Deno.env.get("AGENTSTORE_TOKEN") ?? "";
const client = createClient({ baseUrl, getToken: () => token });

const events: RealtimeEvent<Run>[] = [];
const sub = client.realtime.subscribe<Run>("runs", (e) => events.push(e));
await sub.ready;
const run = await client.runs.create({ agentName: "deno-edge", steps: [{ type: "llm" }] });
const got = await client.runs.get(run.id, { include: ["steps"] });
for (let i = 0; i < 100 && !events.some((e) => e.data.id === run.id); i++) await new Promise((r) => setTimeout(r, 50));
client.close();
if (got.steps?.length !== 1 || !events.some((e) => e.event === "run.created" && e.data.id === run.id)) {
  console.error("deno smoke failed", JSON.stringify({ got, events }));
  Deno.exit(1);
}
console.log(`deno ok ${run.id}`);
