// build.mjs bundles the run viewer into ../internal/webui/assets, which the
// Go binary embeds: app.js (every TypeScript module, minified), app.css and
// index.html. The output is committed, so `make run` needs only Go;
// `node build.mjs --check` builds into a temporary directory and fails when
// the committed files differ (make test runs it through scripts/check-ui.sh).
import * as esbuild from "esbuild";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "..", "internal", "webui", "assets");
const files = ["app.js", "app.css", "index.html"];
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "agentstore-ui-")) : assets;

await esbuild.build({
  entryPoints: { app: join(here, "src", "main.ts") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  legalComments: "none",
  charset: "utf8",
  outdir: out,
  logLevel: "warning",
});
await esbuild.build({
  entryPoints: { app: join(here, "src", "style.css") },
  bundle: true,
  minify: true,
  charset: "utf8",
  outdir: out,
  logLevel: "warning",
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));

if (check) {
  const stale = files.filter((f) => {
    const committed = join(assets, f);
    return !existsSync(committed) || !readFileSync(committed).equals(readFileSync(join(out, f)));
  });
  rmSync(out, { recursive: true, force: true });
  if (stale.length > 0) {
    console.error(`internal/webui/assets is stale (${stale.join(", ")}): run \`make ui\` and commit the result.`);
    process.exit(1);
  }
  console.log("internal/webui/assets is up to date with ui/src");
}
