"""Python's unmodified OpenFeature providers against a running Vexil:
flagd (RPC resolver) and OFREP, compared with Vexil's own Evaluate.

Environment: VEXIL_ADDRESS (gRPC host:port), FLAGD_PORT, OFREP_URL."""

import os
import threading
import time

import requests
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode

import typed_vectors
from vexil_api import ENVIRONMENTS, USERS, Vexil, create_rule_flags

VEXIL = Vexil(os.environ["VEXIL_ADDRESS"])
FLAGD_PORT = int(os.environ["FLAGD_PORT"])
OFREP_URL = os.environ["OFREP_URL"]


def context(user, environment):
    attributes = {} if environment is None else {"environment": environment}
    return EvaluationContext(targeting_key=user, attributes=attributes)


def check_rules(client, kinds, protocol):
    """Every rule type for a spread of users and environments; the rollout
    for 1,000 users. A killed flag answers off over both protocols, whatever
    the caller's default (STATIC, not DISABLED, which providers replace by
    the default)."""
    checked = 0
    statics = 0
    for name, kind in kinds.items():
        users = USERS if name.endswith(".rollout") else USERS[:40]
        for environment in ENVIRONMENTS:
            for user in users:
                enabled, vexil_reason = VEXIL.evaluate(name, user, environment)
                for default in (True, False):
                    details = client.get_boolean_details(name, default, context(user, environment))
                    where = f"{protocol} {name} {user} {environment}: {details}"
                    assert details.error_code is None, where
                    if kind == "KILLED":
                        assert vexil_reason == "REASON_DISABLED", where
                        assert details.reason in ("STATIC", "CACHED"), where
                        assert details.value is False, where
                        continue
                    assert details.value == enabled, where
                    assert details.variant == ("on" if enabled else "off"), where
                    if kind == "STATIC":
                        # flagd's provider caches STATIC answers per flag.
                        assert details.reason in ("STATIC", "CACHED"), where
                        statics += details.reason == "STATIC"
                    else:
                        assert details.reason == "TARGETING_MATCH", where
                    checked += 1
    assert statics > 0
    print(f"{protocol}: {checked} answers equal Evaluate")


def check_unknown(client, protocol):
    details = client.get_boolean_details("no-such-flag-anywhere", True, context("u1", None))
    assert details.value is True, details
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND, details
    print(f"{protocol}: unknown flag -> default with FLAG_NOT_FOUND")


def check_type_mismatch(client, name):
    details = client.get_string_details(name, "fallback", context("u1", None))
    assert details.value == "fallback", details
    assert details.error_code == ErrorCode.TYPE_MISMATCH, details


def flagd(documents):
    provider = FlagdProvider(resolver_type=ResolverType.RPC, host="127.0.0.1", port=FLAGD_PORT)
    changed = []
    event = threading.Event()

    def on_change(details):
        changed.append(details.flags_changed or [])
        event.set()

    api.set_provider_and_wait(provider, "flagd")
    client = api.get_client("flagd")
    # This client's provider only: the staging provider below gets the same
    # changes on its own stream, possibly earlier, and its event says nothing
    # about this provider's cache.
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    prefix, kinds = create_rule_flags(VEXIL, "py-flagd")
    check_rules(client, kinds, "flagd")
    check_unknown(client, "flagd")
    check_type_mismatch(client, f"{prefix}.rollout")
    checked = typed_vectors.check(client, documents, "flagd")
    print(f"flagd: {checked} evaluation vectors answered as the files say")

    # The selector header names the environment; the context's attribute wins.
    staging = FlagdProvider(resolver_type=ResolverType.RPC, host="127.0.0.1", port=FLAGD_PORT,
                            selector="staging")
    api.set_provider_and_wait(staging, "flagd-staging")
    staged = api.get_client("flagd-staging")
    override = f"{prefix}.override"
    assert staged.get_boolean_value(override, False, EvaluationContext("u1")) is True
    assert staged.get_boolean_value(override, True, context("u1", "production")) is False

    # A change through Vexil's API evicts the provider's cached STATIC answer.
    name = f"{prefix}.on"
    first = client.get_boolean_details(name, False, context("u1", None))
    cached = client.get_boolean_details(name, False, context("u1", None))
    assert first.value is True and cached.reason == "CACHED", (first, cached)
    event.clear()
    changed.clear()
    VEXIL.set_percentage(name, 0)
    deadline = time.monotonic() + 10
    while not any(name in flags for flags in changed):
        assert event.wait(max(0.0, deadline - time.monotonic())), f"no configuration change for {name}"
        event.clear()
    after = client.get_boolean_details(name, True, context("u1", None))
    assert after.value is False and after.reason == "STATIC", after
    print("flagd: configuration change handler fired; the next evaluation had the new value")
    api.shutdown()


def ofrep(documents):
    api.set_provider_and_wait(OFREPProvider(OFREP_URL), "ofrep")
    client = api.get_client("ofrep")
    checked = typed_vectors.check(client, documents, "ofrep")
    print(f"ofrep: {checked} evaluation vectors answered as the files say")
    prefix, kinds = create_rule_flags(VEXIL, "py-ofrep")
    check_rules(client, kinds, "ofrep")
    check_unknown(client, "ofrep")

    # No targeting key: fine for a static flag; TARGETING_KEY_MISSING where the user decides.
    assert client.get_boolean_value(f"{prefix}.on", False) is True
    missing = client.get_boolean_details(f"{prefix}.rollout", True)
    assert missing.value is True and missing.error_code == ErrorCode.TARGETING_KEY_MISSING, missing

    # Bulk: an ETag, 304 while nothing changed, a new ETag after a change.
    bulk = f"{OFREP_URL}/ofrep/v1/evaluate/flags"
    body = {"context": {"targetingKey": "user-7", "environment": "production"}}
    first = requests.post(bulk, json=body, timeout=5)
    assert first.status_code == 200, first.text
    etag = first.headers["ETag"]
    answers = {flag["key"]: flag for flag in first.json()["flags"]}
    for name in kinds:
        enabled, _ = VEXIL.evaluate(name, "user-7", "production")
        assert answers[name]["value"] == enabled, (name, answers[name])
    again = requests.post(bulk, json=body, headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304, again.status_code
    VEXIL.set_percentage(f"{prefix}.rollout", 100)
    deadline = time.monotonic() + 10
    while True:
        after = requests.post(bulk, json=body, headers={"If-None-Match": etag}, timeout=5)
        if after.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after.status_code == 200 and after.headers["ETag"] != etag, after.status_code
    assert {f["key"]: f for f in after.json()["flags"]}[f"{prefix}.rollout"]["value"] is True
    print("ofrep: bulk 304 while unchanged, 200 with a new ETag after a change")
    api.shutdown()


if __name__ == "__main__":
    # The shared vectors' flags, created once for every provider (Node's too).
    documents = typed_vectors.create_all(VEXIL)
    flagd(documents)
    ofrep(documents)
    print("python providers: ok")
