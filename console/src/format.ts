// Display helpers shared by pages: enum names, times, values, serves.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  FlagType,
  type Flag,
  type Serve,
  type TypedValue,
} from "./gen/vexil/v1/flags_pb";

/** "REASON_RULE_MATCH" style enum value → "rule match". */
export function label(names: Record<number, string>, value: number): string {
  const name = names[value];
  return name ? name.toLowerCase().replace(/_/g, " ") : String(value);
}

export function typeName(type: FlagType): string {
  return FlagType[type] ?? String(type);
}

export function time(ts: Timestamp | undefined): string {
  if (!ts) return "";
  return timestampDate(ts).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function value(v: TypedValue | undefined): string {
  const kind = v?.value;
  if (!kind?.case) return "(none)";
  switch (kind.case) {
    case "objectValue":
      return JSON.stringify(kind.value);
    case "stringValue":
      return JSON.stringify(kind.value);
    default:
      return String(kind.value);
  }
}

export function serve(s: Serve | undefined): string {
  const kind = s?.kind;
  if (!kind?.case) return "";
  if (kind.case === "variant") return kind.value;
  return kind.value.weights.map((w) => `${w.variant} ${w.weight / 100}%`).join(" / ");
}

/** One line saying what the flag serves when on, for the list. */
export function rollout(flag: Flag): string {
  const fall = serve(flag.fallthrough);
  const rules = flag.rules.length ? `${flag.rules.length} rule${flag.rules.length > 1 ? "s" : ""}, ` : "";
  if (fall) return `${rules}${fall}`;
  return `${rules}${flag.percentage}%`;
}

export function count(n: number | bigint): string {
  return Number(n).toLocaleString();
}
