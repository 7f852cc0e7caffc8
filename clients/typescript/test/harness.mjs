// The test harness: the real agentstore binary, on SQLite or on
// PostgreSQL + Redis (the throwaway servers of scripts/services.sh), and
// HS256 tokens signed with the secret the servers are started with.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomUUID, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

export const here = dirname(fileURLToPath(import.meta.url));
export const pkgRoot = resolve(here, "..");
export const repoRoot = resolve(here, "../../..");
export const secret = "tsclient-test-secret-0123456789abcdefghij";
export { WebSocket };

let builtBinary;

/** binary is $AGENTSTORE_BIN (make test builds it) or one built here once. */
export function binary() {
  if (process.env.AGENTSTORE_BIN) return process.env.AGENTSTORE_BIN;
  if (!builtBinary) {
    const dir = mkdtempSync(join(tmpdir(), "agentstore-tsbin-"));
    builtBinary = join(dir, "agentstore");
    execFileSync("go", ["build", "-o", builtBinary, "./cmd/server"], { cwd: repoRoot, stdio: "inherit" });
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return builtBinary;
}

/** b64url encodes a string or buffer without padding. */
const b64url = (b) => Buffer.from(b).toString("base64url");

/** mint returns an HS256 token as Supabase Auth issues it. */
export function mint({ tenant, role = "authenticated", ttlSec = 600, sub = randomUUID() } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { aud: "authenticated", iat: now, exp: now + ttlSec, role, sub };
  if (tenant) claims.app_metadata = { tenant_id: tenant };
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** freePort returns a loopback port nothing listens on. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** run runs the binary to completion and returns its output; it throws on a non-zero exit. */
export function run(env, ...args) {
  return execFileSync(binary(), args, { env: { ...process.env, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/**
 * startServer runs `agentstore serve` with env (SUPABASE_JWT_SECRET set) and
 * resolves once it listens. port 0 picks one; dataDir defaults to a fresh one.
 */
export async function startServer({ env = {}, port = 0, dataDir } = {}) {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "agentstore-tsdata-"));
  const child = spawn(binary(), ["serve"], {
    env: { ...process.env, ADDR: `127.0.0.1:${port}`, DATA_DIR: dir, SUPABASE_JWT_SECRET: secret, LOG_LEVEL: "error", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (stderr.length > 20000) stderr = stderr.slice(-10000);
  });
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  const base = await new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`server did not start within 30s: ${stderr}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /agentstore listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      rej(new Error(`server exited (${code}) before listening: ${stderr}`));
    });
  });
  child.stdout.resume();
  const server = {
    base,
    port: Number(new URL(base).port),
    dataDir: dir,
    child,
    exited,
    /** stop sends SIGTERM (a graceful shutdown: WebSockets get 1001) and waits. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    /** kill sends SIGKILL and waits. */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      return exited;
    },
    stderr: () => stderr,
  };
  return server;
}

/** pgAvailable reports whether scripts/services.sh gave us PostgreSQL and Redis. */
export const pgAvailable = Boolean(process.env.AGENTSTORE_TEST_PG_URL && process.env.AGENTSTORE_TEST_REDIS_URL);

function psql(url, sql) {
  const bin = process.env.AGENTSTORE_TEST_PG_BIN ? join(process.env.AGENTSTORE_TEST_PG_BIN, "psql") : "psql";
  execFileSync(bin, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], { stdio: ["ignore", "ignore", "inherit"] });
}

/** newDatabase creates a fresh, migrated database and returns its URL and a function that drops it. */
export function newDatabase() {
  const admin = process.env.AGENTSTORE_TEST_PG_URL;
  const name = `tsclient_${randomBytes(6).toString("hex")}`;
  psql(admin, `CREATE DATABASE ${name}`);
  const u = new URL(admin);
  u.pathname = `/${name}`;
  const url = u.toString();
  run({ DATABASE_URL: url }, "migrate", "apply");
  return {
    url,
    drop: () => {
      try {
        psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch {
        // best effort
      }
    },
  };
}

/**
 * backends lists the two configurations every client method runs on:
 * SQLite with the in-process limiter and hub, and PostgreSQL + Redis.
 * The PostgreSQL one is present when services.sh provides the servers;
 * make test always does.
 */
export function backends() {
  const list = [{ name: "sqlite", setup: () => ({ env: {}, cleanup: () => {} }) }];
  list.push({
    name: "postgres+redis",
    setup: () => {
      if (!pgAvailable) throw new Error("AGENTSTORE_TEST_PG_URL and AGENTSTORE_TEST_REDIS_URL are not set: run through scripts/services.sh (make ts-test does)");
      const db = newDatabase();
      return { env: { DATABASE_URL: db.url, REDIS_URL: process.env.AGENTSTORE_TEST_REDIS_URL }, cleanup: db.drop };
    },
  });
  return list;
}

/**
 * startProxy is a TCP load balancer in front of several instances: each
 * connection goes to the first target that accepts it, so that with one
 * instance down its clients land on another.
 */
export async function startProxy(targets) {
  const sockets = new Set();
  const srv = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    const tryTarget = (i) => {
      if (i >= targets.length) {
        client.destroy();
        return;
      }
      const up = connect(targets[i](), "127.0.0.1");
      up.once("error", () => {
        if (!up.connected) tryTarget(i + 1);
        else client.destroy();
      });
      up.once("connect", () => {
        up.connected = true;
        sockets.add(up);
        up.on("close", () => {
          sockets.delete(up);
          client.destroy();
        });
        client.on("close", () => up.destroy());
        client.on("error", () => up.destroy());
        client.pipe(up);
        up.pipe(client);
      });
    };
    tryTarget(0);
  });
  await new Promise((res) => srv.listen(0, "127.0.0.1", res));
  return {
    base: `http://127.0.0.1:${srv.address().port}`,
    close: () =>
      new Promise((res) => {
        for (const s of sockets) s.destroy();
        srv.close(() => res());
      }),
  };
}

/**
 * countingWebSocket wraps the ws constructor: it keeps every socket made,
 * the close code of each, and every frame the client sent.
 */
export function countingWebSocket() {
  const made = [];
  const closes = [];
  const sent = [];
  class Counting extends WebSocket {
    constructor(...args) {
      super(...args);
      made.push(this);
      this.on("close", (code) => closes.push(code));
    }
    send(data, ...rest) {
      sent.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  }
  return { WebSocket: Counting, made, closes, sent };
}

/** eventually polls fn until it returns truthy, or throws after ms. */
export async function eventually(fn, ms = 10_000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}


