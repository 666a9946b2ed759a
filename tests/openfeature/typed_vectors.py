"""The shared evaluation vectors (docs/eval-vectors) answered over the
wire: each file's flags are created through Vexil's gRPC API, then every
case is resolved by an unmodified OpenFeature provider with the getter of
the flag's type, and must get exactly the file's value, variant and
Vexil reason (the answer's `vexilReason` metadata).

Segments are created first, through CreateSegment. Flags the API refuses
("api": false) and cases at another time than the files' (a clock the
protocols do not take) are left to the engine's and the client's tests."""

import glob
import json
import os

from google.protobuf import json_format
from openfeature.evaluation_context import EvaluationContext

from vexil_api import ROOT, pb

VECTOR_TIME = "2026-06-01T00:00:00Z"
TYPES = {"boolean": "FLAG_TYPE_BOOLEAN", "string": "FLAG_TYPE_STRING", "int": "FLAG_TYPE_INT",
         "float": "FLAG_TYPE_FLOAT", "object": "FLAG_TYPE_OBJECT"}


def _typed(value):
    (kind, inner), = value.items()
    return {{"bool": "bool_value", "string": "string_value", "int": "int_value",
             "float": "float_value", "object": "object_value"}[kind]: inner}


def _clause_value(value):
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, (int, float)):
        return {"number_value": value}
    return {"string_value": value}


def _clause(clause):
    clause = dict(clause)
    clause["op"] = "OPERATOR_" + clause["op"].upper()
    clause["values"] = [_clause_value(v) for v in clause.get("values", [])]
    return clause


def to_wire(flag):
    """A vector flag (the store's JSON) as a vexil.v1.Flag."""
    flag = {k: v for k, v in flag.items() if k != "api"}
    if "type" in flag:
        flag["type"] = TYPES[flag["type"]]
    for variant in flag.get("variants", []):
        variant["value"] = _typed(variant["value"])
    for rule in flag.get("rules", []):
        rule["clauses"] = [_clause(c) for c in rule["clauses"]]
    for serve in [rule["serve"] for rule in flag.get("rules", [])] + [flag.get("fallthrough") or {}]:
        split = serve.get("split")
        if split and "bucketing" in split:
            split["bucketing"] = "BUCKETING_" + split["bucketing"].upper()
    return json_format.ParseDict(flag, pb.Flag())


def segment_to_wire(segment):
    """A vector segment as a vexil.v1.Segment."""
    segment = dict(segment)
    segment["rules"] = [dict(rule, clauses=[_clause(c) for c in rule["clauses"]])
                        for rule in segment.get("rules", [])]
    return json_format.ParseDict(segment, pb.Segment())


def load():
    """(file name, segments, flags, flag types by name, cases) for every file."""
    documents = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "eval-vectors", "*.json"))):
        with open(path) as f:
            document = json.load(f)
        segments = document["state"]["segments"]
        flags = [f for f in document["state"]["flags"] if f.get("api", True)]
        types = {f["name"]: f.get("type", "boolean") for f in flags}
        cases = [c for c in document["tests"]
                 if c["context"]["at"] == VECTOR_TIME and c["flag"] in types or
                 c["context"]["at"] == VECTOR_TIME and c["expected"]["reason"] == "FLAG_NOT_FOUND"]
        documents.append((os.path.basename(path), segments, flags, types, cases))
    return documents


def create_all(vexil):
    documents = load()
    for _, segments, flags, _, _ in documents:
        # In file order: a segment refers only to those before it.
        for segment in segments:
            vexil.flags.CreateSegment(
                pb.CreateSegmentRequest(segment=segment_to_wire(segment), reason="vectors"))
        for flag in flags:
            vexil.flags.CreateFlag(pb.CreateFlagRequest(flag=to_wire(flag), reason="vectors"))
    return documents


# The OpenFeature reasons each Vexil reason may come with: STATIC when the
# answer is the same for everyone (providers may then answer CACHED).
_STATIC = {"STATIC", "CACHED"}
OPENFEATURE_REASONS = {
    "SPLIT": {"SPLIT"} | _STATIC,
    "DEFAULT": {"DEFAULT"} | _STATIC,
    "DISABLED": _STATIC,
    "EXPIRED": _STATIC,
    "PERCENTAGE_ROLLOUT": {"TARGETING_MATCH"} | _STATIC,
    "OUTSIDE_ROLLOUT": {"TARGETING_MATCH"} | _STATIC,
    **{reason: {"TARGETING_MATCH"} for reason in (
        "RULE_MATCH", "TARGET_MATCH", "PREREQUISITE_FAILED", "NOT_STARTED",
        "ENVIRONMENT_NOT_ALLOWED", "WHITELISTED", "BLACKLISTED", "ENVIRONMENT_OVERRIDE")},
}

DEFAULTS = {"boolean": True, "string": "default", "int": -7, "float": -7.5, "object": {"default": True}}


def resolve(client, flag_type, name, default, context):
    getter = {"boolean": client.get_boolean_details, "string": client.get_string_details,
              "int": client.get_integer_details, "float": client.get_float_details,
              "object": client.get_object_details}[flag_type]
    return getter(name, default, context)


def check(client, documents, protocol):
    """Every case, over `client`'s provider. Returns the number checked."""
    checked = 0
    for file, _, _, types, cases in documents:
        for case in cases:
            flag_type = types.get(case["flag"], "boolean")
            ctx = case["context"]
            attributes = dict(ctx.get("attributes", {}))
            if ctx["environment"]:
                attributes["environment"] = ctx["environment"]
            context = EvaluationContext(targeting_key=ctx["user_id"] or None, attributes=attributes)
            default = DEFAULTS[flag_type]
            details = resolve(client, flag_type, case["flag"], default, context)
            expected = case["expected"]
            where = f"{protocol} {file}: {case['description']}: {details}"
            if expected["reason"] == "FLAG_NOT_FOUND":
                assert details.value == default and details.error_code is not None, where
                checked += 1
                continue
            if details.error_code is not None and details.error_code.value == "TARGETING_KEY_MISSING":
                # OFREP's answer for a rollout or list decided without a key.
                assert protocol.startswith("ofrep") and not ctx["user_id"], where
                checked += 1
                continue
            if expected["value"] is None:
                # No value here: the caller's default.
                assert details.value == default, where
                checked += 1
                continue
            assert details.error_code is None, where
            assert details.value == expected["value"], where
            assert type(details.value) is type(expected["value"]) or flag_type == "object", where
            assert details.variant == expected["variant"], where
            metadata = details.flag_metadata or {}
            if "vexilReason" in metadata:
                assert metadata["vexilReason"] == expected["reason"], where
            # OpenFeature's reason, from Vexil's (README, "Using OpenFeature").
            assert details.reason in OPENFEATURE_REASONS[expected["reason"]], where
            checked += 1
    return checked
