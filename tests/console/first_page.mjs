// The console's first page, measured in headless Chromium for
// benches/console.rs. Each load is timed by the page's own clock, from the
// start of navigation until the first page of flags is in the document
// with the total matching EXPECT_FLAGS (a MutationObserver notes the
// moment, so the driver's polling adds nothing):
// - "cold": RUNS loads, each in a new browser context with the cache off
//   (a first visit), with the bytes transferred (compressed, as on the
//   wire);
// - "warm": RUNS reloads in one context after a first visit (the page's
//   script and style come from the cache: a returning user).
// Prints one JSON line per load.
import puppeteer from "puppeteer-core";

const url = process.env.CONSOLE_URL;
const expected = Number(process.env.EXPECT_FLAGS ?? "1");
const runs = Number(process.env.RUNS ?? "5");

/** Notes when the first page of flags is drawn, as `window.__firstPage`. */
function noteFirstPage(total) {
  new MutationObserver((_, observer) => {
    const drawn = document.querySelector('[data-testid^="flag-row-"]')
      && Number(document.querySelector('[data-testid="total"]')?.getAttribute("data-total")) === total;
    if (drawn) {
      window.__firstPage = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true, attributes: true });
}

async function load(page) {
  await page.goto(`${url}/`, { waitUntil: "domcontentloaded" });
  return (await page.waitForFunction(() => window.__firstPage, { timeout: 60_000 })).jsonValue();
}

async function newPage(browser, cache) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  await page.evaluateOnNewDocument(noteFirstPage, expected);
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: !cache });
  return { context, page, cdp };
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  for (let run = 0; run < runs; run++) {
    const { context, page, cdp } = await newPage(browser, false);
    let bytes = 0;
    cdp.on("Network.loadingFinished", (event) => { bytes += event.encodedDataLength; });
    const ms = await load(page);
    console.log(JSON.stringify({ mode: "cold", run, first_page_ms: ms, bytes }));
    await context.close();
  }
  const { context, page } = await newPage(browser, true);
  await load(page);
  for (let run = 0; run < runs; run++) {
    const ms = await load(page);
    console.log(JSON.stringify({ mode: "warm", run, first_page_ms: ms }));
  }
  await context.close();
} finally {
  await browser.close();
}
