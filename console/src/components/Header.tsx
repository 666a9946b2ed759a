// The top bar: navigation, who is signed in (or the sign-in form), and
// the banner for servers that check no tokens.
import { useState } from "preact/hooks";
import { actorName, setActorName, setToken, token } from "../api";
import type { GetCallerResponse } from "../gen/vexil/v1/flags_pb";
import { time } from "../format";
import { canWrite } from "../session";

interface Props {
  caller: GetCallerResponse | null;
  section: string;
  /** Fetches the caller again (after signing in or naming yourself). */
  onSignIn: () => void;
}

export function Header({ caller, section, onSignIn }: Props) {
  const signedIn = !!token();
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M5 3v18M5 4h12l-3 4 3 4H5" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" /></svg>
          Vexil
        </a>
        <nav class="main-nav" aria-label="Main">
          <a href="#/" aria-current={section === "flags" ? "page" : undefined}>Flags</a>
          <a href="#/hygiene" aria-current={section === "hygiene" ? "page" : undefined}>Hygiene</a>
          <a href="#/segments" aria-current={section === "segments" ? "page" : undefined}>Segments</a>
          <a href="#/groups" aria-current={section === "groups" ? "page" : undefined}>Groups</a>
        </nav>
        <div class="who">
          {caller && (
            <span data-testid="caller" class="caller">
              <strong>{caller.actor || "anonymous"}</strong>{" "}
              <span class="muted">
                {caller.authenticated ? caller.roles.join(", ") || "no roles" : "all roles (no auth)"}
                {caller.scoped && ` · may change: ${caller.environments.join(", ")}`}
              </span>
              {caller.expiresAt && <span class="sr-only"> token expires {time(caller.expiresAt)}</span>}
            </span>
          )}
          {signedIn ? (
            <button type="button" class="small" data-testid="sign-out" onClick={() => {
              setToken(null);
              location.reload();
            }}>Sign out</button>
          ) : caller && <SignIn onSignIn={onSignIn} compact />}
        </div>
      </header>
      {caller && !caller.authenticated && (
        <div class="banner" role="note" data-testid="open-banner">
          <strong>This server checks no tokens: anyone who can reach it may change flags.</strong>{" "}
          {canWrite(caller) && <ActorName onChange={onSignIn} />}
        </div>
      )}
    </>
  );
}

/** Without authentication the audit trail records the name sent as x-actor. */
function ActorName({ onChange }: { onChange: () => void }) {
  const [name, setName] = useState(actorName());
  return (
    <label class="actor-name">
      Your name for the audit trail{" "}
      <input data-testid="actor-name" value={name} placeholder="anonymous"
        onInput={(e) => setName(e.currentTarget.value)} onChange={(e) => {
          setActorName(e.currentTarget.value);
          // The caller's actor comes from x-actor: fetch it again.
          onChange();
        }} />
    </label>
  );
}

export function SignIn({ onSignIn, compact }: { onSignIn: () => void; compact?: boolean }) {
  const [value, setValue] = useState("");
  return (
    <form class={compact ? "sign-in compact" : "sign-in card"} onSubmit={(e) => {
      e.preventDefault();
      if (!value.trim()) return;
      setToken(value.trim());
      setValue("");
      onSignIn();
    }}>
      {!compact && <h1>Sign in</h1>}
      {!compact && <p>Paste a bearer token (a JWT). It stays in this tab's session storage and is sent only to this server.</p>}
      <label for="token-input" class={compact ? "sr-only" : undefined}>Bearer token</label>
      <input id="token-input" data-testid="token-input" type="password" autoComplete="off" spellcheck={false}
        placeholder={compact ? "Bearer token" : undefined} value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      <button type="submit" class="primary" data-testid="sign-in">Sign in</button>
    </form>
  );
}
