// The edit form's model: a flag as the strings people type, converted to
// and from the protobuf Flag. Validation here mirrors the server's obvious
// checks and reports them under the same field paths the server uses.
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Bucketing,
  FlagSchema,
  FlagType,
  Operator,
  ServeSchema,
  type ClauseValue,
  type Flag,
  type Serve,
  type TypedValue,
} from "./gen/vexil/v1/flags_pb";

export interface ServeDraft {
  /** "none": a BOOLEAN flag's percentage rollout serves. */
  kind: "none" | "variant" | "split";
  variant: string;
  weights: { variant: string; weight: string }[];
  bucketBy: string;
  // Kept as they were: the form does not edit them.
  salt?: string;
  bucketing: Bucketing;
}

export interface ClauseDraft {
  attribute: string;
  op: Operator;
  values: string;
  negate: boolean;
  caseInsensitive: boolean;
}

export interface RuleDraft {
  id: string;
  description: string;
  clauses: ClauseDraft[];
  serve: ServeDraft;
}

export interface Draft {
  name: string;
  type: FlagType;
  description: string;
  enabled: boolean;
  percentage: string;
  whitelist: string;
  blacklist: string;
  environments: string;
  overrides: { env: string; on: boolean }[];
  startsAt: string;
  expiresAt: string;
  tags: string;
  metadata: string;
  group: string;
  variants: { name: string; value: string; description: string }[];
  offVariant: string;
  targets: { variant: string; userIds: string }[];
  rules: RuleDraft[];
  fallthrough: ServeDraft;
  prerequisites: { flag: string; variants: string }[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NO_VALUES = new Set([Operator.EXISTS]);
const NUMERIC = new Set([Operator.LT, Operator.LTE, Operator.GT, Operator.GTE, Operator.BEFORE, Operator.AFTER]);

export function emptyServe(kind: ServeDraft["kind"]): ServeDraft {
  return { kind, variant: "", weights: [], bucketBy: "", bucketing: Bucketing.VEXIL };
}

export function emptyDraft(type: FlagType): Draft {
  const typed = type !== FlagType.BOOLEAN;
  return {
    name: "", type, description: "", enabled: true, percentage: "0",
    whitelist: "", blacklist: "", environments: "", overrides: [],
    startsAt: "", expiresAt: "", tags: "", metadata: "", group: "",
    variants: [], offVariant: "", targets: [], rules: [],
    fallthrough: emptyServe(typed ? "variant" : "none"), prerequisites: [],
  };
}

export function emptyClause(): ClauseDraft {
  return { attribute: "", op: Operator.IN, values: "", negate: false, caseInsensitive: false };
}

/** The variant names a flag of this draft can serve. */
export function variantNames(d: Draft): string[] {
  return d.type === FlagType.BOOLEAN ? ["on", "off"] : d.variants.map((v) => v.name).filter(Boolean);
}

// ---- Flag → Draft ----

function local(ts: Flag["startsAt"]): string {
  if (!ts) return "";
  const d = timestampDate(ts);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function valueText(v: TypedValue | undefined): string {
  const kind = v?.value;
  if (!kind?.case) return "";
  if (kind.case === "objectValue") return JSON.stringify(kind.value, null, 2);
  return String(kind.value);
}

function clauseText(v: ClauseValue): string {
  const kind = v.value;
  if (kind.case === "stringValue") {
    // Quote what would otherwise read back as a number, a boolean or a list.
    const s = kind.value;
    return /[",]/.test(s) || s !== s.trim() || s === "" || s === "true" || s === "false" || isFinite(Number(s))
      ? JSON.stringify(s)
      : s;
  }
  return kind.case ? String(kind.value) : "";
}

function serveDraft(s: Serve | undefined, typed: boolean): ServeDraft {
  const kind = s?.kind;
  if (kind?.case === "variant") return { ...emptyServe("variant"), variant: kind.value };
  if (kind?.case === "split") {
    return {
      kind: "split",
      variant: "",
      weights: kind.value.weights.map((w) => ({ variant: w.variant, weight: String(w.weight) })),
      bucketBy: kind.value.bucketBy,
      salt: kind.value.salt,
      bucketing: kind.value.bucketing,
    };
  }
  return emptyServe(typed ? "variant" : "none");
}

export function toDraft(f: Flag): Draft {
  return {
    name: f.name,
    type: f.type,
    description: f.description,
    enabled: f.enabled,
    percentage: String(f.percentage),
    whitelist: f.whitelist.join("\n"),
    blacklist: f.blacklist.join("\n"),
    environments: f.environments.join(", "),
    overrides: Object.entries(f.environmentOverrides).map(([env, on]) => ({ env, on })),
    startsAt: local(f.startsAt),
    expiresAt: local(f.expiresAt),
    tags: f.tags.join(", "),
    metadata: f.metadata ? JSON.stringify(f.metadata, null, 2) : "",
    group: f.group,
    variants: f.variants.map((v) => ({ name: v.name, value: valueText(v.value), description: v.description })),
    offVariant: f.offVariant ?? "",
    targets: f.targets.map((t) => ({ variant: t.variant, userIds: t.userIds.join("\n") })),
    rules: f.rules.map((r) => ({
      id: r.id,
      description: r.description,
      clauses: r.clauses.map((c) => ({
        attribute: c.attribute,
        op: c.op,
        values: c.values.map(clauseText).join(", "),
        negate: c.negate,
        caseInsensitive: c.caseInsensitive,
      })),
      serve: serveDraft(r.serve, true),
    })),
    fallthrough: serveDraft(f.fallthrough, f.type !== FlagType.BOOLEAN),
    prerequisites: f.prerequisites.map((p) => ({ flag: p.flag, variants: p.variants.join(", ") })),
  };
}

// ---- Draft → Flag ----

/** Splits on commas and newlines outside double quotes. */
function splitList(text: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if ((ch === "," || ch === "\n") && !quoted) {
      out.push(current.trim());
      current = "";
    } else current += ch;
  }
  out.push(current.trim());
  return out.filter((s) => s !== "");
}

function clauseValue(raw: string, op: Operator): ClauseValue["value"] {
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
    return { case: "stringValue", value: raw.slice(1, -1) };
  }
  if (op === Operator.IN && (raw === "true" || raw === "false")) return { case: "boolValue", value: raw === "true" };
  if ((op === Operator.IN || NUMERIC.has(op)) && isFinite(Number(raw))) return { case: "numberValue", value: Number(raw) };
  return { case: "stringValue", value: raw };
}

export interface Built {
  flag: Flag;
  errors: Record<string, string>;
}

export function fromDraft(d: Draft): Built {
  const errors: Record<string, string> = {};
  const typed = d.type !== FlagType.BOOLEAN;
  const names = variantNames(d);

  if (!NAME.test(d.name)) errors["flag.name"] = "1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit";

  const percentage = Number(d.percentage || "0");
  if (!typed && !(percentage >= 0 && percentage <= 100)) errors["flag.percentage"] = "must be between 0 and 100";

  const time = (text: string, path: string) => {
    if (!text) return undefined;
    const date = new Date(text);
    if (isNaN(date.getTime())) {
      errors[path] = "not a valid date and time";
      return undefined;
    }
    return timestampFromDate(date);
  };
  const startsAt = time(d.startsAt, "flag.starts_at");
  const expiresAt = time(d.expiresAt, "flag.expires_at");

  let metadata: JsonObject | undefined;
  if (d.metadata.trim()) {
    try {
      const parsed: unknown = JSON.parse(d.metadata);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) metadata = parsed as JsonObject;
      else errors["flag.metadata"] = "must be a JSON object";
    } catch (e) {
      errors["flag.metadata"] = `not valid JSON: ${(e as Error).message}`;
    }
  }

  const overrides: Record<string, boolean> = {};
  d.overrides.forEach((o, i) => {
    if (!o.env.trim()) errors[`flag.environment_overrides[${i}]`] = "environment name required";
    overrides[o.env.trim()] = o.on;
  });

  const variants = typed
    ? d.variants.map((v, i) => {
        if (!v.name) errors[`flag.variants[${i}].name`] = "required";
        if (d.variants.findIndex((w) => w.name === v.name) !== i) errors[`flag.variants[${i}].name`] = "must be unique";
        return { name: v.name, description: v.description, value: { value: typedValue(d.type, v.value, `flag.variants[${i}].value`, errors) } };
      })
    : [];

  const serve = (s: ServeDraft, path: string): Serve | undefined => {
    if (s.kind === "none") return undefined;
    if (s.kind === "variant") {
      if (!names.includes(s.variant)) errors[path] = "choose a variant";
      return create(ServeSchema, { kind: { case: "variant", value: s.variant } });
    }
    const weights = s.weights.map((w, k) => {
      const weight = Number(w.weight);
      if (!Number.isInteger(weight) || weight < 0) errors[`${path}.split.weights[${k}].weight`] = "a whole number of basis points";
      return { variant: w.variant, weight };
    });
    const sum = weights.reduce((a, w) => a + w.weight, 0);
    if (s.bucketing === Bucketing.VEXIL && sum !== 10000) {
      errors[`${path}.split.weights`] = `weights must sum to 10,000 (100%), not ${sum.toLocaleString()}`;
    }
    return create(ServeSchema, {
      kind: { case: "split", value: { weights, bucketBy: s.bucketBy, salt: s.salt, bucketing: s.bucketing } },
    });
  };

  const rules = d.rules.map((r, i) => ({
    id: r.id,
    description: r.description,
    clauses: r.clauses.map((c, j) => {
      const values = NO_VALUES.has(c.op) ? [] : splitList(c.values).map((raw) => ({ value: clauseValue(raw, c.op) }));
      if (!c.attribute && c.op !== Operator.IN_SEGMENT) errors[`flag.rules[${i}].clauses[${j}].attribute`] = "required";
      if (!NO_VALUES.has(c.op) && values.length === 0) errors[`flag.rules[${i}].clauses[${j}].values`] = "at least one value";
      return { attribute: c.attribute, op: c.op, values, negate: c.negate, caseInsensitive: c.caseInsensitive };
    }),
    serve: serve(r.serve, `flag.rules[${i}].serve`),
  }));

  const fallthrough = serve(d.fallthrough, "flag.fallthrough");
  if (typed && !fallthrough) errors["flag.fallthrough"] = "required for typed flags";

  const flag = create(FlagSchema, {
    name: d.name,
    type: d.type,
    description: d.description,
    enabled: d.enabled,
    percentage: typed ? 0 : percentage,
    whitelist: typed ? [] : splitList(d.whitelist),
    blacklist: typed ? [] : splitList(d.blacklist),
    environments: splitList(d.environments),
    environmentOverrides: typed ? {} : overrides,
    startsAt,
    expiresAt,
    tags: splitList(d.tags),
    metadata,
    group: d.group,
    variants,
    offVariant: typed && d.offVariant ? d.offVariant : undefined,
    targets: d.targets.map((t) => ({ variant: t.variant, userIds: splitList(t.userIds) })),
    rules,
    fallthrough,
    prerequisites: d.prerequisites.map((p) => ({ flag: p.flag.trim(), variants: splitList(p.variants) })),
  });
  return { flag, errors };
}

function typedValue(type: FlagType, text: string, path: string, errors: Record<string, string>): TypedValue["value"] {
  switch (type) {
    case FlagType.INT:
      if (!/^-?\d+$/.test(text.trim())) errors[path] = "a whole number";
      else return { case: "intValue", value: BigInt(text.trim()) };
      break;
    case FlagType.FLOAT: {
      const n = Number(text);
      if (text.trim() === "" || !isFinite(n)) errors[path] = "a finite number";
      else return { case: "floatValue", value: n };
      break;
    }
    case FlagType.OBJECT:
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return { case: "objectValue", value: parsed as JsonObject };
        errors[path] = "must be a JSON object";
      } catch {
        errors[path] = "not valid JSON";
      }
      break;
    default:
      return { case: "stringValue", value: text };
  }
  return { case: undefined };
}
