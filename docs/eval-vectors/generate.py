#!/usr/bin/env python3
"""Writes Vexil's shared evaluation vectors (docs/eval-vectors/NN-*.json).

A flag marked `"api": false` is one the API refuses to create (its state
arises only from damaged data or a racing client copy): suites that load
the state through the API skip it and its cases.

Each file holds a state (flags and segments, in the JSON the store and the
audit trail use) and tests: a flag, a context, and the expected value,
variant and reason. The expectations are written here by hand, or for
splits computed by this file's own MurmurHash3 (checked against
docs/bucketing-vectors.json first), never by Vexil's engine.

    python3 docs/eval-vectors/generate.py      # rewrites the files
    python3 docs/eval-vectors/generate.py --check   # fails if they differ
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
AT = "2026-06-01T00:00:00Z"


def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[4 * n :]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def bucket(salt: str, key: str) -> int:
    return (murmur3_x86_32(f"{salt}:{key}".encode()) * 10000) >> 32


def flagd_bucket(salt: str, key: str, total: int) -> int:
    """flagd's fractional: no separator, scaled to the weights' sum."""
    return (murmur3_x86_32(f"{salt}{key}".encode()) * total) >> 32


def check_hash():
    vectors = json.loads((HERE.parent / "bucketing-vectors.json").read_text())
    for v in vectors:
        assert bucket(v["flag"], v["user"]) == v["bucket"], v


def ctx(user="u1", env="production", at=None, **attributes):
    c = {"user_id": user, "environment": env}
    if attributes:
        c["attributes"] = attributes
    if at:
        c["at"] = at
    return c


def expect(value, variant, reason):
    return {"value": value, "variant": variant, "reason": reason}


def flag(name, **spec):
    f = {"name": name, "enabled": True}
    f.update(spec)
    return f


def string_flag(name, rules=(), fallthrough="no", **spec):
    """A STRING flag serving "yes" (variant match) when a rule matches,
    "no" (variant no) otherwise."""
    return flag(
        name,
        type="string",
        variants=[
            {"name": "match", "value": {"string": "yes"}},
            {"name": "no", "value": {"string": "no"}},
        ],
        off_variant="no",
        rules=list(rules),
        fallthrough={"variant": fallthrough},
        **spec,
    )


MATCH = expect("yes", "match", "RULE_MATCH")
NO = expect("no", "no", "DEFAULT")


def clause_cases(prefix, cases):
    """cases: (description, clause, [(context, matches)]). One flag per
    clause, serving "yes" when its one rule matches."""
    flags, tests = [], []
    for i, (description, clause, checks) in enumerate(cases):
        name = f"{prefix}.{i:02d}"
        flags.append(string_flag(name, rules=[{"clause_note": description, "clauses": [clause], "serve": {"variant": "match"}}]))
        for context, matches in checks:
            tests.append(
                {
                    "description": f"{description}: {json.dumps(context.get('attributes', {}), sort_keys=True)} user={context['user_id']!r}",
                    "flag": name,
                    "context": context,
                    "expected": MATCH if matches else NO,
                }
            )
    for f in flags:
        for rule in f["rules"]:
            rule["description"] = rule.pop("clause_note")
    return {"flags": flags, "segments": []}, tests


def c(attribute, op, values=(), negate=False, case_insensitive=False):
    clause = {"attribute": attribute, "op": op}
    if values != ():
        clause["values"] = list(values)
    if negate:
        clause["negate"] = True
    if case_insensitive:
        clause["case_insensitive"] = True
    return clause


def in_equality():
    return clause_cases(
        "in",
        [
            ("plan in [enterprise, team]", c("plan", "in", ["enterprise", "team"]), [
                (ctx(plan="enterprise"), True),
                (ctx(plan="team"), True),
                (ctx(plan="free"), False),
                (ctx(plan="Enterprise"), False),
                (ctx(plan=""), False),
                (ctx(), False),
                (ctx(plan=["free", "team"]), True),
                (ctx(plan=["free"]), False),
                (ctx(plan=3), False),
            ]),
            ("plan in [enterprise] case-insensitive", c("plan", "in", ["Enterprise"], case_insensitive=True), [
                (ctx(plan="ENTERPRISE"), True),
                (ctx(plan="enterprise"), True),
                (ctx(plan="enterprises"), False),
            ]),
            ("plan not in [free]", c("plan", "in", ["free"], negate=True), [
                (ctx(plan="enterprise"), True),
                (ctx(plan="free"), False),
                (ctx(), False),
            ]),
            ("seats in [5, 10]", c("seats", "in", [5, 10]), [
                (ctx(seats=5), True),
                (ctx(seats=10.0), True),
                (ctx(seats=7), False),
                (ctx(seats="5"), False),
            ]),
            ("beta in [true]", c("beta", "in", [True]), [
                (ctx(beta=True), True),
                (ctx(beta=False), False),
                (ctx(beta="true"), False),
            ]),
            ("zero in [0]", c("n", "in", [0]), [
                (ctx(n=0), True),
                (ctx(n=-0.0), True),
                (ctx(n=0.5), False),
            ]),
            ("country in a long list", c("country", "in", [f"c{i:03d}" for i in range(300)]), [
                (ctx(country="c000"), True),
                (ctx(country="c299"), True),
                (ctx(country="c300"), False),
                (ctx(country="C001"), False),
            ]),
            ("unicode values compare by bytes", c("city", "in", ["Zürich", "東京"]), [
                (ctx(city="Zürich"), True),
                (ctx(city="東京"), True),
                (ctx(city="Zurich"), False),
            ]),
        ],
    )


def strings():
    return clause_cases(
        "str",
        [
            ("email ends with @example.com", c("email", "ends_with", ["@example.com"]), [
                (ctx(email="ann@example.com"), True),
                (ctx(email="ann@example.org"), False),
                (ctx(email="ann@EXAMPLE.COM"), False),
                (ctx(email="@example.com"), True),
                (ctx(email="example.com"), False),
                (ctx(), False),
                (ctx(email=42), False),
            ]),
            ("email ends with @example.com, any case", c("email", "ends_with", ["@Example.com"], case_insensitive=True), [
                (ctx(email="ann@EXAMPLE.COM"), True),
                (ctx(email="ann@example.com"), True),
                (ctx(email="ann@example.co"), False),
            ]),
            ("path starts with /admin or /ops", c("path", "starts_with", ["/admin", "/ops"]), [
                (ctx(path="/admin/users"), True),
                (ctx(path="/ops"), True),
                (ctx(path="/Admin"), False),
                (ctx(path="/adm"), False),
                (ctx(path=["/x", "/ops/a"]), True),
            ]),
            ("path starts with /admin, any case", c("path", "starts_with", ["/ADMIN"], case_insensitive=True), [
                (ctx(path="/admin/x"), True),
                (ctx(path="/AdMiN"), True),
                (ctx(path="/admi"), False),
            ]),
            ("agent contains Mobile", c("agent", "contains", ["Mobile"]), [
                (ctx(agent="Mozilla/5.0 (Mobile; rv:1)"), True),
                (ctx(agent="Mobile"), True),
                (ctx(agent="mobile"), False),
                (ctx(agent="Desktop"), False),
            ]),
            ("agent contains mobile, any case", c("agent", "contains", ["MOBILE"], case_insensitive=True), [
                (ctx(agent="x mobile y"), True),
                (ctx(agent="MoBiLe"), True),
                (ctx(agent="mobil"), False),
            ]),
            ("agent does not contain bot", c("agent", "contains", ["bot"], negate=True), [
                (ctx(agent="Googlebot"), False),
                (ctx(agent="Firefox"), True),
                (ctx(), False),
            ]),
            ("name contains a multibyte needle", c("name", "contains", ["ü"]), [
                (ctx(name="Müller"), True),
                (ctx(name="Muller"), False),
            ]),
        ],
    )


def numeric():
    return clause_cases(
        "num",
        [
            ("seats < 10", c("seats", "lt", [10]), [
                (ctx(seats=9), True), (ctx(seats=9.999), True), (ctx(seats=10), False),
                (ctx(seats=-1), True), (ctx(seats="9"), True), (ctx(seats="ten"), False),
                (ctx(), False), (ctx(seats=True), False),
            ]),
            ("seats <= 10", c("seats", "lte", [10]), [
                (ctx(seats=10), True), (ctx(seats=10.5), False), (ctx(seats="10"), True),
            ]),
            ("seats > 100", c("seats", "gt", [100]), [
                (ctx(seats=101), True), (ctx(seats=100), False), (ctx(seats=1e9), True),
                (ctx(seats=[1, 500]), True), (ctx(seats=[1, 2]), False),
            ]),
            ("seats >= 100", c("seats", "gte", [100]), [
                (ctx(seats=100), True), (ctx(seats=99.99), False), (ctx(seats=" 100 "), True),
            ]),
            ("seats < any of [5, 50] (the larger bound)", c("seats", "lt", [5, 50]), [
                (ctx(seats=40), True), (ctx(seats=50), False),
            ]),
            ("seats > any of [5, 50] (the smaller bound)", c("seats", "gt", [5, 50]), [
                (ctx(seats=6), True), (ctx(seats=5), False),
            ]),
            ("not seats < 10", c("seats", "lt", [10], negate=True), [
                (ctx(seats=10), True), (ctx(seats=3), False), (ctx(), False),
            ]),
            ("ratio < 0.5 with fractions", c("ratio", "lt", [0.5]), [
                (ctx(ratio=0.49), True), (ctx(ratio=0.5), False), (ctx(ratio="0.25"), True),
            ]),
        ],
    )


def semver():
    return clause_cases(
        "semver",
        [
            ("version >= 2.3", c("version", "semver_gte", ["2.3.0"]), [
                (ctx(version="2.3.0"), True), (ctx(version="2.3"), True), (ctx(version="2.10.0"), True),
                (ctx(version="2.2.9"), False), (ctx(version="10.0.0"), True), (ctx(version="v2.4.1"), True),
                (ctx(version="2.3.0-rc.1"), False), (ctx(version="2.3.0+build.7"), True),
                (ctx(version=2.3), False), (ctx(version="two"), False), (ctx(version="2.3.0.1"), False),
                (ctx(version=""), False), (ctx(), False),
            ]),
            ("version > 1.9.0 (so 1.10.0 is greater)", c("version", "semver_gt", ["1.9.0"]), [
                (ctx(version="1.10.0"), True), (ctx(version="1.9.0"), False), (ctx(version="1.9.1-alpha"), True),
            ]),
            ("version < 1.0.0", c("version", "semver_lt", ["1.0.0"]), [
                (ctx(version="1.0.0-alpha"), True), (ctx(version="0.9.9"), True), (ctx(version="1.0.0"), False),
                (ctx(version="01.0.0"), False),
            ]),
            ("version <= 1.0.0-beta.2", c("version", "semver_lte", ["1.0.0-beta.2"]), [
                (ctx(version="1.0.0-beta.2"), True), (ctx(version="1.0.0-beta.11"), False),
                (ctx(version="1.0.0-beta"), True), (ctx(version="1.0.0-alpha.9"), True),
                (ctx(version="1.0.0-rc.1"), False),
            ]),
            ("version = 3.1.4 or 3.1.5", c("version", "semver_eq", ["3.1.4", "3.1.5"]), [
                (ctx(version="3.1.4"), True), (ctx(version="v3.1.5"), True), (ctx(version="3.1.6"), False),
                (ctx(version="3.1.4+meta"), True), (ctx(version="3.1.4-rc"), False),
            ]),
            ("version != 3.1.4", c("version", "semver_eq", ["3.1.4"], negate=True), [
                (ctx(version="3.1.5"), True), (ctx(version="3.1.4"), False),
                (ctx(version="bad"), True), (ctx(), False),
            ]),
            ("any listed version >= 2.0.0", c("versions", "semver_gte", ["2.0.0"]), [
                (ctx(versions=["1.0.0", "2.1.0"]), True), (ctx(versions=["1.0.0", "x"]), False),
            ]),
        ],
    )


def dates():
    return clause_cases(
        "date",
        [
            ("signup before 2026-01-01", c("signup", "before", ["2026-01-01T00:00:00Z"]), [
                (ctx(signup="2025-12-31T23:59:59Z"), True), (ctx(signup="2026-01-01T00:00:00Z"), False),
                (ctx(signup="2026-01-01T01:00:00+02:00"), True), (ctx(signup=1767225599), True),
                (ctx(signup=1767225600), False), (ctx(signup="yesterday"), False),
                (ctx(signup="2025-12-31"), False), (ctx(), False),
            ]),
            ("signup after 2026-01-01", c("signup", "after", ["2026-01-01T00:00:00Z"]), [
                (ctx(signup="2026-01-01T00:00:01Z"), True), (ctx(signup="2026-01-01T00:00:00Z"), False),
                (ctx(signup=1767225600.5), True),
            ]),
            ("after a Unix-seconds value", c("signup", "after", [1767225600]), [
                (ctx(signup="2026-02-01T00:00:00Z"), True), (ctx(signup="2025-02-01T00:00:00Z"), False),
            ]),
            ("the clock after 2026-05-01 ($now)", c("$now", "after", ["2026-05-01T00:00:00Z"]), [
                (ctx(), True), (ctx(at="2026-04-30T00:00:00Z"), False),
            ]),
            ("the clock before 2026-05-01 ($now)", c("$now", "before", ["2026-05-01T00:00:00Z"]), [
                (ctx(), False), (ctx(at="2026-04-30T23:59:59Z"), True),
            ]),
        ],
    )


def exists_and_reserved():
    return clause_cases(
        "attr",
        [
            ("plan exists", c("plan", "exists"), [
                (ctx(plan="x"), True), (ctx(plan=""), True), (ctx(plan=0), True), (ctx(plan=False), True),
                (ctx(plan=[]), True), (ctx(), False), (ctx(other="x"), False),
            ]),
            ("plan does not exist", c("plan", "exists", negate=True), [
                (ctx(), True), (ctx(plan="x"), False),
            ]),
            ("$user_id in [alice]", c("$user_id", "in", ["alice"]), [
                (ctx(user="alice"), True), (ctx(user="bob"), False), (ctx(user=""), False),
            ]),
            ("$user_id exists (an empty user id is absent)", c("$user_id", "exists"), [
                (ctx(user="x"), True), (ctx(user=""), False),
            ]),
            ("$user_id starts with test-", c("$user_id", "starts_with", ["test-"]), [
                (ctx(user="test-1"), True), (ctx(user="prod-1"), False),
            ]),
            ("$environment in [staging]", c("$environment", "in", ["staging"]), [
                (ctx(env="staging"), True), (ctx(env="production"), False), (ctx(env=""), False),
            ]),
            ("an attribute named like a reserved one without $ is the context's", c("user_id", "in", ["alice"]), [
                (ctx(user="alice"), False), (ctx(user="bob", user_id="alice"), True),
            ]),
            ("a dotted name is one attribute", c("app.version", "in", ["1"]), [
                (ctx(**{"app.version": "1"}), True), (ctx(app={"version": "1"}), False),
            ]),
            ("a path reads members of the context's objects", c("$.app.version", "in", ["1"]), [
                (ctx(app={"version": "1"}), True), (ctx(**{"app.version": "1"}), False),
                (ctx(app={"version": {"major": 1}}), False), (ctx(app="1"), False), (ctx(), False),
            ]),
            ("a path several objects deep", c("$.member.team.id", "exists"), [
                (ctx(member={"team": {"id": 7}}), True), (ctx(member={"team": 7}), False),
            ]),
            ("objects and nulls are absent", c("thing", "exists"), [
                (ctx(thing={"a": 1}), False), (ctx(thing=None), False),
            ]),
            ("list elements that are lists or objects never match", c("tags", "in", ["a"]), [
                (ctx(tags=[["a"], {"a": 1}]), False), (ctx(tags=[["a"], "a"]), True),
            ]),
        ],
    )


def regex():
    return clause_cases(
        "regex",
        [
            ("email matches ^[a-z]+@corp\\.com$", c("email", "matches", ["^[a-z]+@corp\\.com$"]), [
                (ctx(email="ann@corp.com"), True), (ctx(email="Ann@corp.com"), False),
                (ctx(email="ann@corp.com.evil"), False), (ctx(email="ann@corpXcom"), False),
                (ctx(), False), (ctx(email=5), False),
            ]),
            ("case-insensitive match", c("email", "matches", ["^[a-z]+@corp\\.com$"], case_insensitive=True), [
                (ctx(email="ANN@CORP.COM"), True),
            ]),
            ("unanchored match finds a substring", c("agent", "matches", ["(?:iPhone|iPad)"]), [
                (ctx(agent="Mozilla (iPad; CPU OS 17)"), True), (ctx(agent="Android"), False),
            ]),
            ("negated match", c("agent", "matches", ["bot"], negate=True), [
                (ctx(agent="Googlebot"), False), (ctx(agent="Safari"), True),
            ]),
            ("a pathological pattern runs in linear time", c("s", "matches", ["^(a+)+$"]), [
                (ctx(s="a" * 4000 + "b"), False), (ctx(s="a" * 4000), True),
            ]),
        ],
    )


def rules_and_order():
    state = {
        "flags": [
            string_flag(
                "order.first-match",
                rules=[
                    {"id": "enterprise-de", "clauses": [c("plan", "in", ["enterprise"]), c("country", "in", ["DE"])], "serve": {"variant": "match"}},
                    {"id": "everyone-de", "clauses": [c("country", "in", ["DE"])], "serve": {"variant": "no"}},
                ],
                fallthrough="match",
            ),
            string_flag(
                "order.enterprise-2.3-de",
                rules=[
                    {"clauses": [c("plan", "in", ["enterprise"]), c("app_version", "semver_gte", ["2.3.0"]), c("country", "in", ["DE"])], "serve": {"variant": "match"}},
                ],
            ),
        ],
        "segments": [],
    }
    tests = [
        ("enterprise in DE: the first rule", "order.first-match", ctx(plan="enterprise", country="DE"), expect("yes", "match", "RULE_MATCH")),
        ("free in DE: the second rule", "order.first-match", ctx(plan="free", country="DE"), expect("no", "no", "RULE_MATCH")),
        ("enterprise in FR: fallthrough", "order.first-match", ctx(plan="enterprise", country="FR"), expect("yes", "match", "DEFAULT")),
        ("no context: fallthrough", "order.first-match", ctx(), expect("yes", "match", "DEFAULT")),
        ("all three clauses hold", "order.enterprise-2.3-de", ctx(plan="enterprise", app_version="2.3.1", country="DE"), MATCH),
        ("version too old", "order.enterprise-2.3-de", ctx(plan="enterprise", app_version="2.2.9", country="DE"), NO),
        ("wrong country", "order.enterprise-2.3-de", ctx(plan="enterprise", app_version="2.4", country="AT"), NO),
        ("wrong plan", "order.enterprise-2.3-de", ctx(plan="team", app_version="2.4", country="DE"), NO),
        ("version missing", "order.enterprise-2.3-de", ctx(plan="enterprise", country="DE"), NO),
    ]
    return state, [
        {"description": d, "flag": f, "context": cx, "expected": e} for d, f, cx, e in tests
    ]


def segments():
    state = {
        "segments": [
            {"name": "beta-testers", "included": ["alice", "bob"], "excluded": ["mallory"],
             "rules": [{"clauses": [c("email", "ends_with", ["@beta.example.com"])]}]},
            {"name": "germany", "rules": [{"clauses": [c("country", "in", ["DE"])]}]},
            {"name": "big-customers", "rules": [
                {"clauses": [c("seats", "gte", [1000])]},
                {"clauses": [c("plan", "in", ["enterprise"])]},
            ]},
            {"name": "beta-in-germany", "rules": [
                {"clauses": [c("", "in_segment", ["beta-testers"]), c("", "in_segment", ["germany"])]},
            ]},
            {"name": "empty"},
        ],
        "flags": [
            string_flag("seg.beta", rules=[{"clauses": [c("", "in_segment", ["beta-testers"])], "serve": {"variant": "match"}}]),
            string_flag("seg.not-beta", rules=[{"clauses": [c("", "in_segment", ["beta-testers"], negate=True)], "serve": {"variant": "match"}}]),
            string_flag("seg.any", rules=[{"clauses": [c("", "in_segment", ["germany", "big-customers"])], "serve": {"variant": "match"}}]),
            string_flag("seg.nested", rules=[{"clauses": [c("", "in_segment", ["beta-in-germany"])], "serve": {"variant": "match"}}]),
            string_flag("seg.empty", rules=[{"clauses": [c("", "in_segment", ["empty"])], "serve": {"variant": "match"}}]),
        ],
    }
    tests = [
        ("included id", "seg.beta", ctx(user="alice"), MATCH),
        ("included id, whatever the rules", "seg.beta", ctx(user="bob", email="bob@other.com"), MATCH),
        ("excluded id beats the rules", "seg.beta", ctx(user="mallory", email="m@beta.example.com"), NO),
        ("matched by the segment's rule", "seg.beta", ctx(user="carol", email="carol@beta.example.com"), MATCH),
        ("in no list, no rule", "seg.beta", ctx(user="dave", email="dave@example.com"), NO),
        ("empty user id: only the rules", "seg.beta", ctx(user="", email="x@beta.example.com"), MATCH),
        ("empty user id, no rule", "seg.beta", ctx(user=""), NO),
        ("negated: outside the segment", "seg.not-beta", ctx(user="dave"), MATCH),
        ("negated: inside the segment", "seg.not-beta", ctx(user="alice"), NO),
        ("any of two segments: the first", "seg.any", ctx(country="DE"), MATCH),
        ("any of two segments: the second, by its second rule", "seg.any", ctx(plan="enterprise"), MATCH),
        ("any of two segments: the second, by its first rule", "seg.any", ctx(seats=5000), MATCH),
        ("any of two segments: neither", "seg.any", ctx(country="FR", seats=10), NO),
        ("a segment of segments: both", "seg.nested", ctx(user="alice", country="DE"), MATCH),
        ("a segment of segments: one", "seg.nested", ctx(user="alice", country="FR"), NO),
        ("an empty segment holds no one", "seg.empty", ctx(user="alice"), NO),
    ]
    return state, [
        {"description": d, "flag": f, "context": cx, "expected": e} for d, f, cx, e in tests
    ]


def prerequisites():
    state = {
        "segments": [],
        "flags": [
            flag("pre.on", percentage=100.0),
            flag("pre.off", enabled=False),
            flag("pre.half", percentage=50.0),
            flag("pre.color", type="string", variants=[
                {"name": "red", "value": {"string": "#f00"}},
                {"name": "blue", "value": {"string": "#00f"}},
            ], rules=[{"clauses": [c("theme", "in", ["dark"])], "serve": {"variant": "blue"}}],
               fallthrough={"variant": "red"}),
            string_flag("pre.needs-on", prerequisites=[{"flag": "pre.on"}], fallthrough="match"),
            string_flag("pre.needs-off", prerequisites=[{"flag": "pre.off"}], fallthrough="match"),
            # Writes refuse a missing prerequisite ("api": false: not
            # creatable through the API); a client's copy may still see one.
            string_flag("pre.needs-missing", prerequisites=[{"flag": "pre.nowhere"}], fallthrough="match", api=False),
            string_flag("pre.needs-blue", prerequisites=[{"flag": "pre.color", "variants": ["blue"]}], fallthrough="match"),
            string_flag("pre.needs-both", prerequisites=[{"flag": "pre.on"}, {"flag": "pre.color", "variants": ["blue"]}], fallthrough="match"),
            flag("pre.bool-needs-off", percentage=100.0, prerequisites=[{"flag": "pre.off"}]),
            flag("pre.bool-needs-on", percentage=100.0, prerequisites=[{"flag": "pre.on", "variants": ["off"]}]),
            string_flag("pre.needs-killed-self", enabled=False, prerequisites=[{"flag": "pre.on"}], fallthrough="match"),
        ],
    }
    half_in = [u for u in ("u1", "u2", "u3", "u4", "u5", "u6") if bucket("pre.half", u) < 5000]
    half_out = [u for u in ("u1", "u2", "u3", "u4", "u5", "u6") if bucket("pre.half", u) >= 5000]
    state["flags"].append(string_flag("pre.needs-half", prerequisites=[{"flag": "pre.half"}], fallthrough="match"))
    fail = expect("no", "no", "PREREQUISITE_FAILED")
    tests = [
        ("the prerequisite is on", "pre.needs-on", ctx(), expect("yes", "match", "DEFAULT")),
        ("the prerequisite is killed", "pre.needs-off", ctx(), fail),
        ("the prerequisite does not exist", "pre.needs-missing", ctx(), fail),
        ("the prerequisite serves the wanted variant", "pre.needs-blue", ctx(theme="dark"), expect("yes", "match", "DEFAULT")),
        ("the prerequisite serves another variant", "pre.needs-blue", ctx(theme="light"), fail),
        ("both prerequisites hold", "pre.needs-both", ctx(theme="dark"), expect("yes", "match", "DEFAULT")),
        ("the second prerequisite fails", "pre.needs-both", ctx(), fail),
        ("a boolean flag's prerequisite fails: off", "pre.bool-needs-off", ctx(), expect(False, "off", "PREREQUISITE_FAILED")),
        ("a prerequisite must serve off and does not", "pre.bool-needs-on", ctx(), expect(False, "off", "PREREQUISITE_FAILED")),
        ("killed beats prerequisites", "pre.needs-killed-self", ctx(), expect("no", "no", "DISABLED")),
    ]
    for u in half_in[:2]:
        tests.append((f"{u} is inside the prerequisite's rollout", "pre.needs-half", ctx(user=u), expect("yes", "match", "DEFAULT")))
    for u in half_out[:2]:
        tests.append((f"{u} is outside the prerequisite's rollout", "pre.needs-half", ctx(user=u), fail))
    return state, [
        {"description": d, "flag": f, "context": cx, "expected": e} for d, f, cx, e in tests
    ]


def splits():
    weights3 = [("a", 3334), ("b", 3333), ("c", 3333)]
    variants = [{"name": n, "value": {"string": n.upper()}} for n in ("a", "b", "c")]
    flags = [
        flag("split.three", type="string", variants=variants, off_variant="a",
             fallthrough={"split": {"weights": [{"variant": n, "weight": w} for n, w in weights3]}}),
        flag("split.salted", type="string", variants=variants,
             fallthrough={"split": {"weights": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}], "salt": "experiment-7"}}),
        flag("split.by-org", type="string", variants=variants,
             fallthrough={"split": {"weights": [{"variant": "a", "weight": 2500}, {"variant": "b", "weight": 7500}], "bucket_by": "org"}}),
        flag("split.whole", type="string", variants=variants,
             fallthrough={"split": {"weights": [{"variant": "a", "weight": 0}, {"variant": "b", "weight": 10000}]}}),
        flag("split.in-rule", type="int", variants=[
            {"name": "low", "value": {"int": 10}}, {"name": "high", "value": {"int": 1000}}],
             rules=[{"clauses": [c("plan", "in", ["pro"])], "serve": {"split": {"weights": [{"variant": "low", "weight": 5000}, {"variant": "high", "weight": 5000}]}}}],
             fallthrough={"variant": "low"}),
        flag("split.bool", fallthrough={"split": {"weights": [{"variant": "on", "weight": 2000}, {"variant": "off", "weight": 8000}]}}),
        flag("split.flagd", type="string", variants=variants,
             fallthrough={"split": {"weights": [{"variant": n, "weight": 1} for n in ("a", "b", "c")], "bucketing": "flagd"}}),
        flag("split.flagd-by-path", type="string", variants=variants,
             fallthrough={"split": {"weights": [{"variant": "a", "weight": 25}, {"variant": "b", "weight": 0}, {"variant": "c", "weight": 75}],
                                    "bucket_by": "$.member.name", "salt": "seed", "bucketing": "flagd"}}),
    ]

    def pick(weights, b):
        end = 0
        for name, w in weights:
            end += w
            if b < end:
                return name
        raise AssertionError

    tests = []
    users = [f"user-{i}" for i in range(40)]
    for u in users:
        v = pick(weights3, bucket("split.three", u))
        tests.append((f"{u}: bucket {bucket('split.three', u)}", "split.three", ctx(user=u), expect(v.upper(), v, "SPLIT")))
    tests.append(("no user id: the off variant", "split.three", ctx(user=""), expect("A", "a", "DEFAULT")))
    for u in users[:12]:
        b = bucket("experiment-7", u)
        v = "a" if b < 5000 else "b"
        tests.append((f"{u}: salted bucket {b}", "split.salted", ctx(user=u), expect(v.upper(), v, "SPLIT")))
    tests.append(("no user id, no off variant: no value", "split.salted", ctx(user=""), expect(None, None, "DEFAULT")))
    for org in ["acme", "globex", "initech", "umbrella", "hooli", "stark"]:
        b = bucket("split.by-org", org)
        v = "a" if b < 2500 else "b"
        tests.append((f"org {org}: bucket {b}, whatever the user", "split.by-org", ctx(user="someone", org=org), expect(v.upper(), v, "SPLIT")))
    b = bucket("split.by-org", "42")
    v = "a" if b < 2500 else "b"
    tests.append(("an integral number keys like its decimal string", "split.by-org", ctx(org=42), expect(v.upper(), v, "SPLIT")))
    tests.append(("no org: no value", "split.by-org", ctx(user="someone"), expect(None, None, "DEFAULT")))
    tests.append(("a split with one variant holding everything, with a user", "split.whole", ctx(user="x"), expect("B", "b", "SPLIT")))
    tests.append(("a split with one variant holding everything, without a user", "split.whole", ctx(user=""), expect("B", "b", "SPLIT")))
    for u in users[:8]:
        b = bucket("split.in-rule", u)
        name, value = ("low", 10) if b < 5000 else ("high", 1000)
        tests.append((f"{u} in the rule's split: bucket {b}", "split.in-rule", ctx(user=u, plan="pro"), expect(value, name, "RULE_MATCH")))
    tests.append(("a rule's split without a key: the rule is skipped", "split.in-rule", ctx(user="", plan="pro"), expect(10, "low", "DEFAULT")))
    for u in users[:10]:
        b = bucket("split.bool", u)
        on = b < 2000
        tests.append((f"{u}: boolean split bucket {b}", "split.bool", ctx(user=u), expect(on, "on" if on else "off", "SPLIT")))
    for u in users[:12]:
        b = flagd_bucket("split.flagd", u, 3)
        v = "abc"[b]
        tests.append((f"{u}: flagd bucket {b} of 3", "split.flagd", ctx(user=u), expect(v.upper(), v, "SPLIT")))
    for name in ["jack", "queen", "ten", "nine", "3"]:
        b = flagd_bucket("seed", name, 100)
        v = pick([("a", 25), ("b", 0), ("c", 75)], b)
        tests.append((f"member.name {name}: flagd bucket {b} of 100", "split.flagd-by-path",
                      ctx(user="", member={"name": name}), expect(v.upper(), v, "SPLIT")))
    return {"flags": flags, "segments": []}, [
        {"description": d, "flag": f, "context": cx, "expected": e} for d, f, cx, e in tests
    ]


def typed_values():
    obj = {"theme": "dark", "limits": {"rps": 100, "burst": 2.5}, "features": ["a", "b"], "on": True}
    flags = [
        flag("typed.string", type="string", variants=[{"name": "v", "value": {"string": "hello"}}], fallthrough={"variant": "v"}),
        flag("typed.int", type="int", variants=[{"name": "v", "value": {"int": 42}}], fallthrough={"variant": "v"}),
        flag("typed.int-big", type="int", variants=[{"name": "v", "value": {"int": 9007199254740993}}], fallthrough={"variant": "v"}),
        flag("typed.float", type="float", variants=[{"name": "v", "value": {"float": 3.0}}], fallthrough={"variant": "v"}),
        flag("typed.float-frac", type="float", variants=[{"name": "v", "value": {"float": 0.125}}], fallthrough={"variant": "v"}),
        flag("typed.object", type="object", variants=[{"name": "v", "value": {"object": obj}}], fallthrough={"variant": "v"}),
        flag("typed.killed", enabled=False, type="string", variants=[
            {"name": "on", "value": {"string": "x"}}, {"name": "off", "value": {"string": "fallback"}}], off_variant="off", fallthrough={"variant": "on"}),
        flag("typed.killed-no-off", enabled=False, type="string", variants=[{"name": "on", "value": {"string": "x"}}], fallthrough={"variant": "on"}),
        flag("typed.expired", expires_at="2026-01-01T00:00:00Z", type="int", variants=[
            {"name": "new", "value": {"int": 2}}, {"name": "old", "value": {"int": 1}}], off_variant="old", fallthrough={"variant": "new"}),
        flag("typed.not-started", starts_at="2027-01-01T00:00:00Z", type="int", variants=[
            {"name": "new", "value": {"int": 2}}, {"name": "old", "value": {"int": 1}}], off_variant="old", fallthrough={"variant": "new"}),
        flag("typed.envs", environments=["production"], type="string", variants=[
            {"name": "on", "value": {"string": "x"}}], fallthrough={"variant": "on"}),
        flag("typed.targets", type="string", variants=[
            {"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}}],
             targets=[{"variant": "b", "user_ids": ["vip-1", "vip-2"]}, {"variant": "a", "user_ids": ["vip-2", "x"]}],
             rules=[{"clauses": [c("$user_id", "in", ["x"])], "serve": {"variant": "b"}}],
             fallthrough={"variant": "a"}),
        flag("typed.per-env", type="string", variants=[
            {"name": "a", "value": {"string": "A"}}, {"name": "b", "value": {"string": "B"}}],
             rules=[
                 {"id": "staging-everyone", "clauses": [c("$environment", "in", ["staging"])], "serve": {"variant": "b"}},
                 {"id": "eu-experiment", "clauses": [c("$environment", "in", ["production"]), c("region", "in", ["eu"])],
                  "serve": {"split": {"weights": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 5000}]}}},
                 {"id": "production-10", "clauses": [c("$environment", "in", ["production"])],
                  "serve": {"split": {"weights": [{"variant": "b", "weight": 1000}, {"variant": "a", "weight": 9000}]}}},
             ],
             fallthrough={"variant": "a"}),
    ]
    tests = [
        ("a string", "typed.string", ctx(), expect("hello", "v", "DEFAULT")),
        ("an int", "typed.int", ctx(), expect(42, "v", "DEFAULT")),
        ("an int beyond 2^53 stays exact", "typed.int-big", ctx(), expect(9007199254740993, "v", "DEFAULT")),
        ("an integral float stays a float", "typed.float", ctx(), expect(3.0, "v", "DEFAULT")),
        ("a fractional float", "typed.float-frac", ctx(), expect(0.125, "v", "DEFAULT")),
        ("an object", "typed.object", ctx(), expect(obj, "v", "DEFAULT")),
        ("killed: the off variant", "typed.killed", ctx(), expect("fallback", "off", "DISABLED")),
        ("killed without an off variant: no value", "typed.killed-no-off", ctx(), expect(None, None, "DISABLED")),
        ("expired: the off variant", "typed.expired", ctx(), expect(1, "old", "EXPIRED")),
        ("before the expiry", "typed.expired", ctx(at="2025-12-31T00:00:00Z"), expect(2, "new", "DEFAULT")),
        ("not started: the off variant", "typed.not-started", ctx(), expect(1, "old", "NOT_STARTED")),
        ("outside its environments: no value", "typed.envs", ctx(env="staging"), expect(None, None, "ENVIRONMENT_NOT_ALLOWED")),
        ("inside its environments", "typed.envs", ctx(env="production"), expect("x", "on", "DEFAULT")),
        ("a target", "typed.targets", ctx(user="vip-1"), expect("B", "b", "TARGET_MATCH")),
        ("in two targets: the first listed wins", "typed.targets", ctx(user="vip-2"), expect("B", "b", "TARGET_MATCH")),
        ("targets beat rules", "typed.targets", ctx(user="x"), expect("A", "a", "TARGET_MATCH")),
        ("no target, no rule", "typed.targets", ctx(user="nobody"), expect("A", "a", "DEFAULT")),
        ("an empty user id is in no target", "typed.targets", ctx(user=""), expect("A", "a", "DEFAULT")),
        ("staging: everyone gets b", "typed.per-env", ctx(env="staging"), expect("B", "b", "RULE_MATCH")),
        ("elsewhere: a", "typed.per-env", ctx(env="dev"), expect("A", "a", "DEFAULT")),
    ]
    for u in [f"p{i}" for i in range(10)]:
        b = bucket("typed.per-env", u)
        eu = "A" if b < 5000 else "B"
        ten = "B" if b < 1000 else "A"
        tests.append((f"{u} in the EU experiment (bucket {b})", "typed.per-env", ctx(user=u, region="eu"), expect(eu, eu.lower(), "RULE_MATCH")))
        tests.append((f"{u} in production's 10% (bucket {b})", "typed.per-env", ctx(user=u, region="us"), expect(ten, ten.lower(), "RULE_MATCH")))
    return {"flags": flags, "segments": []}, [
        {"description": d, "flag": f, "context": cx, "expected": e} for d, f, cx, e in tests
    ]


def legacy():
    """Boolean flags written with today's fields, and their equivalents in
    the new model: the same answers (reasons differ where the model does)."""
    flags = [
        flag("legacy.rollout", percentage=30.0),
        flag("legacy.rollout-as-split", fallthrough={"split": {"weights": [{"variant": "on", "weight": 3000}, {"variant": "off", "weight": 7000}], "salt": "legacy.rollout"}}),
        flag("legacy.lists", percentage=0.0, whitelist=["w1", "both"], blacklist=["b1", "both"]),
        flag("legacy.env", percentage=100.0, environments=["production", "staging"], environment_overrides={"staging": False}),
        flag("legacy.with-rule", percentage=0.0, whitelist=["w1"], rules=[{"clauses": [c("plan", "in", ["enterprise"])], "serve": {"variant": "on"}}]),
        flag("legacy.killed", enabled=False, whitelist=["w1"], percentage=100.0),
        flag("legacy.target-off", percentage=100.0, targets=[{"variant": "off", "user_ids": ["t1"]}]),
    ]
    tests = []
    for u in [f"user{i}" for i in range(20)]:
        inside = bucket("legacy.rollout", u) < 3000
        tests.append((f"{u} rollout 30%", "legacy.rollout", ctx(user=u), expect(inside, "on" if inside else "off", "PERCENTAGE_ROLLOUT" if inside else "OUTSIDE_ROLLOUT")))
        tests.append((f"{u} the same as a split", "legacy.rollout-as-split", ctx(user=u), expect(inside, "on" if inside else "off", "SPLIT")))
    tests += [
        ("empty user: outside a partial rollout", "legacy.rollout", ctx(user=""), expect(False, "off", "OUTSIDE_ROLLOUT")),
        ("whitelisted", "legacy.lists", ctx(user="w1"), expect(True, "on", "WHITELISTED")),
        ("blacklisted", "legacy.lists", ctx(user="b1"), expect(False, "off", "BLACKLISTED")),
        ("blacklist beats whitelist", "legacy.lists", ctx(user="both"), expect(False, "off", "BLACKLISTED")),
        ("neither", "legacy.lists", ctx(user="n"), expect(False, "off", "OUTSIDE_ROLLOUT")),
        ("allowed environment", "legacy.env", ctx(env="production"), expect(True, "on", "PERCENTAGE_ROLLOUT")),
        ("override off", "legacy.env", ctx(env="staging"), expect(False, "off", "ENVIRONMENT_OVERRIDE")),
        ("not an allowed environment", "legacy.env", ctx(env="dev"), expect(False, "off", "ENVIRONMENT_NOT_ALLOWED")),
        ("a rule on a boolean flag", "legacy.with-rule", ctx(user="n", plan="enterprise"), expect(True, "on", "RULE_MATCH")),
        ("the whitelist beats rules", "legacy.with-rule", ctx(user="w1", plan="free"), expect(True, "on", "WHITELISTED")),
        ("no rule: the rollout", "legacy.with-rule", ctx(user="n", plan="free"), expect(False, "off", "OUTSIDE_ROLLOUT")),
        ("killed beats the whitelist", "legacy.killed", ctx(user="w1"), expect(False, "off", "DISABLED")),
        ("a target serving off", "legacy.target-off", ctx(user="t1"), expect(False, "off", "TARGET_MATCH")),
        ("not a target", "legacy.target-off", ctx(user="t2"), expect(True, "on", "PERCENTAGE_ROLLOUT")),
        ("a missing flag has no value", "legacy.missing", ctx(), expect(None, None, "FLAG_NOT_FOUND")),
    ]
    return {"flags": flags, "segments": []}, [
        {"description": d, "flag": f, "context": cx, "expected": e} for d, f, cx, e in tests
    ]


FILES = [
    ("01-in-equality", "IN / equality on strings, numbers and booleans; case folding; lists", in_equality),
    ("02-strings", "STARTS_WITH, ENDS_WITH, CONTAINS, case folding, negation", strings),
    ("03-numeric", "LT, LTE, GT, GTE; numeric strings; several values", numeric),
    ("04-semver", "SEMVER_*: precedence, pre-releases, partial versions, bad versions", semver),
    ("05-dates", "BEFORE, AFTER: RFC 3339 and Unix seconds; $now", dates),
    ("06-attributes", "EXISTS; $user_id, $environment; absent and uncomparable attributes", exists_and_reserved),
    ("07-regex", "MATCHES: anchoring, case folding, linear time", regex),
    ("08-rules", "rule order, AND of clauses, fallthrough", rules_and_order),
    ("09-segments", "segments: included, excluded, rules, nesting", segments),
    ("10-prerequisites", "prerequisites: on, variants, missing, order", prerequisites),
    ("11-splits", "splits: cumulative weights, salts, bucket_by, missing keys", splits),
    ("12-typed-values", "types, off variants, kill, time window, environments, targets, per-environment answers", typed_values),
    ("13-legacy", "boolean flags with today's fields, and the same flags in the new model", legacy),
]


def documents():
    for stem, description, build in FILES:
        state, tests = build()
        state.setdefault("segments", [])
        for t in tests:
            t["context"].setdefault("at", AT)
        yield stem, {
            "description": description,
            "state": state,
            "tests": tests,
        }


def main():
    check_hash()
    check = "--check" in sys.argv
    total = 0
    stale = []
    for stem, document in documents():
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        path = HERE / f"{stem}.json"
        total += len(document["tests"])
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    print(f"{total} cases in {len(FILES)} files")
    if stale:
        sys.exit(f"out of date: {', '.join(stale)} (run {sys.argv[0]})")


if __name__ == "__main__":
    main()
