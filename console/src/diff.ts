// Field-by-field differences between two versions of a flag, for the
// audit trail and the concurrent-change notice.
import { create, toJson, type JsonValue } from "@bufbuild/protobuf";
import { FlagSchema, type Flag } from "./gen/vexil/v1/flags_pb";

export interface Change {
  /** The proto field name, as update masks and errors spell it. */
  field: string;
  before: JsonValue | undefined;
  after: JsonValue | undefined;
}

// Bookkeeping every change touches; showing it would bury the real change.
const BOOKKEEPING = new Set(["revision", "updated_at", "updated_by", "created_at", "created_by", "min_engine"]);

function json(flag: Flag): Record<string, JsonValue> {
  return toJson(FlagSchema, flag, { alwaysEmitImplicit: true }) as Record<string, JsonValue>;
}

/**
 * Changed fields only. A missing side (create, delete) counts as an empty
 * flag, so a creation lists just the fields it set.
 */
export function diffFlags(before: Flag | undefined, after: Flag | undefined): Change[] {
  const empty = json(create(FlagSchema));
  const a = before ? json(before) : empty;
  const b = after ? json(after) : empty;
  const changes: Change[] = [];
  for (const field of FlagSchema.fields) {
    if (BOOKKEEPING.has(field.name)) continue;
    const x = a[field.jsonName];
    const y = b[field.jsonName];
    if (JSON.stringify(x) !== JSON.stringify(y)) {
      changes.push({ field: field.name, before: before ? x : undefined, after: after ? y : undefined });
    }
  }
  return changes;
}

export function show(v: JsonValue | undefined): string {
  if (v === undefined) return "—";
  return typeof v === "string" ? v || '""' : JSON.stringify(v);
}
