// The create/edit form with every field of a flag. Client checks catch the
// obvious mistakes; the server's field errors are shown on the same inputs.
// Edits send only the changed fields, at the revision the user started from.
//
// The rule and serve editors are called as plain functions (no hooks) so
// that they claim their field errors during this render, before the form
// shows the unclaimed ones at the top.
import { Fragment, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { Code } from "@connectrpc/connect";
import { flags } from "../api";
import { FlagType, Operator, type Flag, type Group } from "../gen/vexil/v1/flags_pb";
import { diffFlags, show } from "../diff";
import {
  emptyClause,
  emptyDraft,
  emptyServe,
  fromDraft,
  toDraft,
  variantNames,
  type Draft,
  type RuleDraft,
  type ServeDraft,
} from "../draft";
import { FieldErrors, problem, type Problem } from "../errors";
import { count, label, time } from "../format";
import { announce } from "../status";
import { ProblemView } from "../components/ProblemView";

interface Props {
  /** The flag being edited, as the user saw it; absent when creating. */
  base?: Flag;
  type?: FlagType;
  onSaved: (flag: Flag) => void;
  onCancel: () => void;
}

const OPERATORS = Object.values(Operator).filter((v): v is Operator => typeof v === "number" && v !== Operator.UNSPECIFIED);
const SPLIT = "__split__";

export function FlagForm({ base: initialBase, type, onSaved, onCancel }: Props) {
  const [base, setBase] = useState(initialBase);
  const [draft, setDraft] = useState<Draft>(() => (initialBase ? toDraft(initialBase) : emptyDraft(type ?? FlagType.BOOLEAN)));
  const [reason, setReason] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<Problem | null>(null);
  const [conflict, setConflict] = useState<Flag | null>(null);
  const [busy, setBusy] = useState(false);
  const [groups, setGroups] = useState<Group[]>([]);
  const [users, setUsers] = useState<number | null>(null);
  const editing = !!base;
  const typed = draft.type !== FlagType.BOOLEAN;
  const names = variantNames(draft);

  useEffect(() => {
    flags.listGroups({}).then((r) => setGroups(r.groups), () => {});
    if (initialBase) {
      flags.getMetrics({ flagName: initialBase.name, hours: 168 }).then(
        (m) => setUsers(Number(m.totals?.distinctUsers ?? 0n)),
        () => {},
      );
    }
  }, []);

  const update = (patch: Partial<Draft>) => setDraft((d) => ({ ...d, ...patch }));

  async function save(e: Event) {
    e.preventDefault();
    setFailure(null);
    setConflict(null);
    const built = fromDraft(draft);
    setErrors(built.errors);
    if (Object.keys(built.errors).length) {
      announce("Some fields need fixing");
      return;
    }
    let mask: string[] = [];
    if (base) {
      mask = diffFlags(base, built.flag).map((c) => c.field).filter((f) => f !== "name" && f !== "type");
      if (!mask.length) {
        setFailure({ code: null, message: "Nothing changed.", fields: {} });
        return;
      }
      if (!reason.trim()) {
        setErrors({ reason: "required: say why, for the audit trail" });
        return;
      }
    }
    setBusy(true);
    try {
      const saved = base
        ? await flags.updateFlag({ flag: built.flag, updateMask: { paths: mask }, reason: reason.trim(), expectedRevision: base.revision })
        : await flags.createFlag({ flag: built.flag, reason: reason.trim() });
      announce(`${saved.name} saved at revision ${saved.revision}`);
      onSaved(saved);
    } catch (err) {
      const p = problem(err);
      announce(p.message);
      if (p.code === Code.Aborted && base) {
        // Show what changed meanwhile; the form keeps the user's edits.
        const current = await flags.getFlag({ name: base.name }).catch(() => null);
        if (current) return setConflict(current);
      }
      setErrors(p.fields);
      if (!Object.keys(p.fields).length) setFailure(p);
    } finally {
      setBusy(false);
    }
  }

  function reloadFromConflict() {
    if (!conflict) return;
    setBase(conflict);
    setDraft(toDraft(conflict));
    setConflict(null);
    setErrors({});
    announce("Reloaded the current version; your edits were discarded");
  }

  const fe = new FieldErrors(errors);
  const err = (path: string, deep = false) => <Err items={fe.take(path, deep)} />;

  const body = (
    <>
      <fieldset>
        <legend>Flag</legend>
        <Field id="name" label="Name" error={err("flag.name")}>
          <input id="f-name" data-testid="field-name" value={draft.name} disabled={editing} required
            pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,127}" onInput={(e) => update({ name: e.currentTarget.value })} />
        </Field>
        <Field id="type" label="Type" error={err("flag.type")}>
          <select id="f-type" data-testid="field-type" value={String(draft.type)} disabled={editing}
            onChange={(e) => setDraft({ ...emptyDraft(Number(e.currentTarget.value) as FlagType), name: draft.name, description: draft.description })}>
            {[FlagType.BOOLEAN, FlagType.STRING, FlagType.INT, FlagType.FLOAT, FlagType.OBJECT].map((t) => (
              <option key={t} value={String(t)}>{FlagType[t]}</option>
            ))}
          </select>
        </Field>
        <Field id="description" label="Description" error={err("flag.description")}>
          <textarea id="f-description" data-testid="field-description" rows={2} value={draft.description}
            onInput={(e) => update({ description: e.currentTarget.value })} />
        </Field>
        <div class="check">
          <input id="f-enabled" type="checkbox" data-testid="field-enabled" checked={draft.enabled}
            onChange={(e) => update({ enabled: e.currentTarget.checked })} />
          <label for="f-enabled">Enabled (unchecked: killed, off for everyone)</label>
        </div>
        <Field id="group" label="Group" error={err("flag.group")}>
          <select id="f-group" data-testid="field-group" value={draft.group} onChange={(e) => update({ group: e.currentTarget.value })}>
            <option value="">(none)</option>
            {draft.group && !groups.some((g) => g.name === draft.group) && <option value={draft.group}>{draft.group}</option>}
            {groups.map((g) => <option key={g.name} value={g.name}>{g.name}</option>)}
          </select>
        </Field>
        <Field id="tags" label="Tags (comma-separated)" error={err("flag.tags")}>
          <input id="f-tags" data-testid="field-tags" value={draft.tags} onInput={(e) => update({ tags: e.currentTarget.value })} />
        </Field>
      </fieldset>

      <fieldset>
        <legend>Where and when</legend>
        <Field id="environments" label="Environments (comma-separated; empty: all)" error={err("flag.environments")}>
          <input id="f-environments" data-testid="field-environments" value={draft.environments}
            onInput={(e) => update({ environments: e.currentTarget.value })} />
        </Field>
        <div class="row2">
          <Field id="starts_at" label="Starts at (local time)" error={err("flag.starts_at", true)}>
            <input id="f-starts_at" type="datetime-local" step="1" data-testid="field-starts_at" value={draft.startsAt}
              onInput={(e) => update({ startsAt: e.currentTarget.value })} />
          </Field>
          <Field id="expires_at" label="Expires at (local time)" error={err("flag.expires_at", true)}>
            <input id="f-expires_at" type="datetime-local" step="1" data-testid="field-expires_at" value={draft.expiresAt}
              onInput={(e) => update({ expiresAt: e.currentTarget.value })} />
          </Field>
        </div>
      </fieldset>

      {!typed && (
        <fieldset>
          <legend>Rollout</legend>
          <Field id="percentage" label="Percentage of users (0–100)" error={err("flag.percentage")}>
            <input id="f-percentage" data-testid="field-percentage" inputMode="decimal" value={draft.percentage}
              onInput={(e) => update({ percentage: e.currentTarget.value })} />
            <Affected users={users} share={Math.abs(Number(draft.percentage) - (base?.percentage ?? 0)) / 100} />
          </Field>
          <div class="row2">
            <Field id="whitelist" label="Whitelist: user ids always on (one a line)" error={err("flag.whitelist")}>
              <textarea id="f-whitelist" data-testid="field-whitelist" rows={3} value={draft.whitelist}
                onInput={(e) => update({ whitelist: e.currentTarget.value })} />
            </Field>
            <Field id="blacklist" label="Blacklist: user ids always off (beats the whitelist)" error={err("flag.blacklist")}>
              <textarea id="f-blacklist" data-testid="field-blacklist" rows={3} value={draft.blacklist}
                onInput={(e) => update({ blacklist: e.currentTarget.value })} />
            </Field>
          </div>
          <h3>Environment overrides</h3>
          {err("flag.environment_overrides", true)}
          {draft.overrides.map((o, i) => (
            <div class="inline" key={i}>
              <input aria-label={`Override ${i + 1} environment`} data-testid={`override-${i}-env`} value={o.env}
                onInput={(e) => update({ overrides: replaceAt(draft.overrides, i, { ...o, env: e.currentTarget.value }) })} />
              <select aria-label={`Override ${i + 1} state`} data-testid={`override-${i}-on`} value={o.on ? "on" : "off"}
                onChange={(e) => update({ overrides: replaceAt(draft.overrides, i, { ...o, on: e.currentTarget.value === "on" }) })}>
                <option value="on">on</option>
                <option value="off">off</option>
              </select>
              <button type="button" class="small" onClick={() => update({ overrides: removeAt(draft.overrides, i) })}>Remove</button>
            </div>
          ))}
          <button type="button" class="small" data-testid="add-override"
            onClick={() => update({ overrides: [...draft.overrides, { env: "", on: true }] })}>Add override</button>
        </fieldset>
      )}

      {typed && (
        <fieldset>
          <legend>Variants</legend>
          {err("flag.variants")}
          {draft.variants.map((v, i) => (
            <div class="variant" key={i}>
              <Field id={`variant-name-${i}`} label="Name" error={err(`flag.variants[${i}].name`)}>
                <input id={`f-variant-name-${i}`} data-testid={`variant-name-${i}`} value={v.name}
                  onInput={(e) => update({ variants: replaceAt(draft.variants, i, { ...v, name: e.currentTarget.value }) })} />
              </Field>
              <Field id={`variant-value-${i}`} label={`Value (${FlagType[draft.type].toLowerCase()})`} error={err(`flag.variants[${i}].value`, true)}>
                {draft.type === FlagType.OBJECT ? (
                  <textarea id={`f-variant-value-${i}`} data-testid={`variant-value-${i}`} rows={3} class="mono" value={v.value}
                    onInput={(e) => update({ variants: replaceAt(draft.variants, i, { ...v, value: e.currentTarget.value }) })} />
                ) : (
                  <input id={`f-variant-value-${i}`} data-testid={`variant-value-${i}`} value={v.value}
                    inputMode={draft.type === FlagType.STRING ? undefined : "decimal"}
                    onInput={(e) => update({ variants: replaceAt(draft.variants, i, { ...v, value: e.currentTarget.value }) })} />
                )}
              </Field>
              <Field id={`variant-description-${i}`} label="Description" error={err(`flag.variants[${i}].description`)}>
                <input id={`f-variant-description-${i}`} data-testid={`variant-description-${i}`} value={v.description}
                  onInput={(e) => update({ variants: replaceAt(draft.variants, i, { ...v, description: e.currentTarget.value }) })} />
              </Field>
              <button type="button" class="small" aria-label={`Remove variant ${v.name || i + 1}`}
                onClick={() => update({ variants: removeAt(draft.variants, i) })}>Remove</button>
            </div>
          ))}
          <button type="button" class="small" data-testid="add-variant"
            onClick={() => update({ variants: [...draft.variants, { name: "", value: draft.type === FlagType.OBJECT ? "{}" : "", description: "" }] })}>
            Add variant
          </button>
          <Field id="off_variant" label="Off variant (served when the flag is off)" error={err("flag.off_variant")}>
            <select id="f-off_variant" data-testid="field-off_variant" value={draft.offVariant}
              onChange={(e) => update({ offVariant: e.currentTarget.value })}>
              <option value="">(none: callers get their code default)</option>
              {names.map((n) => <option key={n} value={n}>{n}</option>)}
            </select>
          </Field>
        </fieldset>
      )}

      <fieldset>
        <legend>Targeting</legend>
        <h3>Individual targets</h3>
        {draft.targets.map((t, i) => (
          <div class="inline" key={i}>
            <select aria-label={`Target ${i + 1} variant`} data-testid={`target-${i}-variant`} value={t.variant}
              onChange={(e) => update({ targets: replaceAt(draft.targets, i, { ...t, variant: e.currentTarget.value }) })}>
              <option value="">(choose)</option>
              {names.map((n) => <option key={n} value={n}>{n}</option>)}
            </select>
            <textarea aria-label={`Target ${i + 1} user ids`} data-testid={`target-${i}-users`} rows={2} value={t.userIds}
              placeholder="user ids, one a line" onInput={(e) => update({ targets: replaceAt(draft.targets, i, { ...t, userIds: e.currentTarget.value }) })} />
            <button type="button" class="small" onClick={() => update({ targets: removeAt(draft.targets, i) })}>Remove</button>
            {err(`flag.targets[${i}]`, true)}
          </div>
        ))}
        {err("flag.targets")}
        <button type="button" class="small" data-testid="add-target"
          onClick={() => update({ targets: [...draft.targets, { variant: "", userIds: "" }] })}>Add target</button>

        <h3>Rules (the first whose clauses all hold decides)</h3>
        {err("flag.rules")}
        {draft.rules.map((r, i) => (
          <Fragment key={i}>
            {RuleEditor({
              index: i, rule: r, names, count: draft.rules.length, err, users,
              onChange: (rule) => update({ rules: replaceAt(draft.rules, i, rule) }),
              onRemove: () => update({ rules: removeAt(draft.rules, i) }),
              onMove: (to) => update({ rules: move(draft.rules, i, to) }),
            })}
          </Fragment>
        ))}
        <button type="button" class="small" data-testid="add-rule"
          onClick={() => update({ rules: [...draft.rules, { id: "", description: "", clauses: [emptyClause()], serve: { ...emptyServe("variant"), variant: names[0] ?? "" } }] })}>
          Add rule
        </button>

        <h3>Fallthrough (when no rule decides)</h3>
        {ServeEditor({
          id: "fallthrough", label: "Serve", serve: draft.fallthrough, names, allowNone: !typed, path: "flag.fallthrough", err,
          users, baseline: base ? toDraft(base).fallthrough : undefined, onChange: (fallthrough) => update({ fallthrough }),
        })}

        <h3>Prerequisites</h3>
        {draft.prerequisites.map((p, i) => (
          <div class="inline" key={i}>
            <input aria-label={`Prerequisite ${i + 1} flag`} data-testid={`prerequisite-${i}-flag`} placeholder="flag name" value={p.flag}
              onInput={(e) => update({ prerequisites: replaceAt(draft.prerequisites, i, { ...p, flag: e.currentTarget.value }) })} />
            <input aria-label={`Prerequisite ${i + 1} variants`} data-testid={`prerequisite-${i}-variants`} placeholder="variants (empty: must be on)" value={p.variants}
              onInput={(e) => update({ prerequisites: replaceAt(draft.prerequisites, i, { ...p, variants: e.currentTarget.value }) })} />
            <button type="button" class="small" onClick={() => update({ prerequisites: removeAt(draft.prerequisites, i) })}>Remove</button>
            {err(`flag.prerequisites[${i}]`, true)}
          </div>
        ))}
        {err("flag.prerequisites")}
        <button type="button" class="small" data-testid="add-prerequisite"
          onClick={() => update({ prerequisites: [...draft.prerequisites, { flag: "", variants: "" }] })}>Add prerequisite</button>
      </fieldset>

      <fieldset>
        <legend>Metadata</legend>
        <Field id="metadata" label="Metadata (JSON object for clients)" error={err("flag.metadata", true)}>
          <textarea id="f-metadata" data-testid="field-metadata" class="mono" rows={4} value={draft.metadata}
            onInput={(e) => update({ metadata: e.currentTarget.value })} />
        </Field>
      </fieldset>

      <Field id="reason" label={editing ? "Reason for this change (audit trail)" : "Reason (optional, audit trail)"} error={err("reason")}>
        <input id="f-reason" data-testid="field-reason" value={reason} required={editing} onInput={(e) => setReason(e.currentTarget.value)} />
      </Field>
    </>
  );

  // Field errors no input claimed (a path the form does not show) go on top.
  const unclaimed = fe.rest();
  return (
    <form class="flag-form" onSubmit={save} noValidate>
      {conflict && (
        <div class="notice warn" data-testid="conflict" role="alert">
          <p>
            <strong>{conflict.name} was changed by someone else since you opened it</strong> (now revision {String(conflict.revision)}
            , by {conflict.updatedBy} at {time(conflict.updatedAt)}). Nothing was saved or overwritten.
          </p>
          <ul class="diff">
            {diffFlags(base, conflict).map((c) => (
              <li key={c.field}><code>{c.field}</code>: {show(c.before)} → {show(c.after)}</li>
            ))}
          </ul>
          <button type="button" data-testid="reload" onClick={reloadFromConflict}>Load the current version (discards your edits)</button>
        </div>
      )}
      {failure && <ProblemView problem={failure} />}
      {unclaimed.length > 0 && (
        <div class="notice error" data-testid="form-error" role="alert">
          {unclaimed.map((u) => <p key={u.path} data-testid={`error-${u.path}`}>{u.path}: {u.message}</p>)}
        </div>
      )}
      {body}
      <div class="actions sticky">
        <button type="button" onClick={onCancel}>Cancel</button>
        <button type="submit" class="primary" data-testid="save" disabled={busy}>{busy ? "Saving…" : editing ? "Save changes" : "Create flag"}</button>
      </div>
    </form>
  );
}

type ErrFn = (path: string, deep?: boolean) => preact.JSX.Element;

function Err({ items }: { items: { path: string; message: string }[] }) {
  if (!items.length) return null;
  return (
    <>
      {items.map((i) => (
        <p key={i.path} class="field-error" data-testid={`error-${i.path}`}>{i.message}</p>
      ))}
    </>
  );
}

function Field({ id, label: text, error, children }: { id: string; label: string; error?: ComponentChildren; children: ComponentChildren }) {
  return (
    <div class="field">
      <label for={`f-${id}`}>{text}</label>
      {children}
      {error}
    </div>
  );
}

function Affected({ users, share }: { users: number | null; share: number }) {
  if (users === null || !isFinite(share) || share === 0) return null;
  return (
    <p class="hint" aria-live="polite">
      ≈ {count(Math.round(users * share))} of {count(users)} users seen in the last 7 days would change answer
    </p>
  );
}

interface RuleProps {
  index: number;
  rule: RuleDraft;
  names: string[];
  count: number;
  users: number | null;
  err: ErrFn;
  onChange: (rule: RuleDraft) => void;
  onRemove: () => void;
  onMove: (to: number) => void;
}

function RuleEditor({ index: i, rule, names, count: total, users, err, onChange, onRemove, onMove }: RuleProps) {
  const path = `flag.rules[${i}]`;
  return (
    <div class="rule" role="group" aria-label={`Rule ${i + 1}`}>
      <div class="rule-head">
        <strong>Rule {i + 1}</strong>
        <button type="button" class="small" disabled={i === 0} aria-label={`Move rule ${i + 1} up`} onClick={() => onMove(i - 1)}>↑</button>
        <button type="button" class="small" disabled={i === total - 1} aria-label={`Move rule ${i + 1} down`} onClick={() => onMove(i + 1)}>↓</button>
        <button type="button" class="small" aria-label={`Remove rule ${i + 1}`} onClick={onRemove}>Remove</button>
      </div>
      {err(path)}
      <div class="row2">
        <Field id={`rule-${i}-id`} label="Id (optional, echoed in answers)" error={err(`${path}.id`)}>
          <input id={`f-rule-${i}-id`} data-testid={`rule-${i}-id`} value={rule.id} onInput={(e) => onChange({ ...rule, id: e.currentTarget.value })} />
        </Field>
        <Field id={`rule-${i}-description`} label="Description" error={err(`${path}.description`)}>
          <input id={`f-rule-${i}-description`} data-testid={`rule-${i}-description`} value={rule.description}
            onInput={(e) => onChange({ ...rule, description: e.currentTarget.value })} />
        </Field>
      </div>
      {err(`${path}.clauses`)}
      {rule.clauses.map((c, j) => {
        const cp = `${path}.clauses[${j}]`;
        const id = `rule-${i}-clause-${j}`;
        const set = (patch: Partial<typeof c>) => onChange({ ...rule, clauses: replaceAt(rule.clauses, j, { ...c, ...patch }) });
        return (
          <div class="clause" key={j}>
            <span class="muted">{j === 0 ? "If" : "and"}</span>
            <div>
              <input aria-label={`Rule ${i + 1} clause ${j + 1} attribute`} data-testid={`${id}-attribute`} placeholder="attribute, e.g. plan or $user_id"
                value={c.attribute} onInput={(e) => set({ attribute: e.currentTarget.value })} />
              {err(`${cp}.attribute`)}
            </div>
            <div>
              <select aria-label={`Rule ${i + 1} clause ${j + 1} operator`} data-testid={`${id}-op`} value={String(c.op)}
                onChange={(e) => set({ op: Number(e.currentTarget.value) as Operator })}>
                {OPERATORS.map((op) => <option key={op} value={String(op)}>{label(Operator, op)}</option>)}
              </select>
              {err(`${cp}.op`)}
            </div>
            <div class="grow">
              <input aria-label={`Rule ${i + 1} clause ${j + 1} values, comma-separated`} data-testid={`${id}-values`}
                placeholder={c.op === Operator.EXISTS ? "(no values)" : 'values, comma-separated; "quote" for text'}
                disabled={c.op === Operator.EXISTS} value={c.values} onInput={(e) => set({ values: e.currentTarget.value })} />
              {err(`${cp}.values`, true)}
            </div>
            <label class="check"><input type="checkbox" data-testid={`${id}-negate`} checked={c.negate} onChange={(e) => set({ negate: e.currentTarget.checked })} /> not</label>
            <label class="check"><input type="checkbox" data-testid={`${id}-case_insensitive`} checked={c.caseInsensitive}
              onChange={(e) => set({ caseInsensitive: e.currentTarget.checked })} /> ignore case</label>
            <button type="button" class="small" aria-label={`Remove clause ${j + 1} of rule ${i + 1}`}
              onClick={() => onChange({ ...rule, clauses: removeAt(rule.clauses, j) })}>✕</button>
            {err(cp)}
          </div>
        );
      })}
      <button type="button" class="small" data-testid={`rule-${i}-add-clause`}
        onClick={() => onChange({ ...rule, clauses: [...rule.clauses, emptyClause()] })}>Add clause</button>
      {ServeEditor({
        id: `rule-${i}-serve`, label: "Then serve", serve: rule.serve, names, allowNone: false, path: `${path}.serve`,
        err, users, onChange: (serve) => onChange({ ...rule, serve }),
      })}
    </div>
  );
}

interface ServeProps {
  id: string;
  label: string;
  serve: ServeDraft;
  names: string[];
  allowNone: boolean;
  path: string;
  err: ErrFn;
  users: number | null;
  baseline?: ServeDraft;
  onChange: (serve: ServeDraft) => void;
}

function ServeEditor({ id, label: text, serve, names, allowNone, path, err, users, baseline, onChange }: ServeProps) {
  const value = serve.kind === "none" ? "" : serve.kind === "split" ? SPLIT : serve.variant;
  function choose(v: string) {
    if (v === "") onChange(emptyServe("none"));
    else if (v === SPLIT) {
      const even = Math.floor(10000 / Math.max(names.length, 1));
      onChange({
        ...serve,
        kind: "split",
        weights: serve.weights.length ? serve.weights : names.map((n, k) => ({ variant: n, weight: String(k === 0 ? 10000 - even * (names.length - 1) : even) })),
      });
    } else onChange({ ...serve, kind: "variant", variant: v });
  }
  const sum = serve.weights.reduce((a, w) => a + (Number(w.weight) || 0), 0);
  // Users moving between variants: half the total absolute change in share.
  const moved =
    baseline?.kind === "split"
      ? serve.weights.reduce((a, w) => {
          const before = baseline.weights.find((b) => b.variant === w.variant);
          return a + Math.abs((Number(w.weight) || 0) - Number(before?.weight ?? 0));
        }, 0) / 20000
      : 0;
  return (
    <div class="serve">
      <div class="field">
        <label for={`f-${id}`}>{text}</label>
        <select id={`f-${id}`} data-testid={id} value={value} onChange={(e) => choose(e.currentTarget.value)}>
          {allowNone && <option value="">(percentage rollout)</option>}
          {!allowNone && !value && <option value="">(choose)</option>}
          {names.map((n) => <option key={n} value={n}>{n}</option>)}
          <option value={SPLIT}>split by percentage…</option>
        </select>
        {err(path)}
      </div>
      {serve.kind === "split" && (
        <div class="split">
          {serve.weights.map((w, k) => (
            <div class="inline" key={k}>
              <select aria-label={`Split variant ${k + 1}`} data-testid={`${id}-split-${k}-variant`} value={w.variant}
                onChange={(e) => onChange({ ...serve, weights: replaceAt(serve.weights, k, { ...w, variant: e.currentTarget.value }) })}>
                {names.map((n) => <option key={n} value={n}>{n}</option>)}
              </select>
              <input aria-label={`Split weight ${k + 1} in basis points`} data-testid={`${id}-split-${k}-weight`} inputMode="numeric" value={w.weight}
                onInput={(e) => onChange({ ...serve, weights: replaceAt(serve.weights, k, { ...w, weight: e.currentTarget.value }) })} />
              <span class="muted">{((Number(w.weight) || 0) / 100).toFixed(2)}%</span>
              <button type="button" class="small" onClick={() => onChange({ ...serve, weights: removeAt(serve.weights, k) })}>Remove</button>
              {err(`${path}.split.weights[${k}]`, true)}
            </div>
          ))}
          <button type="button" class="small" onClick={() => onChange({ ...serve, weights: [...serve.weights, { variant: names[0] ?? "", weight: "0" }] })}>
            Add weight
          </button>
          <div class="field">
            <label for={`f-${id}-bucket_by`}>Bucket by attribute (empty: user id)</label>
            <input id={`f-${id}-bucket_by`} data-testid={`${id}-bucket_by`} value={serve.bucketBy} onInput={(e) => onChange({ ...serve, bucketBy: e.currentTarget.value })} />
          </div>
          <p class={sum === 10000 ? "hint" : "hint warn"}>Weights sum to {count(sum)} of 10,000 basis points.</p>
          {users !== null && moved > 0 && (
            <p class="hint">≈ {count(Math.round(users * moved))} of {count(users)} users seen in the last 7 days would change variant</p>
          )}
          {err(`${path}.split`, true)}
        </div>
      )}
    </div>
  );
}

function replaceAt<T>(list: T[], i: number, item: T): T[] {
  return list.map((x, k) => (k === i ? item : x));
}

function removeAt<T>(list: T[], i: number): T[] {
  return list.filter((_, k) => k !== i);
}

function move<T>(list: T[], from: number, to: number): T[] {
  const out = [...list];
  const [item] = out.splice(from, 1);
  if (item !== undefined) out.splice(to, 0, item);
  return out;
}
