// "Why does user X get this answer?": ExplainEvaluation with a user id,
// an environment and a typed JSON context, showing every step the engine
// took, the clauses it checked and the bucket it computed.
import { useState } from "preact/hooks";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { flags } from "../api";
import { EvaluationRule, Reason, type ExplainEvaluationResponse, type Flag } from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { label, value } from "../format";
import { ProblemView } from "../components/ProblemView";

/** Parses the context: a JSON object of strings, numbers, booleans and lists (objects for "$.a.b" paths). */
function parseContext(text: string): { context?: JsonObject; error?: string } {
  if (!text.trim()) return { context: {} };
  let parsed: JsonValue;
  try {
    parsed = JSON.parse(text) as JsonValue;
  } catch (e) {
    return { error: `Not valid JSON: ${(e as Error).message}` };
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return { error: "The context must be a JSON object, e.g. {\"plan\": \"pro\"}" };
  const keys = Object.keys(parsed);
  if (keys.length > 100) return { error: "At most 100 attributes" };
  for (const [key, v] of Object.entries(parsed)) {
    if (v === null) return { error: `"${key}" is null: nulls count as absent; leave it out` };
    if (Array.isArray(v)) {
      if (v.length > 100) return { error: `"${key}" has more than 100 elements` };
      if (v.some((x) => x === null || typeof x === "object")) return { error: `"${key}": lists may hold only strings, numbers and booleans` };
    }
  }
  return { context: parsed };
}

export function Explain({ flag }: { flag: Flag }) {
  const [user, setUser] = useState("");
  const [environment, setEnvironment] = useState(flag.environments[0] ?? "");
  const [context, setContext] = useState("{}");
  const [contextError, setContextError] = useState<string | null>(null);
  const [result, setResult] = useState<ExplainEvaluationResponse | null>(null);
  const [failure, setFailure] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(e: Event) {
    e.preventDefault();
    const parsed = parseContext(context);
    setContextError(parsed.error ?? null);
    if (!parsed.context) return;
    setBusy(true);
    setFailure(null);
    try {
      setResult(await flags.explainEvaluation({ flagName: flag.name, userId: user, environment, context: parsed.context }));
    } catch (err) {
      setFailure(problem(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="explain">
      <form onSubmit={run} class="explain-form">
        <div class="row2">
          <div class="field">
            <label for="explain-user">User id</label>
            <input id="explain-user" data-testid="explain-user" value={user} onInput={(e) => setUser(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="explain-environment">Environment</label>
            <input id="explain-environment" data-testid="explain-environment" value={environment} onInput={(e) => setEnvironment(e.currentTarget.value)} />
          </div>
        </div>
        <div class="field">
          <label for="explain-context">Context (JSON object: strings, numbers, booleans, lists)</label>
          <textarea id="explain-context" data-testid="explain-context" class="mono" rows={4} value={context}
            aria-invalid={contextError ? true : undefined} aria-describedby={contextError ? "explain-context-error" : undefined}
            onInput={(e) => {
              setContext(e.currentTarget.value);
              setContextError(parseContext(e.currentTarget.value).error ?? null);
            }} />
          {contextError && <p id="explain-context-error" class="field-error" data-testid="error-context">{contextError}</p>}
        </div>
        <button type="submit" class="primary" data-testid="explain-run" disabled={busy}>Explain</button>
      </form>
      {failure && <ProblemView problem={failure} />}
      {result && <Result r={result} />}
    </div>
  );
}

function Result({ r }: { r: ExplainEvaluationResponse }) {
  return (
    <div class="card" data-testid="explain-result" aria-live="polite">
      <p class="answer">
        <span class={r.enabled ? "badge on" : "badge off"} data-testid="explain-enabled">{r.enabled ? "on" : "off"}</span>{" "}
        reason <strong data-testid="explain-reason">{label(Reason, r.reason)}</strong>
        {r.variant && <> · variant <strong data-testid="explain-variant">{r.variant}</strong></>}
        {r.value?.value.case && <> · value <code>{value(r.value)}</code></>}
        {r.ruleIndex !== undefined && <> · rule {r.ruleIndex + 1}</>}
        <span class="muted"> · revision {String(r.revision)}</span>
      </p>
      <ol class="steps">
        {r.steps.map((s, i) => (
          <li key={i} class={s.decided ? "decided" : ""}>
            <strong>{label(EvaluationRule, s.rule)}</strong>{s.decided && " — decided"}: {s.detail}
          </li>
        ))}
      </ol>
      {r.clauses.length > 0 && (
        <table>
          <caption>Clauses checked</caption>
          <thead><tr><th scope="col">Rule</th><th scope="col">Clause</th><th scope="col">Attribute</th><th scope="col">Value seen</th><th scope="col">Held</th></tr></thead>
          <tbody>
            {r.clauses.map((c, i) => (
              <tr key={i}>
                <td>{c.ruleIndex + 1}</td>
                <td>{c.clauseIndex + 1}</td>
                <td><code>{c.attribute}</code></td>
                <td>{c.seen ?? <span class="muted">(absent)</span>}</td>
                <td>{c.matched ? "yes" : "no"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(r.bucket !== undefined || r.threshold !== undefined) && (
        <p>Bucket {r.bucket ?? "(no user id)"} of 10,000; threshold {r.threshold ?? "—"}: {r.bucket !== undefined && r.threshold !== undefined && (r.bucket < r.threshold ? "inside the rollout" : "outside the rollout")}</p>
      )}
      {r.split && (
        <p>
          Split bucket {r.split.bucket ?? "(no key)"}:{" "}
          {r.split.ranges.map((x) => `${x.variant || "(no value)"} [${x.start}, ${x.end})`).join(", ")}
        </p>
      )}
    </div>
  );
}
