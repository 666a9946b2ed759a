// The console's one way to the server: Vexil's own gRPC API over gRPC-Web
// on the origin that served the page, with the signed-in token (if any)
// as the bearer on every call.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { EvaluationService, FlagService } from "./gen/vexil/v1/flags_pb";

const TOKEN_KEY = "vexil.token";
const ACTOR_KEY = "vexil.actor";

/** The bearer token, kept in session storage only (never in URLs). */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The name a server without authentication records as the actor of changes. */
export function actorName(): string {
  return sessionStorage.getItem(ACTOR_KEY) ?? "";
}

export function setActorName(value: string) {
  if (value.trim()) sessionStorage.setItem(ACTOR_KEY, value.trim());
  else sessionStorage.removeItem(ACTOR_KEY);
}

const bearer: Interceptor = (next) => async (request) => {
  const value = token();
  if (value) request.header.set("authorization", `Bearer ${value}`);
  else {
    // Only a server checking no tokens reads x-actor; with a token the
    // token's subject is the actor.
    const actor = actorName();
    if (actor) request.header.set("x-actor", actor);
  }
  return next(request);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

export const flags = createClient(FlagService, transport);
export const evaluation = createClient(EvaluationService, transport);
