// Browser tests of the Vexil console: drives the page in headless Chromium
// (puppeteer-core) and checks the server's state over plain gRPC.
//
//   CONSOLE_URL    origin serving the console, e.g. http://127.0.0.1:50180
//   GRPC_ADDRESS   host:port of the plain gRPC port
//   ADMIN_TOKEN, EDITOR_TOKEN, READER_TOKEN   bearer tokens (empty: a
//                  server without authentication; reader checks are skipped)
//   SHOTS_DIR      where screenshots go (default ./shots)
//   EXPECT_FLAGS_AT_LEAST   wait for at least this many flags in the list
//                  when timing the first load (default 1)
//   CHROMIUM       browser binary (default /usr/bin/chromium)
//
// Prints "ok - STEP" per step and JSON lines for measurements; exits
// non-zero at the first failing step.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => process.env[name] ?? fallback;
const CONSOLE_URL = env("CONSOLE_URL", "http://127.0.0.1:50180").replace(/\/$/, "");
const GRPC_ADDRESS = env("GRPC_ADDRESS", "127.0.0.1:50151");
const ADMIN_TOKEN = env("ADMIN_TOKEN", "");
const EDITOR_TOKEN = env("EDITOR_TOKEN", "");
const READER_TOKEN = env("READER_TOKEN", "");
const SHOTS_DIR = env("SHOTS_DIR", join(here, "shots"));
const EXPECT_FLAGS = Number(env("EXPECT_FLAGS_AT_LEAST", "1"));
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");

// The generated descriptors are TypeScript: transpile them once with the
// console's esbuild next to this script, so their imports resolve here.
async function loadProto() {
  const { transform } = await import(join(here, "../../console/node_modules/esbuild/lib/main.js"));
  const { readFileSync } = await import("node:fs");
  const source = readFileSync(join(here, "../../console/src/gen/vexil/v1/flags_pb.ts"), "utf8");
  const { code } = await transform(source, { loader: "ts", format: "esm" });
  mkdirSync(join(here, ".gen"), { recursive: true });
  const out = join(here, ".gen/flags_pb.mjs");
  writeFileSync(out, code);
  return import(out);
}

const pb = await loadProto();
const transport = createGrpcTransport({
  baseUrl: `http://${GRPC_ADDRESS}`,
  httpVersion: "2",
  interceptors: [(next) => (req) => {
    if (ADMIN_TOKEN) req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`);
    else req.header.set("x-actor", "console-test-grpc");
    return next(req);
  }],
});
const flagService = createClient(pb.FlagService, transport);
const evaluation = createClient(pb.EvaluationService, transport);

let failed = false;
async function step(name, fn) {
  if (failed) return;
  try {
    const note = await fn();
    console.log(`ok - ${name}${note ? ` (${note})` : ""}`);
  } catch (err) {
    failed = true;
    console.log(`not ok - ${name}: ${err?.stack ?? err}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
const tid = (id) => `[data-testid="${id}"]`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});

async function newPage(viewport = { width: 1280, height: 800 }) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(viewport);
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (err) => console.log(`# page error: ${err.message}`));
  return page;
}

async function signIn(page, token) {
  await page.goto(`${CONSOLE_URL}/`, { waitUntil: "load" });
  if (token) {
    await page.waitForSelector(tid("token-input"));
    await page.type(tid("token-input"), token);
    await page.click(tid("sign-in"));
  }
  await page.waitForSelector(tid("caller"));
  return page.$eval(tid("caller"), (el) => el.textContent);
}

async function go(page, hash, selector) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  if (selector) await page.waitForSelector(selector);
}

async function text(page, selector) {
  return page.$eval(selector, (el) => el.textContent ?? "");
}

async function fill(page, selector, value) {
  await page.waitForSelector(selector);
  await page.$eval(selector, (el) => { el.focus(); el.select?.(); });
  await page.keyboard.press("Backspace");
  await page.type(selector, value);
}

const stamp = Date.now().toString(36);
const FLAG = `console-test.${stamp}`;
const BAD = `console-test-bad.${stamp}`;
// Company for the screenshots: flags of every kind, one long expired,
// a name callers ask for that is no flag, and the test's flag back on.
const DEMO = [
  { name: `console-test.checkout-v2.${stamp}`, description: "One-page checkout", enabled: true, percentage: 25,
    environments: ["staging", "prod"], environmentOverrides: { staging: true }, tags: ["checkout", "web"] },
  { name: `console-test.dark-mode.${stamp}`, description: "Dark theme for the dashboard", enabled: true, percentage: 100,
    tags: ["ui"] },
  { name: `console-test.legacy-search.${stamp}`, description: "Old search backend, to remove", enabled: true,
    percentage: 100, expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) - 86_400 * 3), nanos: 0 }, tags: ["search"] },
  { name: `console-test.pricing-banner.${stamp}`, description: "Pricing banner copy", type: pb.FlagType.STRING,
    variants: [
      { name: "control", value: { value: { case: "stringValue", value: "See plans" } } },
      { name: "urgent", value: { value: { case: "stringValue", value: "Prices rise Monday" } } },
    ],
    fallthrough: { kind: { case: "split", value: { weights: [{ variant: "control", weight: 5000 }, { variant: "urgent", weight: 5000 }] } } },
    enabled: true, tags: ["growth"] },
];

const pageA = await newPage();

try {
  await step(ADMIN_TOKEN ? "sign in with the admin token" : "open without a token, with the banner", async () => {
    const who = await signIn(pageA, ADMIN_TOKEN);
    if (ADMIN_TOKEN) assert(/admin/.test(who), `caller shows "${who}", expected the admin role`);
    else assert(await pageA.$(tid("open-banner")), "no open-banner on a server without authentication");
    return who.trim();
  });

  await step("create a STRING flag with two variants, a rule and a fallthrough", async () => {
    await go(pageA, "#/new", tid("field-name"));
    await pageA.select(tid("field-type"), String(pb.FlagType.STRING));
    await fill(pageA, tid("field-name"), FLAG);
    await fill(pageA, tid("field-description"), "Created by the console browser test");
    await pageA.click(tid("add-variant"));
    await pageA.click(tid("add-variant"));
    await fill(pageA, tid("variant-name-0"), "a");
    await fill(pageA, tid("variant-value-0"), "alpha");
    await fill(pageA, tid("variant-name-1"), "b");
    await fill(pageA, tid("variant-value-1"), "beta");
    await pageA.click(tid("add-rule"));
    await fill(pageA, tid("rule-0-clause-0-attribute"), "plan");
    await pageA.select(tid("rule-0-clause-0-op"), String(pb.Operator.IN));
    await fill(pageA, tid("rule-0-clause-0-values"), "pro");
    await pageA.select(tid("rule-0-serve"), "b");
    await pageA.select(tid("fallthrough"), "a");
    await pageA.click(tid("save"));
    await pageA.waitForFunction((name) => location.hash === `#/flags/${encodeURIComponent(name)}`, {}, FLAG);
    await pageA.waitForSelector(tid("flag-state"));
    const flag = await flagService.getFlag({ name: FLAG });
    assert(flag.type === pb.FlagType.STRING, `type ${flag.type}`);
    assert(flag.variants.map((v) => `${v.name}=${v.value?.value.value}`).join() === "a=alpha,b=beta", "variants differ");
    const clause = flag.rules[0]?.clauses[0];
    assert(clause?.attribute === "plan" && clause.op === pb.Operator.IN && clause.values[0]?.value.value === "pro", "rule clause differs");
    assert(flag.rules[0].serve?.kind.value === "b", "rule does not serve b");
    assert(flag.fallthrough?.kind.value === "a", "fallthrough is not a");
    return `${FLAG} at revision ${flag.revision}`;
  });

  await step("explain answers a typed context with the rule's variant", async () => {
    await go(pageA, `#/flags/${FLAG}/explain`, tid("explain-user"));
    await fill(pageA, tid("explain-user"), "user-1");
    await fill(pageA, tid("explain-context"), '{"plan": "pro", "seats": 12, "beta": true, "groups": ["x", "y"]}');
    await pageA.click(tid("explain-run"));
    await pageA.waitForSelector(tid("explain-result"));
    const result = await text(pageA, tid("explain-result"));
    assert(/rule match/.test(result), `explain result: ${result}`);
    assert((await text(pageA, tid("explain-variant"))) === "b", `variant is not b: ${result}`);
    assert((await text(pageA, tid("explain-enabled"))) === "on", "not on");
  });

  const pageB = await newPage();
  await step("a second session follows the list", async () => {
    await signIn(pageB, EDITOR_TOKEN || ADMIN_TOKEN);
    await go(pageB, `#/?q=${encodeURIComponent(FLAG)}`, tid(`flag-row-${FLAG}`));
  });

  await step("kill the flag from the list with a reason", async () => {
    await go(pageA, `#/?q=${encodeURIComponent(FLAG)}`, tid(`kill-${FLAG}`));
    await pageA.click(tid(`kill-${FLAG}`));
    await pageA.waitForSelector(`dialog ${tid("reason")}`);
    await pageA.type(tid("reason"), "browser test: kill switch");
    const start = Date.now();
    await pageA.click(tid("confirm"));
    await pageA.waitForFunction((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent === "killed", {}, `state-${FLAG}`);
    // The other session sees it live, highlighted.
    await pageB.waitForFunction(
      (row, state) => document.querySelector(`[data-testid="${row}"]`)?.classList.contains("changed")
        && document.querySelector(`[data-testid="${state}"]`)?.textContent === "killed",
      { timeout: 2000, polling: 50 }, `flag-row-${FLAG}`, `state-${FLAG}`,
    ).catch(() => { throw new Error("the second session did not show the change within 2 s"); });
    const ms = Date.now() - start;
    console.log(JSON.stringify({ metric: "live_update_ms", value: ms }));
    return `seen live after ${ms} ms`;
  });

  await step("Evaluate answers disabled after the kill", async () => {
    const r = await evaluation.evaluate({ flagName: FLAG, userId: "user-1", context: { plan: "pro" } });
    assert(!r.enabled && r.reason === pb.Reason.DISABLED, `enabled=${r.enabled} reason=${pb.Reason[r.reason]}`);
  });

  await step("the audit trail shows the kill with its reason and diff", async () => {
    await go(pageA, `#/flags/${FLAG}/audit`, tid("audit-entry"));
    const entry = await pageA.$(tid("audit-entry"));
    const all = await entry.evaluate((el) => el.textContent);
    assert(all.includes("browser test: kill switch"), `newest entry lacks the reason: ${all}`);
    const row = await entry.$eval(`${tid("diff")} tr[data-field="enabled"]`, (tr) => [tr.cells[1].textContent, tr.cells[2].textContent]);
    assert(row[0] === "true" && row[1] === "false", `enabled diff is ${row.join(" → ")}`);
  });

  await step("a concurrent change is reported, not overwritten", async () => {
    await go(pageA, `#/flags/${FLAG}`, tid("edit"));
    await pageA.click(tid("edit"));
    await fill(pageA, tid("field-description"), "edited in the browser");
    await fill(pageA, tid("field-reason"), "browser test: stale edit");
    const current = await flagService.getFlag({ name: FLAG });
    await flagService.updateFlag({
      flag: { name: FLAG, description: "changed over gRPC" },
      updateMask: { paths: ["description"] },
      reason: "browser test: concurrent change",
      expectedRevision: current.revision,
    });
    await pageA.click(tid("save"));
    await pageA.waitForSelector(tid("conflict"));
    const after = await flagService.getFlag({ name: FLAG });
    assert(after.description === "changed over gRPC", `description is now "${after.description}"`);
  });

  await step("a server validation error is shown on the field it names", async () => {
    await go(pageA, "#/new", tid("field-name"));
    await fill(pageA, tid("field-name"), BAD);
    await pageA.click(tid("add-rule"));
    await fill(pageA, tid("rule-0-clause-0-attribute"), "email");
    await pageA.select(tid("rule-0-clause-0-op"), String(pb.Operator.MATCHES));
    await fill(pageA, tid("rule-0-clause-0-values"), "([unclosed");
    await pageA.select(tid("rule-0-serve"), "on");
    await pageA.click(tid("save"));
    const el = await pageA.waitForSelector('[data-testid^="error-flag."]');
    const [id, message] = await el.evaluate((e) => [e.dataset.testid, e.textContent]);
    assert(id.startsWith("error-flag.rules[0]"), `error shown as ${id}: ${message}`);
    assert(!(await pageA.$(tid("form-error"))), "the field error was also shown at form level");
    const exists = await flagService.getFlag({ name: BAD }).then(() => true, () => false);
    assert(!exists, "the invalid flag was created");
    return `${id}: ${message}`;
  });

  await step("the metrics tab counts the test's evaluations", async () => {
    const n = 25;
    for (let i = 0; i < n; i++) await evaluation.evaluate({ flagName: FLAG, userId: `user-${i}`, context: { plan: "pro" } });
    let total = 0;
    for (let attempt = 0; attempt < 10 && total < n; attempt++) {
      await go(pageA, "#/", null);
      await go(pageA, `#/flags/${FLAG}/metrics`, tid("metrics-total"));
      total = Number((await text(pageA, tid("metrics-total"))).replace(/\D/g, ""));
      if (total < n) await sleep(1000);
    }
    assert(total >= n, `metrics-total shows ${total}, expected at least ${n}`);
    assert(await pageA.$(`svg${tid("metrics-chart")}[aria-label]`), "no labelled metrics chart");
    return `${total} evaluations`;
  });

  if (READER_TOKEN) {
    await step("a reader sees no edit controls", async () => {
      const reader = await newPage();
      const who = await signIn(reader, READER_TOKEN);
      await go(reader, `#/?q=${encodeURIComponent(FLAG)}`, tid(`flag-row-${FLAG}`));
      assert(!(await reader.$('[data-testid^="kill-"]')), "a kill button is shown to a reader");
      assert(!(await reader.$(tid("new-flag"))), "new-flag is shown to a reader");
      await go(reader, `#/flags/${FLAG}`, tid("flag-state"));
      assert(!(await reader.$(tid("edit"))) && !(await reader.$(tid("delete"))), "edit or delete shown to a reader");
      await go(reader, "#/segments", "h1");
      assert(!(await reader.$(tid("new-segment"))), "new-segment is shown to a reader");
      await go(reader, "#/groups", "h1");
      assert(!(await reader.$(tid("group-name"))), "the new-group form is shown to a reader");
      await reader.browserContext().close();
      return who.trim();
    });
  } else console.log("ok - a reader sees no edit controls # skip: no READER_TOKEN");

  await step("an admin creates and deletes a group", async () => {
    const group = `console-test-group-${stamp}`;
    await go(pageA, "#/groups", tid("group-name"));
    await fill(pageA, tid("group-name"), group);
    await fill(pageA, tid("group-description"), "Made by the browser test");
    await pageA.click('form[aria-label="New group"] button[type="submit"]');
    await pageA.waitForSelector(tid(`group-row-${group}`));
    const listed = (await flagService.listGroups({})).groups.map((g) => g.name);
    assert(listed.includes(group), `ListGroups lacks ${group}: ${listed}`);
    await pageA.click(`${tid(`group-row-${group}`)} button`);
    await pageA.click(`dialog ${tid("confirm")}`);
    await pageA.waitForFunction((id) => !document.querySelector(`[data-testid="${id}"]`), {}, `group-row-${group}`);
    const after = (await flagService.listGroups({})).groups.map((g) => g.name);
    assert(!after.includes(group), `${group} is still there`);
  });

  await step("a segment is created and deleted, with reasons", async () => {
    const segment = `console-test-segment-${stamp}`;
    await go(pageA, "#/new-segment", tid("segment-name"));
    await fill(pageA, tid("segment-name"), segment);
    await pageA.$eval(tid("segment-json"), (el) => { el.value = ""; });
    await pageA.type(tid("segment-json"), '{"description": "Beta testers", "included": ["user-1", "user-2"]}');
    await pageA.click(tid("save"));
    await pageA.type(`dialog ${tid("reason")}`, "browser test: segment");
    await pageA.click(`dialog ${tid("confirm")}`);
    await pageA.waitForFunction((name) => location.hash === `#/segments/${name}`, {}, segment);
    const created = await flagService.getSegment({ name: segment });
    assert(created.included.join() === "user-1,user-2" && created.description === "Beta testers", "segment differs");
    await pageA.waitForSelector(tid("delete"));
    await pageA.click(tid("delete"));
    await pageA.type(`dialog ${tid("reason")}`, "browser test: segment gone");
    await pageA.click(`dialog ${tid("confirm")}`);
    await pageA.waitForFunction(() => location.hash === "#/segments");
    const gone = await flagService.getSegment({ name: segment }).then(() => false, () => true);
    assert(gone, `${segment} still exists`);
  });

  await step("the kill switch works from the keyboard", async () => {
    await go(pageA, `#/?q=${encodeURIComponent(FLAG)}`, tid(`kill-${FLAG}`));
    await pageA.focus(tid(`kill-${FLAG}`));
    await pageA.keyboard.press("Enter");
    await pageA.waitForSelector(`dialog[open] ${tid("reason")}`);
    const focused = await pageA.evaluate(() => document.activeElement?.dataset.testid);
    assert(focused === "reason", `the dialog opened with focus on ${focused}, not the reason`);
    await pageA.keyboard.press("Escape");
    // The dialog leaves the document before it gives focus back.
    await pageA.waitForFunction((id) => !document.querySelector("dialog[open]")
      && document.activeElement?.getAttribute("data-testid") === id, { timeout: 2000 }, `kill-${FLAG}`)
      .catch(async () => {
        const at = await pageA.evaluate(() => document.activeElement?.outerHTML.slice(0, 80));
        throw new Error(`focus is on ${at} after Escape, not back on the button`);
      });
  });

  await step("no WCAG 2 A/AA violations (axe-core) on any page, light and dark", async () => {
    const page = await newPage();
    // Only to inject axe-core: the console's CSP allows no other script.
    await page.setBypassCSP(true);
    await signIn(page, ADMIN_TOKEN);
    const pages = [
      ["#/", '[data-testid^="flag-row-"]'],
      [`#/flags/${FLAG}`, tid("flag-state")],
      [`#/flags/${FLAG}/audit`, tid("audit-entry")],
      [`#/flags/${FLAG}/metrics`, tid("metrics-chart")],
      [`#/flags/${FLAG}/explain`, tid("explain-user")],
      ["#/new", tid("field-name")],
      ["#/hygiene", "h2"],
      ["#/segments", "h1"],
      ["#/groups", "h1"],
    ];
    const found = [];
    for (const scheme of ["light", "dark"]) {
      await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: scheme }]);
      for (const [hash, selector] of pages) {
        await go(page, "#/hygiene", "h2");
        await go(page, hash, selector);
        await sleep(200);
        if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) {
          await page.addScriptTag({ path: join(here, "node_modules/axe-core/axe.min.js") });
        }
        const violations = await page.evaluate(async () =>
          (await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] })).violations
            .map((v) => `${v.id} (${v.impact}) at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`));
        found.push(...violations.map((v) => `${scheme} ${hash}: ${v}`));
      }
    }
    await page.browserContext().close();
    assert(found.length === 0, found.join("\n"));
    return `${pages.length} pages × 2 colour schemes`;
  });

  await step("flags of every kind for the screenshots", async () => {
    for (const flag of DEMO) await flagService.createFlag({ flag, reason: "browser test: screenshots" });
    await flagService.updateFlag({
      flag: { name: FLAG, enabled: true }, updateMask: { paths: ["enabled"] },
      reason: "browser test: back on for the screenshots",
    });
    for (let i = 0; i < 40; i++) {
      await evaluation.evaluate({ flagName: DEMO[3].name, userId: `user-${i}` });
      await evaluation.evaluate({ flagName: FLAG, userId: `user-${i}`, context: { plan: i % 3 ? "free" : "pro" } });
    }
    await evaluation.evaluate({ flagName: `console-test.chekout-v2.${stamp}`, userId: "user-1" });
    return `${DEMO.length} flags`;
  });

  await step("screenshots at desktop and phone sizes", async () => {
    mkdirSync(SHOTS_DIR, { recursive: true });
    // A fresh page: no status line left over from the steps above.
    await pageA.reload({ waitUntil: "load" });
    await pageA.waitForSelector(tid("caller"));
    const shots = [
      ["flag-list", `#/?q=${encodeURIComponent("console-test")}`, '[data-testid^="flag-row-"]'],
      ["flag-page", `#/flags/${FLAG}`, tid("flag-state")],
      ["audit", `#/flags/${FLAG}/audit`, tid("audit-entry")],
      ["metrics", `#/flags/${FLAG}/metrics`, tid("metrics-chart")],
      ["explain", `#/flags/${FLAG}/explain`, tid("explain-user")],
      ["hygiene", "#/hygiene", "h2"],
    ];
    for (const [size, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 360, height: 740, isMobile: true, hasTouch: true }]]) {
      await pageA.setViewport(viewport);
      for (const [name, hash, selector] of shots) {
        await go(pageA, "#/segments", null);
        await go(pageA, hash, selector);
        if (name === "explain") {
          await fill(pageA, tid("explain-user"), "user-1");
          await fill(pageA, tid("explain-context"), '{"plan": "pro"}');
          await pageA.click(tid("explain-run"));
          await pageA.waitForSelector(tid("explain-result"));
        }
        await sleep(150);
        await pageA.screenshot({ path: join(SHOTS_DIR, `${name}-${size}.png`), fullPage: name !== "flag-list" });
      }
      // Nothing may stick out sideways on a phone.
      if (size === "phone") {
        await go(pageA, `#/?q=${encodeURIComponent("console-test")}`, '[data-testid^="flag-row-"]');
        const wide = await pageA.evaluate(() => document.documentElement.scrollWidth);
        assert(wide <= 360, `the flag list is ${wide} px wide at 360 px`);
      }
    }
    await pageA.setViewport({ width: 1280, height: 800 });
    return SHOTS_DIR;
  });

  await step("first load: bytes transferred and time to the first page of flags", async () => {
    const page = await newPage();
    if (ADMIN_TOKEN) await page.evaluateOnNewDocument((t) => sessionStorage.setItem("vexil.token", t), ADMIN_TOKEN);
    const cdp = await page.createCDPSession();
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    await cdp.send("Network.setExtraHTTPHeaders", { headers: { "Accept-Encoding": "gzip" } });
    let bytes = 0;
    cdp.on("Network.loadingFinished", (e) => { bytes += e.encodedDataLength; });
    const start = Date.now();
    await page.goto(`${CONSOLE_URL}/`, { waitUntil: "domcontentloaded" });
    const want = Math.min(EXPECT_FLAGS, 50);
    await page.waitForFunction(
      (n, total) => document.querySelectorAll('[data-testid^="flag-row-"]').length >= n
        && Number(document.querySelector('[data-testid="total"]')?.getAttribute("data-total") ?? 0) >= total,
      { timeout: 30_000, polling: 20 }, want, EXPECT_FLAGS,
    );
    const ms = Date.now() - start;
    // Static assets only: the app's own calls stream on.
    await sleep(300);
    const documentBytes = bytes;
    console.log(JSON.stringify({ metric: "first_load_bytes", value: documentBytes }));
    console.log(JSON.stringify({ metric: "first_flags_ms", value: ms, flags_at_least: EXPECT_FLAGS }));
    await page.browserContext().close();
    return `${documentBytes} bytes, ${ms} ms`;
  });
} finally {
  for (const { name } of [{ name: FLAG }, ...DEMO]) {
    await flagService.deleteFlag({ name, reason: "browser test: clean up" }).catch(() => {});
  }
  await browser.close();
}
process.exit(failed ? 1 : 0);
