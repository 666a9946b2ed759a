// A flag's audit trail, newest first: who changed what and why, each entry
// with its field-by-field diff and (for editors) a restore.
import { useEffect, useState } from "preact/hooks";
import { flags } from "../api";
import { AuditAction, type AuditEntry, type Flag } from "../gen/vexil/v1/flags_pb";
import { diffFlags, show } from "../diff";
import { problem, type Problem } from "../errors";
import { label, time } from "../format";
import { canEditFlag, useCaller } from "../session";
import { announce } from "../status";
import { ProblemView } from "../components/ProblemView";
import { ReasonDialog } from "../components/ReasonDialog";

const PAGE = 50;

export function AuditTrail({ flag, onRestored }: { flag: Flag; onRestored: (flag: Flag) => void }) {
  const caller = useCaller();
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [total, setTotal] = useState(0n);
  const [failure, setFailure] = useState<Problem | null>(null);
  const [restoring, setRestoring] = useState<AuditEntry | null>(null);

  async function load(skip: number) {
    try {
      const r = await flags.getAuditTrail({ flagName: flag.name, skip, limit: PAGE });
      setEntries((old) => (skip ? [...(old ?? []), ...r.entries] : r.entries));
      setTotal(r.total);
    } catch (err) {
      setFailure(problem(err));
    }
  }

  // Reload when the flag changes so the newest entry is always there.
  useEffect(() => void load(0), [flag.name, flag.revision]);

  if (failure) return <ProblemView problem={failure} />;
  if (!entries) return <p class="muted">Loading…</p>;
  const editable = canEditFlag(caller, flag);

  return (
    <div class="audit">
      <p class="muted">{String(total)} change{total === 1n ? "" : "s"}</p>
      <ol class="plain">
        {entries.map((entry) => {
          const changes = diffFlags(entry.before, entry.after);
          return (
            <li key={String(entry.id)} class="card" data-testid="audit-entry">
              <div class="entry-head">
                <strong>{label(AuditAction, entry.action)}</strong>
                <span>by {entry.actor}</span>
                <time dateTime={entry.createdAt ? new Date(Number(entry.createdAt.seconds) * 1000).toISOString() : undefined}>
                  {time(entry.createdAt)}
                </time>
                <span class="muted">revision {String(entry.revision)}</span>
              </div>
              {entry.reason && <p class="reason" data-testid="audit-reason">“{entry.reason}”</p>}
              <table class="diff" data-testid="diff">
                <caption class="sr-only">Fields changed at revision {String(entry.revision)}</caption>
                <thead><tr><th scope="col">Field</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
                <tbody>
                  {changes.map((c) => (
                    <tr key={c.field} data-field={c.field}>
                      <th scope="row"><code>{c.field}</code></th>
                      <td class="old">{show(c.before)}</td>
                      <td class="new">{show(c.after)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {editable && entry.action !== AuditAction.DELETE && entry.revision !== flag.revision && (
                <button type="button" class="small" data-testid="restore" onClick={() => setRestoring(entry)}>Restore this version</button>
              )}
            </li>
          );
        })}
      </ol>
      {entries.length < Number(total) && <button type="button" onClick={() => load(entries.length)}>Show older changes</button>}
      {restoring && (
        <ReasonDialog
          title={`Restore ${flag.name} as of revision ${restoring.revision}`}
          confirmLabel="Restore"
          onClose={() => setRestoring(null)}
          onConfirm={async (reason) => {
            const restored = await flags.restoreFlag({ name: flag.name, revision: restoring.revision, reason, expectedRevision: flag.revision });
            setRestoring(null);
            announce(`${flag.name} restored as of revision ${restoring.revision}`);
            onRestored(restored);
          }}
        >
          <p>Every field goes back to how it was after revision {String(restoring.revision)}, as a new audited change.</p>
        </ReasonDialog>
      )}
    </div>
  );
}
