// Flag hygiene: names callers ask for that are not flags, flags nobody has
// evaluated for 30 days, and flags past their expiry still defined.
import { useEffect, useState } from "preact/hooks";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { flags } from "../api";
import type { Flag, UnknownFlag } from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { count, time } from "../format";
import { href } from "../route";
import { ProblemView } from "../components/ProblemView";

const LIMIT = 100;

export function Hygiene() {
  const [unknown, setUnknown] = useState<UnknownFlag[] | null>(null);
  const [stale, setStale] = useState<{ flags: Flag[]; total: bigint } | null>(null);
  const [expired, setExpired] = useState<{ flags: Flag[]; total: bigint } | null>(null);
  const [failure, setFailure] = useState<Problem | null>(null);

  useEffect(() => {
    const fail = (err: unknown) => setFailure(problem(err));
    flags.listUnknownFlags({ hours: 168 }).then((r) => setUnknown(r.flags), fail);
    flags
      .listFlags({ notEvaluatedSince: timestampFromDate(new Date(Date.now() - 30 * 86_400_000)), limit: LIMIT })
      .then((r) => setStale({ flags: r.flags, total: r.total }), fail);
    flags.listFlags({ expired: true, limit: LIMIT }).then((r) => setExpired({ flags: r.flags, total: r.total }), fail);
  }, []);

  return (
    <section>
      <h1>Hygiene</h1>
      {failure && <ProblemView problem={failure} />}
      <h2>Unknown flags asked for (7 days)</h2>
      <p class="muted">Names callers evaluate that are not flags: typos, or flags deleted while code still asks.</p>
      {unknown === null ? <p class="muted">Loading…</p> : unknown.length === 0 ? <p class="empty">None.</p> : (
        <table data-testid="unknown-flags">
          <thead><tr><th scope="col">Name</th><th scope="col" class="num">Evaluations</th></tr></thead>
          <tbody>
            {unknown.map((u) => <tr key={u.name}><td><code>{u.name}</code></td><td class="num">{count(u.evaluations)}</td></tr>)}
          </tbody>
        </table>
      )}
      <FlagTable title="Not evaluated for 30 days" note="Candidates for removal: no replica has evaluated them in 30 days."
        data={stale} more={href([], { stale: "1" })} testid="stale-flags" />
      <FlagTable title="Expired, still defined" note="Off for everyone since their expiry: remove them and the code asking."
        data={expired} more={href([], { expired: "1" })} testid="expired-flags" />
    </section>
  );
}

interface TableProps {
  title: string;
  note: string;
  data: { flags: Flag[]; total: bigint } | null;
  more: string;
  testid: string;
}

function FlagTable({ title, note, data, more, testid }: TableProps) {
  return (
    <>
      <h2>{title}</h2>
      <p class="muted">{note}</p>
      {data === null ? <p class="muted">Loading…</p> : data.flags.length === 0 ? <p class="empty">None.</p> : (
        <>
          <table data-testid={testid}>
            <thead><tr><th scope="col">Flag</th><th scope="col">Expires</th><th scope="col">Updated</th></tr></thead>
            <tbody>
              {data.flags.map((f) => (
                <tr key={f.name}>
                  <td><a href={href(["flags", f.name])}>{f.name}</a></td>
                  <td>{time(f.expiresAt) || "—"}</td>
                  <td>{time(f.updatedAt)} by {f.updatedBy}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {data.total > BigInt(data.flags.length) && <p><a href={more}>All {count(data.total)} in the flag list</a></p>}
        </>
      )}
    </>
  );
}
