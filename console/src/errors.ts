// Turns server errors into something a person can act on: validation
// messages ("flag.rules[0].id: ...") go next to the field they name.
import { Code, ConnectError } from "@connectrpc/connect";

export interface Problem {
  code: Code | null;
  message: string;
  /** Field path → message, for INVALID_ARGUMENT naming a field. */
  fields: Record<string, string>;
}

// "flag.variants[1].name: must be unique" → path and message.
const FIELD = /^([A-Za-z_][\w.[\]]*): ([\s\S]*)$/;

export function problem(err: unknown): Problem {
  const error = ConnectError.from(err);
  const fields: Record<string, string> = {};
  if (error.code === Code.InvalidArgument) {
    const match = FIELD.exec(error.rawMessage);
    if (match?.[1] && match[2]) fields[match[1]] = match[2];
  }
  return { code: error.code, message: describe(error), fields };
}

function describe(error: ConnectError): string {
  switch (error.code) {
    case Code.Unauthenticated:
      return "Not signed in, or your token has expired: sign in again.";
    case Code.PermissionDenied:
      return `Your token may not do this: ${error.rawMessage}`;
    case Code.Aborted:
      return "Changed by someone else since you opened it.";
    case Code.NotFound:
      return `Not found: ${error.rawMessage}`;
    case Code.Unavailable:
      return `The server is unreachable: ${error.rawMessage}`;
    default:
      return error.rawMessage || Code[error.code];
  }
}

export function isAuthProblem(p: Problem | null): boolean {
  return p?.code === Code.Unauthenticated || p?.code === Code.PermissionDenied;
}

/**
 * Hands out field errors to the inputs that render them, so that whatever
 * no input claimed can be shown at form level instead of getting lost.
 */
export class FieldErrors {
  private claimed = new Set<string>();
  constructor(private readonly all: Record<string, string>) {}

  /**
   * Errors for `path` itself or an element of it ("values[2]"); `deep`
   * also takes anything under it ("serve.split.weights[0]") no input shows.
   */
  take(path: string, deep = false): { path: string; message: string }[] {
    const found = [];
    for (const [key, message] of Object.entries(this.all)) {
      if (this.claimed.has(key)) continue;
      const rest = key.startsWith(path) ? key.slice(path.length) : null;
      if (rest === null) continue;
      if (rest === "" || /^(\[\d+\])+$/.test(rest) || (deep && /^[.[]/.test(rest))) {
        this.claimed.add(key);
        found.push({ path: key, message });
      }
    }
    return found;
  }

  /** Errors no input has claimed by now. */
  rest(): { path: string; message: string }[] {
    return Object.entries(this.all)
      .filter(([key]) => !this.claimed.has(key))
      .map(([path, message]) => ({ path, message }));
  }
}
