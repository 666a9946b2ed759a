// Who is signed in and what they may do. The server checks every call;
// this only decides which controls to offer.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Flag, GetCallerResponse } from "./gen/vexil/v1/flags_pb";

export const CallerContext = createContext<GetCallerResponse | null>(null);

export function useCaller(): GetCallerResponse | null {
  return useContext(CallerContext);
}

/** May change flags at all (editor, or a server checking no tokens). */
export function canWrite(caller: GetCallerResponse | null): boolean {
  if (!caller) return false;
  return !caller.authenticated || caller.roles.includes("editor") || caller.roles.includes("admin");
}

/**
 * May change this flag: a scoped editor only flags confined to its
 * environments (and overrides for them), as the server enforces.
 */
export function canEditFlag(caller: GetCallerResponse | null, flag: Flag): boolean {
  if (!canWrite(caller) || !caller) return false;
  if (!caller.authenticated || !caller.scoped) return true;
  const allowed = new Set(caller.environments);
  return (
    flag.environments.length > 0 &&
    flag.environments.every((env) => allowed.has(env)) &&
    Object.keys(flag.environmentOverrides).every((env) => allowed.has(env))
  );
}
