// Segments: the list, and one segment as editable JSON (description,
// included, excluded, rules), saved with a reason at the revision seen.
import { useEffect, useState } from "preact/hooks";
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { flags } from "../api";
import { SegmentSchema, type Segment } from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { count, time } from "../format";
import { href, navigate } from "../route";
import { canWrite, useCaller } from "../session";
import { announce } from "../status";
import { ProblemView } from "../components/ProblemView";
import { ReasonDialog } from "../components/ReasonDialog";

/** Segments reach every environment: only unscoped editors change them. */
function mayChangeSegments(caller: ReturnType<typeof useCaller>): boolean {
  return canWrite(caller) && !(caller?.authenticated && caller.scoped);
}

/** A definition typed as JSON, as a Segment named `name`. */
function parseSegment(name: string, text: string): Segment {
  const segment = fromJsonString(SegmentSchema, text);
  segment.name = name;
  return segment;
}

const TEMPLATE = JSON.stringify({ description: "", included: [], excluded: [], rules: [] }, null, 2);

export function NewSegment() {
  const [name, setName] = useState("");
  const [text, setText] = useState(TEMPLATE);
  const [parseError, setParseError] = useState<string | null>(null);
  const [creating, setCreating] = useState<Segment | null>(null);

  function save(e: Event) {
    e.preventDefault();
    try {
      setCreating(parseSegment(name.trim(), text));
      setParseError(null);
    } catch (err) {
      setParseError((err as Error).message);
    }
  }

  return (
    <section>
      <p class="crumbs"><a href="#/segments">Segments</a> /</p>
      <h1>New segment</h1>
      <form onSubmit={save}>
        <div class="field">
          <label for="segment-name">Name</label>
          <input id="segment-name" data-testid="segment-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="segment-json">Definition (JSON: description, included, excluded, rules)</label>
          <textarea id="segment-json" data-testid="segment-json" class="mono" rows={14} value={text}
            onInput={(e) => setText(e.currentTarget.value)} />
          {parseError && <p class="field-error">{parseError}</p>}
        </div>
        <button type="submit" class="primary" data-testid="save" disabled={!name.trim()}>Create…</button>
      </form>
      {creating && (
        <ReasonDialog title={`Create segment ${creating.name}`} confirmLabel="Create" onClose={() => setCreating(null)}
          onConfirm={async (reason) => {
            const created = await flags.createSegment({ segment: creating, reason });
            announce(`Segment ${created.name} created`);
            navigate(href(["segments", created.name]));
          }} />
      )}
    </section>
  );
}

export function SegmentList() {
  const caller = useCaller();
  const [segments, setSegments] = useState<Segment[] | null>(null);
  const [failure, setFailure] = useState<Problem | null>(null);
  useEffect(() => {
    flags.listSegments({}).then((r) => setSegments(r.segments), (err) => setFailure(problem(err)));
  }, []);
  return (
    <section>
      <div class="page-head">
        <h1>Segments</h1>
        {mayChangeSegments(caller) && <a class="button primary" href="#/new-segment" data-testid="new-segment">New segment</a>}
      </div>
      {failure && <ProblemView problem={failure} />}
      {segments && (segments.length === 0 ? <p class="empty">No segments.</p> : (
        <div class="table-wrap">
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col" class="num">Included</th><th scope="col" class="num">Rules</th><th scope="col">Updated</th></tr></thead>
            <tbody>
              {segments.map((s) => (
                <tr key={s.name}>
                  <td><a href={href(["segments", s.name])}>{s.name}</a></td>
                  <td>{s.description}</td>
                  <td class="num">{count(s.included.length)}</td>
                  <td class="num">{s.rules.length}</td>
                  <td>{time(s.updatedAt)} by {s.updatedBy}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  );
}

// Output-only fields are left out of the editable JSON.
function editable(s: Segment): string {
  const json = JSON.parse(toJsonString(SegmentSchema, s)) as Record<string, unknown>;
  for (const key of ["name", "revision", "createdAt", "updatedAt", "createdBy", "updatedBy"]) delete json[key];
  return JSON.stringify(json, null, 2);
}

export function SegmentPage({ name }: { name: string }) {
  const caller = useCaller();
  const [segment, setSegment] = useState<Segment | null>(null);
  const [text, setText] = useState("");
  const [failure, setFailure] = useState<Problem | null>(null);
  const [parseError, setParseError] = useState<string | null>(null);
  const [saving, setSaving] = useState<Segment | null>(null);

  async function load() {
    try {
      const s = await flags.getSegment({ name });
      setSegment(s);
      setText(editable(s));
      setFailure(null);
    } catch (err) {
      setFailure(problem(err));
    }
  }
  useEffect(() => void load(), [name]);

  function save(e: Event) {
    e.preventDefault();
    try {
      setSaving(parseSegment(name, text));
      setParseError(null);
    } catch (err) {
      setParseError((err as Error).message);
    }
  }

  const writer = mayChangeSegments(caller);
  const [deleting, setDeleting] = useState(false);
  return (
    <section>
      <p class="crumbs"><a href="#/segments">Segments</a> /</p>
      <h1>{name}</h1>
      {failure && <ProblemView problem={failure} />}
      {segment && (
        <form onSubmit={save}>
          <p class="muted">Revision {String(segment.revision)}, updated {time(segment.updatedAt)} by {segment.updatedBy}</p>
          <div class="field">
            <label for="segment-json">Definition (JSON: description, included, excluded, rules)</label>
            <textarea id="segment-json" data-testid="segment-json" class="mono" rows={18} value={text} readOnly={!writer}
              onInput={(e) => setText(e.currentTarget.value)} />
            {parseError && <p class="field-error">{parseError}</p>}
          </div>
          {writer && (
            <div class="actions">
              <button type="button" class="danger" data-testid="delete" onClick={() => setDeleting(true)}>Delete…</button>
              <button type="submit" class="primary" data-testid="save">Save…</button>
            </div>
          )}
        </form>
      )}
      {deleting && segment && (
        <ReasonDialog title={`Delete segment ${name}`} confirmLabel="Delete" danger onClose={() => setDeleting(false)} onReload={load}
          onConfirm={async (reason) => {
            await flags.deleteSegment({ name, reason, expectedRevision: segment.revision });
            announce(`Segment ${name} deleted`);
            navigate("#/segments");
          }}>
          <p>Refused while a flag or another segment refers to it.</p>
        </ReasonDialog>
      )}
      {saving && segment && (
        <ReasonDialog title={`Save segment ${name}`} confirmLabel="Save" onClose={() => setSaving(null)} onReload={load}
          onConfirm={async (reason) => {
            const saved = await flags.updateSegment({ segment: saving, reason, expectedRevision: segment.revision });
            setSegment(saved);
            setText(editable(saved));
            setSaving(null);
            announce(`Segment ${name} saved`);
          }} />
      )}
    </section>
  );
}
