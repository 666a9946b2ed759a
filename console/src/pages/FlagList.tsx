// The flags table: server-side filters and paging (50 a page, so it stays
// fast at 100,000 flags), filters kept in the URL hash, rows kept live by
// following Watch from the listing's revision.
import { useEffect, useRef, useState } from "preact/hooks";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { flags } from "../api";
import {
  ChangeKind,
  FlagType,
  type Flag,
  type Group,
  type ListFlagsResponse,
  type WatchResponse,
} from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { count, rollout, time, typeName } from "../format";
import { href, navigate, type Route } from "../route";
import { canEditFlag, canWrite, useCaller } from "../session";
import { follow } from "../watch";
import { KillSwitch } from "../components/KillSwitch";
import { ProblemView } from "../components/ProblemView";

const PAGE = 50;
const DAY = 86_400_000;
const FILTERS = ["q", "tag", "group", "env", "type", "enabled", "stale", "expired"] as const;
type Filters = Partial<Record<(typeof FILTERS)[number] | "page", string>>;

function filtersOf(route: Route): Filters {
  const out: Filters = {};
  for (const key of [...FILTERS, "page"] as const) {
    const v = route.params.get(key);
    if (v) out[key] = v;
  }
  return out;
}

/** The ListFlags call behind one page of the table. */
function listing(filters: Filters, page: number): Promise<ListFlagsResponse> {
  const key = JSON.stringify([filters, page]);
  const early = prefetched;
  prefetched = null;
  if (early?.key === key) return early.answer;
  return flags.listFlags({
    query: filters.q ?? "",
    tag: filters.tag,
    group: filters.group,
    environment: filters.env,
    type: filters.type ? FlagType[filters.type as keyof typeof FlagType] : undefined,
    enabled: filters.enabled ? filters.enabled === "on" : undefined,
    notEvaluatedSince: filters.stale ? timestampFromDate(new Date(Date.now() - 30 * DAY)) : undefined,
    expired: !!filters.expired,
    skip: page * PAGE,
    limit: PAGE,
  });
}

let prefetched: { key: string; answer: Promise<ListFlagsResponse> } | null = null;

/**
 * Asks for the list's first page while the console is still finding out
 * who the caller is, so the table does not wait for two round trips. Only
 * the first FlagList takes it; a failure is reported by that FlagList.
 */
export function prefetchList(route: Route) {
  const filters = filtersOf(route);
  const page = pageOf(filters);
  const answer = listing(filters, page);
  // A refused call (no token yet) is not kept for after signing in.
  answer.catch(() => {
    if (prefetched?.answer === answer) prefetched = null;
  });
  prefetched = { key: JSON.stringify([filters, page]), answer };
}

function pageOf(filters: Filters): number {
  return Math.max(0, Number(filters.page ?? 0) | 0);
}

export function FlagList({ route }: { route: Route }) {
  const caller = useCaller();
  const filters = filtersOf(route);
  const page = pageOf(filters);
  const key = JSON.stringify(filters);

  const [rows, setRows] = useState<Flag[] | null>(null);
  const [total, setTotal] = useState(0n);
  const [failure, setFailure] = useState<Problem | null>(null);
  const [groups, setGroups] = useState<Group[]>([]);
  const [query, setQuery] = useState(filters.q ?? "");
  const [changed, setChanged] = useState<ReadonlySet<string>>(new Set());
  const [deleted, setDeleted] = useState<ReadonlySet<string>>(new Set());
  const [elsewhere, setElsewhere] = useState(0);
  const [watchFrom, setWatchFrom] = useState<bigint | null>(null);
  const [trouble, setTrouble] = useState<string | null>(null);
  const [reloads, setReloads] = useState(0);
  const rowsRef = useRef<Flag[]>([]);
  const listedAt = useRef(0n);
  const timers = useRef(new Map<string, number>());

  useEffect(() => {
    flags.listGroups({}).then((r) => setGroups(r.groups), () => {});
  }, []);

  useEffect(() => {
    let live = true;
    setFailure(null);
    listing(filters, page)
      .then(
        (r) => {
          if (!live) return;
          rowsRef.current = r.flags;
          listedAt.current = r.revision;
          setRows(r.flags);
          setTotal(r.total);
          setDeleted(new Set());
          setElsewhere(0);
          // One stream for the page's lifetime; later listings only move
          // the point from which changes elsewhere are counted.
          setWatchFrom((from) => from ?? r.revision);
        },
        (err) => live && setFailure(problem(err)),
      );
    return () => {
      live = false;
    };
  }, [key, reloads]);

  function highlight(name: string) {
    setChanged((s) => new Set(s).add(name));
    const old = timers.current.get(name);
    if (old) clearTimeout(old);
    timers.current.set(
      name,
      window.setTimeout(() => {
        timers.current.delete(name);
        setChanged((s) => {
          const next = new Set(s);
          next.delete(name);
          return next;
        });
      }, 2000),
    );
  }

  function replace(flag: Flag) {
    rowsRef.current = rowsRef.current.map((row) => (row.name === flag.name ? flag : row));
    setRows(rowsRef.current);
  }

  function onEvent(event: WatchResponse["event"]) {
    if (event.case === "change") {
      const change = event.value;
      const row = rowsRef.current.find((r) => r.name === change.flagName);
      if (!row) {
        if (change.revision > listedAt.current) setElsewhere((n) => n + 1);
        return;
      }
      if (change.revision <= row.revision) return;
      if (change.kind === ChangeKind.DELETED || !change.flag) setDeleted((s) => new Set(s).add(change.flagName));
      else replace(change.flag);
      highlight(change.flagName);
    } else if (event.case === "snapshot") {
      // The server could not send changes one by one: take what it holds
      // for visible rows, and suggest a refresh for the rest.
      for (const flag of event.value.flags) {
        const row = rowsRef.current.find((r) => r.name === flag.name);
        if (row && flag.revision > row.revision) {
          replace(flag);
          highlight(flag.name);
        }
      }
      if (event.value.revision > listedAt.current) setElsewhere((n) => Math.max(n, 1));
    }
  }

  useEffect(() => {
    if (watchFrom === null) return;
    const abort = new AbortController();
    void follow({ since: watchFrom, signal: abort.signal, onEvent, onTrouble: setTrouble });
    return () => abort.abort();
  }, [watchFrom]);

  useEffect(() => () => timers.current.forEach((t) => clearTimeout(t)), []);

  // The search box follows the URL (back, forward, links)...
  useEffect(() => setQuery(filters.q ?? ""), [filters.q]);

  // ...and typing searches after a pause instead of on every key.
  useEffect(() => {
    if (query === (filters.q ?? "")) return;
    const t = setTimeout(() => go({ ...filters, q: query, page: undefined }), 300);
    return () => clearTimeout(t);
  }, [query]);

  function go(next: Filters) {
    navigate(href([], next));
  }

  function set(name: keyof Filters, value: string) {
    go({ ...filters, [name]: value || undefined, page: undefined });
  }

  const writer = canWrite(caller);
  const pages = Math.max(1, Math.ceil(Number(total) / PAGE));

  return (
    <section>
      <div class="page-head">
        <h1>Flags</h1>
        {writer && <a class="button primary" href="#/new" data-testid="new-flag">New flag</a>}
      </div>
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); set("q", query); }}>
        <label class="grow">
          <span>Search</span>
          <input type="search" data-testid="search" placeholder="Name, description or tag" value={query}
            onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <label>
          <span>Tag</span>
          <input data-testid="filter-tag" value={filters.tag ?? ""} onChange={(e) => set("tag", e.currentTarget.value.trim())} />
        </label>
        <label>
          <span>Environment</span>
          <input data-testid="filter-env" value={filters.env ?? ""} onChange={(e) => set("env", e.currentTarget.value.trim())} />
        </label>
        <label>
          <span>Group</span>
          <select data-testid="filter-group" value={filters.group ?? ""} onChange={(e) => set("group", e.currentTarget.value)}>
            <option value="">Any</option>
            {groups.map((g) => <option key={g.name} value={g.name}>{g.name}</option>)}
          </select>
        </label>
        <label>
          <span>Type</span>
          <select data-testid="filter-type" value={filters.type ?? ""} onChange={(e) => set("type", e.currentTarget.value)}>
            <option value="">Any</option>
            {["BOOLEAN", "STRING", "INT", "FLOAT", "OBJECT"].map((t) => <option key={t} value={t}>{t.toLowerCase()}</option>)}
          </select>
        </label>
        <label>
          <span>State</span>
          <select data-testid="filter-enabled" value={filters.enabled ?? ""} onChange={(e) => set("enabled", e.currentTarget.value)}>
            <option value="">Any</option>
            <option value="on">Enabled</option>
            <option value="off">Killed</option>
          </select>
        </label>
        <label class="check">
          <input type="checkbox" data-testid="filter-stale" checked={!!filters.stale} onChange={(e) => set("stale", e.currentTarget.checked ? "1" : "")} />
          <span>Not evaluated for 30 days</span>
        </label>
        <label class="check">
          <input type="checkbox" data-testid="filter-expired" checked={!!filters.expired} onChange={(e) => set("expired", e.currentTarget.checked ? "1" : "")} />
          <span>Expired</span>
        </label>
      </form>

      {trouble && <p class="notice warn">{trouble}</p>}
      {elsewhere > 0 && (
        <p class="notice info" data-testid="elsewhere">
          {elsewhere} change{elsewhere > 1 ? "s" : ""} elsewhere —{" "}
          <button type="button" class="link" onClick={() => setReloads((n) => n + 1)}>refresh</button>
        </p>
      )}
      {failure && <ProblemView problem={failure} />}
      {rows === null && !failure && <p class="muted">Loading…</p>}
      {rows && (
        <>
          <p class="muted" data-testid="total" data-total={String(total)}>
            {count(total)} flag{total === 1n ? "" : "s"}
            {rows.length > 0 && `, showing ${page * PAGE + 1}–${page * PAGE + rows.length}`}
          </p>
          {rows.length === 0 ? (
            <p class="empty">No flags match.</p>
          ) : (
            <div class="table-wrap">
              <table class="flags">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Type</th>
                    <th scope="col">State</th>
                    <th scope="col">Environments</th>
                    <th scope="col">Serves</th>
                    <th scope="col">Tags</th>
                    <th scope="col">Group</th>
                    <th scope="col">Updated</th>
                    {writer && <th scope="col"><span class="sr-only">Actions</span></th>}
                  </tr>
                </thead>
                <tbody>
                  {rows.map((flag) => (
                    <Row
                      key={flag.name}
                      flag={flag}
                      changed={changed.has(flag.name)}
                      deleted={deleted.has(flag.name)}
                      writer={writer}
                      editable={canEditFlag(caller, flag)}
                      onChanged={replace}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <nav class="pager" aria-label="Pages">
            <button type="button" disabled={page === 0} onClick={() => go({ ...filters, page: page > 1 ? String(page - 1) : undefined })}>
              Previous
            </button>
            <span>Page {page + 1} of {count(pages)}</span>
            <button type="button" disabled={page + 1 >= pages} onClick={() => go({ ...filters, page: String(page + 1) })}>
              Next
            </button>
          </nav>
        </>
      )}
    </section>
  );
}

interface RowProps {
  flag: Flag;
  changed: boolean;
  deleted: boolean;
  writer: boolean;
  editable: boolean;
  onChanged: (flag: Flag) => void;
}

function Row({ flag, changed, deleted, writer, editable, onChanged }: RowProps) {
  const overrides = Object.entries(flag.environmentOverrides);
  return (
    <tr data-testid={`flag-row-${flag.name}`} class={[changed && "changed", deleted && "deleted"].filter(Boolean).join(" ")}>
      <td data-label="Name">
        <div class="cell">
          <a href={href(["flags", flag.name])} class="flag-name">{flag.name}</a>
          {flag.description && <span class="muted clip">{flag.description}</span>}
        </div>
      </td>
      <td data-label="Type">{typeName(flag.type).toLowerCase()}</td>
      <td data-label="State">
        {deleted ? <span class="badge">deleted</span> : (
          <span class={flag.enabled ? "badge on" : "badge off"} data-testid={`state-${flag.name}`}>
            {flag.enabled ? "enabled" : "killed"}
          </span>
        )}{" "}
        {flag.expiresAt && timestampDate(flag.expiresAt) <= new Date() && <span class="badge off">expired</span>}
      </td>
      <td data-label="Environments">
        {flag.environments.length ? flag.environments.join(", ") : <span class="muted">all</span>}
        {overrides.map(([env, on]) => (
          <span key={env} class={on ? "chip on" : "chip off"} title={`Override in ${env}`}>{env}: {on ? "on" : "off"}</span>
        ))}
      </td>
      <td data-label="Serves">{rollout(flag)}</td>
      <td data-label="Tags">{flag.tags.map((t) => <span key={t} class="chip">{t}</span>)}</td>
      <td data-label="Group">{flag.group}</td>
      <td data-label="Updated">
        <div class="cell">
          <span>{flag.updatedBy}</span>
          <span class="muted">{time(flag.updatedAt)}</span>
        </div>
      </td>
      {writer && (
        <td data-label="Actions">
          {!deleted && <KillSwitch flag={flag} disabled={!editable} onChanged={onChanged} />}
        </td>
      )}
    </tr>
  );
}
