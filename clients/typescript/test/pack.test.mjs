// npm pack: the package holds the ESM build, its declarations and the
// sources, nothing else, and the packed module loads on its own.
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { pkgRoot } from "./harness.mjs";

const run = promisify(execFile);

it("npm pack makes a self-contained ESM package with types", async () => {
  const dir = mkdtempSync(join(tmpdir(), "agentstore-pack-"));
  try {
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: pkgRoot });
    const [info] = JSON.parse(stdout);
    const files = info.files.map((f) => f.path).sort();
    for (const f of ["dist/index.js", "dist/index.d.ts", "dist/realtime.js", "dist/openapi.d.ts", "src/index.ts", "package.json", "README.md"]) {
      assert.ok(files.includes(f), `${f} is packed: ${files.join(", ")}`);
    }
    assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/") || f.startsWith("bench/")), files.join(", "));
    await run("tar", ["-xzf", join(dir, info.filename), "-C", dir]);
    const mod = await import(pathToFileURL(join(dir, "package", "dist", "index.js")).href);
    assert.equal(typeof mod.createClient, "function");
    assert.equal(typeof mod.AgentstoreError, "function");
    assert.deepEqual(Object.keys(mod).sort(), ["AgentstoreError", "CloseCodes", "createClient"]);
    const client = mod.createClient({ baseUrl: "http://127.0.0.1:1", getToken: () => "" });
    for (const r of ["runs", "steps", "toolCalls", "usage", "audit", "health", "realtime"]) assert.ok(client[r], r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
