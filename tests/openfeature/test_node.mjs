// Node's unmodified OpenFeature providers against a running Vexil: flagd
// (RPC mode) and OFREP, compared with Vexil's own Evaluate.
// Environment: VEXIL_ADDRESS (gRPC host:port), FLAGD_PORT, OFREP_URL.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { FlagdProvider } from '@openfeature/flagd-provider';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const definition = protoLoader.loadSync('vexil/v1/flags.proto', {
  includeDirs: [path.join(root, 'proto')],
  keepCase: true,
  defaults: true,
  enums: String,
});
const vexilPb = grpc.loadPackageDefinition(definition).vexil.v1;
const address = process.env.VEXIL_ADDRESS;
const flagsApi = new vexilPb.FlagService(address, grpc.credentials.createInsecure());
const evaluationApi = new vexilPb.EvaluationService(address, grpc.credentials.createInsecure());
const createFlag = promisify(flagsApi.CreateFlag.bind(flagsApi));
const updateFlag = promisify(flagsApi.UpdateFlag.bind(flagsApi));
const evaluate = promisify(evaluationApi.Evaluate.bind(evaluationApi));

const USERS = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
const ENVIRONMENTS = ['production', 'staging', undefined];
const DAY = 86_400;
const timestamp = (days) => ({ seconds: Math.floor(Date.now() / 1000) + days * DAY, nanos: 0 });

async function createRuleFlags(language) {
  const prefix = `of-${language}-${randomUUID().slice(0, 8)}`;
  const specs = {
    on: [{ enabled: true, percentage: 100 }, 'STATIC'],
    off: [{ enabled: true, percentage: 0 }, 'STATIC'],
    killed: [{ enabled: false, percentage: 100, whitelist: ['user-1'] }, 'KILLED'],
    rollout: [{ enabled: true, percentage: 37.5 }, 'TARGETING_MATCH'],
    lists: [{ enabled: true, percentage: 50, whitelist: USERS.slice(0, 10), blacklist: ['user-11', 'user-3'] }, 'TARGETING_MATCH'],
    envs: [{ enabled: true, percentage: 100, environments: ['production'] }, 'TARGETING_MATCH'],
    override: [{ enabled: true, percentage: 0, environment_overrides: { staging: true } }, 'TARGETING_MATCH'],
    later: [{ enabled: true, percentage: 100, starts_at: timestamp(1) }, 'TARGETING_MATCH'],
    expired: [{ enabled: true, percentage: 100, expires_at: timestamp(-1) }, 'STATIC'],
    window: [{ enabled: true, percentage: 100, starts_at: timestamp(-1), expires_at: timestamp(1) }, 'TARGETING_MATCH'],
  };
  const kinds = {};
  for (const [suffix, [spec, kind]] of Object.entries(specs)) {
    const name = `${prefix}.${suffix}`;
    await createFlag({ flag: { name, ...spec } });
    kinds[name] = kind;
  }
  return { prefix, kinds };
}

const context = (user, environment) =>
  environment === undefined ? { targetingKey: user } : { targetingKey: user, environment };

async function checkRules(client, kinds, protocol) {
  let checked = 0;
  let statics = 0;
  for (const [name, kind] of Object.entries(kinds)) {
    const users = name.endsWith('.rollout') ? USERS : USERS.slice(0, 40);
    for (const environment of ENVIRONMENTS) {
      for (const user of users) {
        const answer = await evaluate({ flag_name: name, user_id: user, environment: environment ?? '' });
        for (const fallback of [true, false]) {
          const details = await client.getBooleanDetails(name, fallback, context(user, environment));
          const where = `${protocol} ${name} ${user} ${environment}: ${JSON.stringify(details)}`;
          assert.equal(details.errorCode, undefined, where);
          if (kind === 'KILLED') {
            // Off whatever the caller's default: STATIC, not DISABLED
            // (after which providers return the default).
            assert.equal(answer.reason, 'REASON_DISABLED', where);
            assert.ok(['STATIC', 'CACHED'].includes(details.reason), where);
            assert.equal(details.value, false, where);
            continue;
          }
          assert.equal(details.value, answer.enabled, where);
          assert.equal(details.variant, answer.enabled ? 'on' : 'off', where);
          if (kind === 'STATIC') {
            assert.ok(['STATIC', 'CACHED'].includes(details.reason), where);
            statics += details.reason === 'STATIC';
          } else {
            assert.equal(details.reason, 'TARGETING_MATCH', where);
          }
          checked += 1;
        }
      }
    }
  }
  assert.ok(statics > 0);
  console.log(`${protocol}: ${checked} answers equal Evaluate`);
}

async function checkUnknown(client, protocol) {
  const details = await client.getBooleanDetails('no-such-flag-anywhere', true, context('u1'));
  assert.equal(details.value, true);
  assert.equal(details.errorCode, 'FLAG_NOT_FOUND', JSON.stringify(details));
  console.log(`${protocol}: unknown flag -> default with FLAG_NOT_FOUND`);
}

// The shared evaluation vectors (docs/eval-vectors), whose flags the
// Python suite created: every usable case through this provider, with the
// getter of the flag's type (see typed_vectors.py for what is skipped).
const VECTOR_TIME = '2026-06-01T00:00:00Z';
const STATIC = ['STATIC', 'CACHED'];
const OPENFEATURE_REASONS = {
  SPLIT: ['SPLIT', ...STATIC],
  DEFAULT: ['DEFAULT', ...STATIC],
  DISABLED: STATIC,
  EXPIRED: STATIC,
  PERCENTAGE_ROLLOUT: ['TARGETING_MATCH', ...STATIC],
  OUTSIDE_ROLLOUT: ['TARGETING_MATCH', ...STATIC],
};
const DEFAULTS = { boolean: true, string: 'default', int: -7, float: -7.5, object: { default: true } };

async function checkVectors(client, protocol) {
  const dir = path.join(root, 'docs', 'eval-vectors');
  let checked = 0;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const document = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const types = Object.fromEntries(
      document.state.flags.filter((f) => f.api !== false).map((f) => [f.name, f.type ?? 'boolean']),
    );
    for (const test of document.tests) {
      const { context: ctx, expected } = test;
      if (ctx.at !== VECTOR_TIME) continue;
      if (!(test.flag in types) && expected.reason !== 'FLAG_NOT_FOUND') continue;
      const type = types[test.flag] ?? 'boolean';
      const evaluationContext = { ...(ctx.attributes ?? {}) };
      if (ctx.user_id) evaluationContext.targetingKey = ctx.user_id;
      if (ctx.environment) evaluationContext.environment = ctx.environment;
      const fallback = DEFAULTS[type];
      const getter = {
        boolean: 'getBooleanDetails', string: 'getStringDetails', int: 'getNumberDetails',
        float: 'getNumberDetails', object: 'getObjectDetails',
      }[type];
      const details = await client[getter](test.flag, fallback, evaluationContext);
      const where = `${protocol} ${file}: ${test.description}: ${JSON.stringify(details)}`;
      checked += 1;
      if (expected.reason === 'FLAG_NOT_FOUND') {
        assert.deepEqual(details.value, fallback, where);
        assert.ok(details.errorCode, where);
        continue;
      }
      if (details.errorCode === 'TARGETING_KEY_MISSING') {
        assert.ok(protocol === 'ofrep' && !ctx.user_id, where);
        continue;
      }
      if (expected.value === null) {
        assert.deepEqual(details.value, fallback, where);
        continue;
      }
      assert.equal(details.errorCode, undefined, where);
      assert.deepEqual(details.value, expected.value, where);
      assert.equal(details.variant, expected.variant, where);
      if (details.flagMetadata?.vexilReason !== undefined) {
        assert.equal(details.flagMetadata.vexilReason, expected.reason, where);
      }
      const allowed = OPENFEATURE_REASONS[expected.reason] ?? ['TARGETING_MATCH'];
      assert.ok(allowed.includes(details.reason), where);
    }
  }
  assert.ok(checked >= 300, `only ${checked} vectors checked`);
  console.log(`${protocol}: ${checked} evaluation vectors answered as the files say`);
}

async function flagd() {
  const port = Number(process.env.FLAGD_PORT);
  await OpenFeature.setProviderAndWait('flagd', new FlagdProvider({ host: '127.0.0.1', port, resolverType: 'rpc' }));
  const client = OpenFeature.getClient('flagd');
  const { prefix, kinds } = await createRuleFlags('node-flagd');
  await checkRules(client, kinds, 'flagd');
  await checkUnknown(client, 'flagd');
  const mismatch = await client.getStringDetails(`${prefix}.rollout`, 'fallback', context('u1'));
  assert.equal(mismatch.value, 'fallback');
  assert.equal(mismatch.errorCode, 'TYPE_MISMATCH', JSON.stringify(mismatch));
  await checkVectors(client, 'flagd');

  await OpenFeature.setProviderAndWait(
    'flagd-staging',
    new FlagdProvider({ host: '127.0.0.1', port, resolverType: 'rpc', selector: 'staging' }),
  );
  const staged = OpenFeature.getClient('flagd-staging');
  assert.equal(await staged.getBooleanValue(`${prefix}.override`, false, { targetingKey: 'u1' }), true);
  assert.equal(await staged.getBooleanValue(`${prefix}.override`, true, context('u1', 'production')), false);

  const name = `${prefix}.on`;
  assert.equal(await client.getBooleanValue(name, false, context('u1')), true);
  const cached = await client.getBooleanDetails(name, false, context('u1'));
  assert.equal(cached.reason, 'CACHED', JSON.stringify(cached));
  const changed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no configuration change for ${name}`)), 10_000);
    client.addHandler(ProviderEvents.ConfigurationChanged, (details) => {
      if (details?.flagsChanged?.includes(name)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await updateFlag({ flag: { name, percentage: 0 }, update_mask: { paths: ['percentage'] }, reason: 'OpenFeature suite' });
  await changed;
  const after = await client.getBooleanDetails(name, true, context('u1'));
  assert.equal(after.value, false, JSON.stringify(after));
  assert.equal(after.reason, 'STATIC', JSON.stringify(after));
  console.log('flagd: configuration change handler fired; the next evaluation had the new value');
}

async function ofrep() {
  await OpenFeature.setProviderAndWait('ofrep', new OFREPProvider({ baseUrl: process.env.OFREP_URL }));
  const client = OpenFeature.getClient('ofrep');
  await checkVectors(client, 'ofrep');
  const { prefix, kinds } = await createRuleFlags('node-ofrep');
  await checkRules(client, kinds, 'ofrep');
  await checkUnknown(client, 'ofrep');
  assert.equal(await client.getBooleanValue(`${prefix}.on`, false, {}), true);
  const missing = await client.getBooleanDetails(`${prefix}.rollout`, true, {});
  assert.equal(missing.value, true);
  assert.equal(missing.errorCode, 'TARGETING_KEY_MISSING', JSON.stringify(missing));
  console.log('ofrep: no targeting key -> TARGETING_KEY_MISSING where the user decides');

  // Bulk: an ETag, 304 while nothing changed, a new ETag after a change.
  const bulk = `${process.env.OFREP_URL}/ofrep/v1/evaluate/flags`;
  const body = JSON.stringify({ context: { targetingKey: 'user-7', environment: 'production' } });
  const post = (headers = {}) =>
    fetch(bulk, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const first = await post();
  assert.equal(first.status, 200);
  const etag = first.headers.get('etag');
  const answers = Object.fromEntries((await first.json()).flags.map((flag) => [flag.key, flag]));
  for (const name of Object.keys(kinds)) {
    const answer = await evaluate({ flag_name: name, user_id: 'user-7', environment: 'production' });
    assert.equal(answers[name].value, answer.enabled, name);
  }
  assert.equal((await post({ 'if-none-match': etag })).status, 304);
  const rollout = `${prefix}.rollout`;
  await updateFlag({ flag: { name: rollout, percentage: 100 }, update_mask: { paths: ['percentage'] }, reason: 'OpenFeature suite' });
  let after;
  for (const started = Date.now(); Date.now() - started < 10_000; ) {
    after = await post({ 'if-none-match': etag });
    if (after.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(after.status, 200);
  assert.notEqual(after.headers.get('etag'), etag);
  const changed = (await after.json()).flags.find((flag) => flag.key === rollout);
  assert.equal(changed.value, true);
  console.log('ofrep: bulk 304 while unchanged, 200 with a new ETag after a change');
}

await flagd();
await ofrep();
await OpenFeature.close();
flagsApi.close();
evaluationApi.close();
console.log('node providers: ok');
