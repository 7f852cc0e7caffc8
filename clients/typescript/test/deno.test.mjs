// Deno (Supabase Edge Functions): the client's TypeScript sources type-check
// under Deno and work there against the real server with Deno's own fetch
// and WebSocket. Deno comes from the npm package `deno` (a devDependency).
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { mint, pkgRoot, startServer } from "./harness.mjs";

const run = promisify(execFile);
const deno = join(pkgRoot, "node_modules", ".bin", "deno");
// --no-npm: the package.json beside is for Node; Deno resolves nothing from npm.
const flags = ["--no-npm", "--no-config", "--quiet"];

it("deno check and deno run of the Edge Function example", async () => {
  const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
  await run(deno, ["check", ...flags, "examples/deno/smoke.ts"], { cwd: pkgRoot, env });
  const server = await startServer();
  try {
    const { stdout } = await run(deno, ["run", ...flags, "--allow-net", "--allow-env", "examples/deno/smoke.ts"], {
      cwd: pkgRoot,
      env: { ...env, AGENTSTORE_URL: server.base, AGENTSTORE_TOKEN: mint({ tenant: randomUUID() }) },
      timeout: 60_000,
    });
    assert.match(stdout, /^deno ok [0-9a-f-]{36}$/m);
  } finally {
    await server.stop();
  }
});
