// The TypeScript snippets of docs/development/application-cutover.md
// compile against the client's types (tsc --noEmit, strict), so that the
// guide cannot drift from the client.
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { pkgRoot, repoRoot } from "./harness.mjs";

const run = promisify(execFile);

/** snippets returns the ```ts blocks of a Markdown file, without the fence's indentation. */
function snippets(file) {
  const out = [];
  const re = /^( *)```ts\n([\s\S]*?)^\1```$/gm;
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(re)) {
    const indent = m[1].length;
    const line = text.slice(0, m.index).split("\n").length + 1;
    out.push({ line, code: m[2].split("\n").map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join("\n") });
  }
  return out;
}

it("the cut-over guide's TypeScript snippets compile", async () => {
  const doc = join(repoRoot, "docs/development/application-cutover.md");
  const blocks = snippets(doc);
  assert.ok(blocks.length >= 4, `found ${blocks.length} ts blocks`);
  // Inside the package, so that "@agentstore/client" resolves to it (its exports, its dist).
  const dir = mkdtempSync(join(pkgRoot, ".doc-snippets-"));
  try {
    const files = blocks.map((b, i) => {
      const name = `snippet-${i + 1}-line-${b.line}.ts`;
      writeFileSync(join(dir, name), b.code);
      return name;
    });
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", lib: ["ES2022", "DOM"],
          types: ["node"], strict: true, noEmit: true, skipLibCheck: true, isolatedModules: true,
        },
        files,
      }),
    );
    const tsc = join(pkgRoot, "node_modules", ".bin", "tsc");
    await run(tsc, ["-p", join(dir, "tsconfig.json")]).catch((e) => {
      assert.fail(`tsc on the snippets of ${doc} (snippet-N-line-L is the block at line L):\n${e.stdout}${e.stderr}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
