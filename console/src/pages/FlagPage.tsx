// One flag: its definition, the kill switch, edit and delete, and tabs for
// the audit trail, metrics and explain. Follows Watch for this flag so the
// page shows changes made elsewhere.
import { useEffect, useState } from "preact/hooks";
import { flags } from "../api";
import { ChangeKind, FlagType, Operator, type Flag } from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { label, serve, time, typeName, value } from "../format";
import { href, navigate } from "../route";
import { canEditFlag, canWrite, useCaller } from "../session";
import { announce } from "../status";
import { follow } from "../watch";
import { KillSwitch } from "../components/KillSwitch";
import { ProblemView } from "../components/ProblemView";
import { ReasonDialog } from "../components/ReasonDialog";
import { AuditTrail } from "./AuditTrail";
import { Explain } from "./Explain";
import { FlagForm } from "./FlagForm";
import { Metrics } from "./Metrics";

const TABS = [
  ["", "Definition"],
  ["audit", "Audit trail"],
  ["metrics", "Metrics"],
  ["explain", "Explain"],
] as const;

export function FlagPage({ name, tab }: { name: string; tab: string }) {
  const caller = useCaller();
  const [flag, setFlag] = useState<Flag | null>(null);
  const [gone, setGone] = useState(false);
  const [failure, setFailure] = useState<Problem | null>(null);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);

  async function load() {
    try {
      setFlag(await flags.getFlag({ name }));
      setGone(false);
      setFailure(null);
    } catch (err) {
      setFailure(problem(err));
    }
  }

  useEffect(() => {
    setFlag(null);
    setEditing(false);
    void load();
  }, [name]);

  // Live: newer versions of this flag replace the one shown (the edit form
  // keeps the version it started from, so a save then reports the conflict).
  const revision = flag?.revision;
  const loaded = revision !== undefined;
  useEffect(() => {
    if (!loaded) return;
    const abort = new AbortController();
    void follow({
      since: revision,
      flagNames: [name],
      signal: abort.signal,
      onEvent: (event) => {
        if (event.case === "change" && event.value.flagName === name) {
          if (event.value.kind === ChangeKind.DELETED) setGone(true);
          else if (event.value.flag) {
            const next = event.value.flag;
            setGone(false);
            setFlag((f) => (f && f.revision >= next.revision ? f : next));
          }
        } else if (event.case === "snapshot") {
          const next = event.value.flags.find((f) => f.name === name);
          if (next) setFlag((f) => (f && f.revision >= next.revision ? f : next));
        }
      },
    });
    return () => abort.abort();
  }, [name, loaded]);

  if (failure) return <section><h1>{name}</h1><ProblemView problem={failure} /></section>;
  if (!flag) return <p class="muted">Loading…</p>;

  const editable = canEditFlag(caller, flag);
  const writer = canWrite(caller);

  if (editing) {
    return (
      <section>
        <h1>Edit {flag.name}</h1>
        <FlagForm
          base={flag}
          onSaved={(saved) => {
            setFlag(saved);
            setEditing(false);
          }}
          onCancel={() => setEditing(false)}
        />
      </section>
    );
  }

  return (
    <section>
      <p class="crumbs"><a href="#/">Flags</a> /</p>
      <div class="page-head">
        <h1 class="flag-title">
          {flag.name}{" "}
          <span class={flag.enabled ? "badge on" : "badge off"} data-testid="flag-state">{flag.enabled ? "enabled" : "killed"}</span>
          {gone && <span class="badge">deleted</span>}
        </h1>
        {writer && !gone && (
          <div class="actions">
            <KillSwitch flag={flag} disabled={!editable} onChanged={setFlag} />
            <button type="button" data-testid="edit" disabled={!editable} onClick={() => setEditing(true)}>Edit</button>
            <button type="button" class="danger" data-testid="delete" disabled={!editable} onClick={() => setDeleting(true)}>Delete</button>
          </div>
        )}
      </div>
      {writer && !editable && (
        <p class="notice info">Your token may change only flags confined to {caller?.environments.join(", ")}; this one is read-only for you.</p>
      )}
      {flag.description && <p>{flag.description}</p>}
      <nav class="tabs" aria-label="Flag sections">
        {TABS.map(([id, text]) => (
          <a key={id} href={href(["flags", name, ...(id ? [id] : [])])} data-testid={`tab-${id || "definition"}`}
            aria-current={tab === id ? "page" : undefined}>{text}</a>
        ))}
      </nav>
      {tab === "" && <Definition flag={flag} />}
      {tab === "audit" && <AuditTrail flag={flag} onRestored={setFlag} />}
      {tab === "metrics" && <Metrics flag={flag} />}
      {tab === "explain" && <Explain flag={flag} />}
      {deleting && (
        <ReasonDialog
          title={`Delete ${flag.name}`}
          confirmLabel="Delete flag"
          danger
          onClose={() => setDeleting(false)}
          onReload={load}
          onConfirm={async (reason) => {
            await flags.deleteFlag({ name: flag.name, reason, expectedRevision: flag.revision });
            announce(`${flag.name} deleted`);
            navigate("#/");
          }}
        >
          <p>Callers asking for it will get "not found" (their code default). The audit trail keeps its history and can restore it.</p>
        </ReasonDialog>
      )}
    </section>
  );
}

function Definition({ flag }: { flag: Flag }) {
  const typed = flag.type !== FlagType.BOOLEAN;
  const rows: [string, preact.ComponentChildren][] = [
    ["Type", typeName(flag.type).toLowerCase()],
    ["Revision", String(flag.revision)],
    ["Group", flag.group || "—"],
    ["Tags", flag.tags.join(", ") || "—"],
    ["Environments", flag.environments.join(", ") || "all"],
    ["Starts at", time(flag.startsAt) || "—"],
    ["Expires at", time(flag.expiresAt) || "—"],
  ];
  if (!typed) {
    rows.push(
      ["Percentage", `${flag.percentage}%`],
      ["Whitelist", list(flag.whitelist)],
      ["Blacklist", list(flag.blacklist)],
      ["Environment overrides", Object.entries(flag.environmentOverrides).map(([e, on]) => `${e}: ${on ? "on" : "off"}`).join(", ") || "—"],
    );
  } else {
    rows.push(
      ["Variants", (
        <ul class="plain">
          {flag.variants.map((v) => <li key={v.name}><code>{v.name}</code> = <code>{value(v.value)}</code> {v.description && <span class="muted">— {v.description}</span>}</li>)}
        </ul>
      )],
      ["Off variant", flag.offVariant ?? "(none)"],
    );
  }
  rows.push(
    ["Targets", flag.targets.length ? flag.targets.map((t) => `${t.variant}: ${t.userIds.length} users`).join("; ") : "—"],
    ["Rules", flag.rules.length ? (
      <ol class="plain">
        {flag.rules.map((r, i) => (
          <li key={i}>
            {r.id && <code>{r.id}</code>} if{" "}
            {r.clauses.map((c) => `${c.attribute} ${c.negate ? "not " : ""}${label(Operator, c.op)} ${c.values.map((v) => JSON.stringify(v.value.value)).join(", ")}`).join(" and ")}
            {" → "}<strong>{serve(r.serve)}</strong> {r.description && <span class="muted">— {r.description}</span>}
          </li>
        ))}
      </ol>
    ) : "—"],
    ["Fallthrough", serve(flag.fallthrough) || (typed ? "—" : "percentage rollout")],
    ["Prerequisites", flag.prerequisites.map((p) => `${p.flag}${p.variants.length ? ` = ${p.variants.join("|")}` : " on"}`).join(", ") || "—"],
    ["Metadata", flag.metadata ? <pre>{JSON.stringify(flag.metadata, null, 2)}</pre> : "—"],
    ["Created", `${time(flag.createdAt)} by ${flag.createdBy}`],
    ["Updated", `${time(flag.updatedAt)} by ${flag.updatedBy}`],
  );
  return (
    <dl class="definition">
      {rows.map(([k, v]) => (
        <div key={k}><dt>{k}</dt><dd>{v}</dd></div>
      ))}
    </dl>
  );
}

function list(ids: string[]): string {
  if (!ids.length) return "—";
  return ids.length > 20 ? `${ids.slice(0, 20).join(", ")} … (${ids.length} in all)` : ids.join(", ");
}
