// The kill switch: turns a flag off (or back on) for everyone with one
// masked update at the revision the user saw.
import { useState } from "preact/hooks";
import { flags } from "../api";
import type { Flag } from "../gen/vexil/v1/flags_pb";
import { announce } from "../status";
import { ReasonDialog } from "./ReasonDialog";

interface Props {
  flag: Flag;
  disabled?: boolean;
  onChanged: (flag: Flag) => void;
}

export function KillSwitch({ flag, disabled, onChanged }: Props) {
  const [open, setOpen] = useState(false);
  const [current, setCurrent] = useState(flag);
  const turnOn = !current.enabled;

  async function confirm(reason: string) {
    const updated = await flags.updateFlag({
      flag: { name: current.name, enabled: turnOn },
      updateMask: { paths: ["enabled"] },
      reason,
      expectedRevision: current.revision,
    });
    setOpen(false);
    onChanged(updated);
    announce(`${updated.name} turned ${updated.enabled ? "on" : "off"}`);
  }

  async function reload() {
    const fresh = await flags.getFlag({ name: flag.name });
    setCurrent(fresh);
    onChanged(fresh);
  }

  return (
    <>
      <button
        type="button"
        class={flag.enabled ? "danger small" : "small"}
        data-testid={`kill-${flag.name}`}
        disabled={disabled}
        title={disabled ? "Your token may not change this flag" : undefined}
        onClick={() => {
          setCurrent(flag);
          setOpen(true);
        }}
      >
        {flag.enabled ? "Kill" : "Turn on"}
      </button>
      {open && (
        <ReasonDialog
          title={turnOn ? `Turn on ${current.name}` : `Kill ${current.name}`}
          confirmLabel={turnOn ? "Turn on" : "Turn off for everyone"}
          danger={!turnOn}
          onConfirm={confirm}
          onReload={reload}
          onClose={() => setOpen(false)}
        >
          <p>
            {turnOn
              ? "The flag goes back to serving its rules and rollout."
              : "The flag turns off for every user in every environment, whatever else is set."}{" "}
            Revision {String(current.revision)}, {current.enabled ? "currently on" : "currently off"}.
          </p>
        </ReasonDialog>
      )}
    </>
  );
}
