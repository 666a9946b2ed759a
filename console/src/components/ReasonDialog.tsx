// Every write needs a reason for the audit trail: this dialog asks for it
// and for an explicit confirmation, then runs the write and reports its
// failure in place (a conflict offers to reload instead of overwriting).
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { Code } from "@connectrpc/connect";
import { Dialog } from "./Dialog";
import { problem, type Problem } from "../errors";

interface Props {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  children?: ComponentChildren;
  onConfirm: (reason: string) => Promise<void>;
  onClose: () => void;
  /** Fetches the current version after a conflict. */
  onReload?: () => Promise<void>;
}

export function ReasonDialog(props: Props) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<Problem | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    if (!reason.trim()) return;
    setBusy(true);
    setFailure(null);
    try {
      await props.onConfirm(reason.trim());
    } catch (err) {
      setFailure(problem(err));
    } finally {
      setBusy(false);
    }
  }

  async function reload() {
    await props.onReload?.();
    setFailure(null);
  }

  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <form onSubmit={submit}>
        {props.children}
        <label for="dialog-reason">Reason (recorded in the audit trail)</label>
        <input
          id="dialog-reason"
          data-testid="reason"
          value={reason}
          required
          autoFocus
          onInput={(e) => setReason(e.currentTarget.value)}
        />
        {failure?.code === Code.Aborted ? (
          <div class="notice warn" data-testid="conflict" role="alert">
            Changed by someone else since you opened it. Nothing was overwritten.
            {props.onReload && (
              <button type="button" onClick={reload}>Reload the current version</button>
            )}
          </div>
        ) : failure ? (
          <p class="error" data-testid="form-error" role="alert">
            {failure.fields.reason ? `Reason: ${failure.fields.reason}` : failure.message}
          </p>
        ) : null}
        <div class="actions">
          <button type="button" onClick={props.onClose}>Cancel</button>
          <button
            type="submit"
            class={props.danger ? "danger" : "primary"}
            data-testid="confirm"
            disabled={busy || !reason.trim()}
          >
            {busy ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
