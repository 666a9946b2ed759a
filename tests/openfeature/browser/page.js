// A browser app using OpenFeature's web SDK with the unmodified OFREP web
// provider: shows one flag's value for one user, and follows changes.
// Query: ?ofrep=<OFREP base URL>&flag=<key>&user=<targeting key>
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const params = new URLSearchParams(location.search);
const flag = params.get('flag');
const value = document.getElementById('value');
const changes = document.getElementById('changes');
let changed = 0;

function render() {
  const details = OpenFeature.getClient().getBooleanDetails(flag, false);
  value.textContent = String(details.value);
  value.dataset.reason = details.reason ?? '';
}

OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, () => {
  changed += 1;
  changes.textContent = String(changed);
  render();
});
await OpenFeature.setContext({ targetingKey: params.get('user'), environment: 'production' });
// Polling every 10 minutes: a change shown sooner came over the SSE stream.
await OpenFeature.setProviderAndWait(
  new OFREPWebProvider({ baseUrl: params.get('ofrep'), pollInterval: 600_000 }),
);
render();
// Typed flags (the shared vectors' flags, when the page is asked for them):
// each through the getter of its type, for the test to compare.
const typed = params.get('typed');
if (typed) {
  const client = OpenFeature.getClient();
  window.typedAnswers = Object.fromEntries(
    JSON.parse(typed).map(([name, type]) => {
      const details = {
        string: () => client.getStringDetails(name, 'default'),
        number: () => client.getNumberDetails(name, -7),
        object: () => client.getObjectDetails(name, { default: true }),
      }[type]();
      return [name, { value: details.value, variant: details.variant, reason: details.reason }];
    }),
  );
}
document.body.dataset.ready = 'true';
