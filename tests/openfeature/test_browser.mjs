// A real browser (Debian's headless Chromium, driven by puppeteer-core)
// opens a page that uses @openfeature/web-sdk with the unmodified
// @openfeature/ofrep-web-provider (bundled with esbuild), served from
// another origin than OFREP (so CORS applies). It must show the flag's
// value for a user, then the new value after a change through Vexil's API.
// Environment: VEXIL_ADDRESS, OFREP_URL, PAGE_PORT, CHROMIUM (optional).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import esbuild from 'esbuild';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const definition = protoLoader.loadSync('vexil/v1/flags.proto', {
  includeDirs: [path.join(here, '..', '..', 'proto')],
  keepCase: true,
  longs: Number,
});
const vexilPb = grpc.loadPackageDefinition(definition).vexil.v1;
const flagsApi = new vexilPb.FlagService(process.env.VEXIL_ADDRESS, grpc.credentials.createInsecure());
const createFlag = promisify(flagsApi.CreateFlag.bind(flagsApi));
const updateFlag = promisify(flagsApi.UpdateFlag.bind(flagsApi));
const evaluationApi = new vexilPb.EvaluationService(process.env.VEXIL_ADDRESS, grpc.credentials.createInsecure());
const evaluate = promisify(evaluationApi.Evaluate.bind(evaluationApi));

// Typed flags from the shared vectors (created by the Python suite, which
// runs first), with the getter of their type.
const TYPED = [
  ['typed.string', 'string'],
  ['typed.int', 'number'],
  ['typed.float-frac', 'number'],
  ['typed.object', 'object'],
  ['typed.per-env', 'string'],
];

const bundle = await esbuild.build({
  entryPoints: [path.join(here, 'browser', 'page.js')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  write: false,
});
const files = {
  '/': ['text/html', await readFile(path.join(here, 'browser', 'index.html'))],
  '/bundle.js': ['text/javascript', bundle.outputFiles[0].contents],
};
const server = http.createServer((request, response) => {
  const file = files[new URL(request.url, 'http://page').pathname];
  if (!file) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': file[0] }).end(file[1]);
});
const pagePort = Number(process.env.PAGE_PORT);
await new Promise((resolve) => server.listen(pagePort, '127.0.0.1', resolve));

const flag = `of-browser-${randomUUID().slice(0, 8)}.new-dashboard`;
await createFlag({ flag: { name: flag, enabled: true, percentage: 100, environments: ['production'] } });

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on('console', (message) => console_.push(message.text()));
  const query = new URLSearchParams({
    ofrep: process.env.OFREP_URL,
    flag,
    user: 'browser-user-1',
    typed: JSON.stringify(TYPED),
  });
  await page.goto(`http://127.0.0.1:${pagePort}/?${query}`);
  try {
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
  } catch (err) {
    throw new Error(`the page did not get ready: ${console_.join(' | ')}`, { cause: err });
  }
  const shown = () => page.$eval('#value', (element) => element.textContent);
  assert.equal(await shown(), 'true');
  console.log('browser: shows true for the new flag');

  // Each typed flag: Evaluate's variant and value, for the page's user.
  const typed = await page.evaluate(() => window.typedAnswers);
  for (const [name] of TYPED) {
    const answer = await evaluate({ flag_name: name, user_id: 'browser-user-1', environment: 'production' });
    const got = typed[name];
    assert.equal(got.variant, answer.variant, name);
    const value = answer.value;
    if (value.object_value) {
      assert.deepEqual(got.value, { theme: 'dark', limits: { rps: 100, burst: 2.5 }, features: ['a', 'b'], on: true }, name);
    } else {
      const wanted = value.string_value ?? value.int_value ?? value.float_value;
      assert.equal(got.value, wanted, name);
    }
  }
  console.log(`browser: ${TYPED.length} typed flags (string, integer, float, object) as Evaluate answers them`);

  const started = Date.now();
  await updateFlag({ flag: { name: flag, enabled: false }, update_mask: { paths: ['enabled'] }, reason: 'browser test' });
  await page.waitForFunction(() => document.getElementById('value').textContent === 'false', { timeout: 15_000 });
  const reason = await page.$eval('#value', (element) => element.dataset.reason);
  assert.ok(['STATIC', 'CACHED'].includes(reason), reason);
  console.log(`browser: shows false (${reason}) ${Date.now() - started} ms after the kill switch, pushed over SSE`);
} finally {
  await browser.close();
  server.close();
  flagsApi.close();
  evaluationApi.close();
}
console.log('browser: ok');
