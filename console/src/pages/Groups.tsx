// Groups: the list, and for admins creating and deleting them (the server
// refuses to delete a group while a flag still names it).
import { useEffect, useState } from "preact/hooks";
import { flags } from "../api";
import type { Group } from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { time } from "../format";
import { href } from "../route";
import { useCaller } from "../session";
import { announce } from "../status";
import { Dialog } from "../components/Dialog";
import { ProblemView } from "../components/ProblemView";

export function Groups() {
  const caller = useCaller();
  const admin = !!caller && (!caller.authenticated || caller.roles.includes("admin"));
  const [groups, setGroups] = useState<Group[] | null>(null);
  const [failure, setFailure] = useState<Problem | null>(null);
  const [loads, setLoads] = useState(0);
  const [deleting, setDeleting] = useState<Group | null>(null);

  useEffect(() => {
    flags.listGroups({}).then((r) => setGroups(r.groups), (err) => setFailure(problem(err)));
  }, [loads]);

  return (
    <section>
      <h1>Groups</h1>
      <p class="muted">A flag may belong to one group; the flag list filters by group.</p>
      {failure && <ProblemView problem={failure} />}
      {admin && <CreateGroup onCreated={() => setLoads((n) => n + 1)} />}
      {groups && (groups.length === 0 ? <p class="empty">No groups.</p> : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Description</th>
                <th scope="col">Created</th>
                {admin && <th scope="col"><span class="sr-only">Actions</span></th>}
              </tr>
            </thead>
            <tbody>
              {groups.map((group) => (
                <tr key={group.name} data-testid={`group-row-${group.name}`}>
                  <td><a href={href([], { group: group.name })}>{group.name}</a></td>
                  <td>{group.description}</td>
                  <td>{time(group.createdAt)}</td>
                  {admin && (
                    <td>
                      <button type="button" class="small danger" onClick={() => setDeleting(group)}>Delete</button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
      {deleting && (
        <DeleteGroup
          group={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={() => {
            setDeleting(null);
            setLoads((n) => n + 1);
          }}
        />
      )}
    </section>
  );
}

function CreateGroup({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [failure, setFailure] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setFailure(null);
    try {
      await flags.createGroup({ group: { name: name.trim(), description } });
      announce(`Group ${name.trim()} created`);
      setName("");
      setDescription("");
      onCreated();
    } catch (err) {
      setFailure(problem(err));
    } finally {
      setBusy(false);
    }
  }

  const nameError = failure?.fields["group.name"];
  return (
    <form class="filters" onSubmit={submit} aria-label="New group">
      <label>
        <span>Name</span>
        <input data-testid="group-name" required value={name} aria-invalid={nameError ? true : undefined}
          onInput={(e) => setName(e.currentTarget.value)} />
        {nameError && <span class="field-error" data-testid="error-group.name">{nameError}</span>}
      </label>
      <label class="grow">
        <span>Description</span>
        <input data-testid="group-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
      </label>
      <button type="submit" class="primary" disabled={busy || !name.trim()}>Create group</button>
      {failure && !nameError && <ProblemView problem={failure} />}
    </form>
  );
}

function DeleteGroup({ group, onClose, onDeleted }: { group: Group; onClose: () => void; onDeleted: () => void }) {
  const [failure, setFailure] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  async function confirm() {
    setBusy(true);
    setFailure(null);
    try {
      await flags.deleteGroup({ name: group.name });
      announce(`Group ${group.name} deleted`);
      onDeleted();
    } catch (err) {
      setFailure(problem(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={`Delete group ${group.name}?`} onClose={onClose}>
      <p>Groups are not audited: this cannot be restored from the audit trail.</p>
      {failure && <ProblemView problem={failure} />}
      <div class="actions">
        <button type="button" onClick={onClose}>Cancel</button>
        <button type="button" class="danger" data-testid="confirm" disabled={busy} onClick={confirm}>Delete</button>
      </div>
    </Dialog>
  );
}
