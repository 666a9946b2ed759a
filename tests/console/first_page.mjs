// The console's first load, measured in headless Chromium for
// benches/console.rs: RUNS cold loads of CONSOLE_URL (no cache), each
// timed by the page's own clock from the start of navigation until the
// first page of flags is in the document with the total matching
// EXPECT_FLAGS (a MutationObserver notes the moment, so the driver's
// polling adds nothing); prints one JSON line per load with the bytes
// transferred (compressed, as on the wire).
import puppeteer from "puppeteer-core";

const url = process.env.CONSOLE_URL;
const expected = Number(process.env.EXPECT_FLAGS ?? "1");
const runs = Number(process.env.RUNS ?? "5");
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  for (let run = 0; run < runs; run++) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const cdp = await page.createCDPSession();
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    await page.evaluateOnNewDocument((total) => {
      new MutationObserver((_, observer) => {
        const drawn = document.querySelector('[data-testid^="flag-row-"]')
          && Number(document.querySelector('[data-testid="total"]')?.getAttribute("data-total")) === total;
        if (drawn) {
          window.__firstPage = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true, attributes: true });
    }, expected);
    let bytes = 0;
    cdp.on("Network.loadingFinished", (event) => { bytes += event.encodedDataLength; });
    await page.goto(`${url}/`, { waitUntil: "domcontentloaded" });
    const ms = await (await page.waitForFunction(() => window.__firstPage, { timeout: 60_000 })).jsonValue();
    console.log(JSON.stringify({ run, first_page_ms: ms, bytes }));
    await context.close();
  }
} finally {
  await browser.close();
}
