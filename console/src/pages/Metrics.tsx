// Evaluation metrics of one flag over 24 hours or 7 days: evaluations per
// hour stacked by variant (on/off for boolean flags), distinct users,
// reasons and latency. Charts carry text summaries and a data table.
import { useEffect, useState } from "preact/hooks";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { flags } from "../api";
import { FlagType, Reason, type Flag, type GetMetricsResponse, type HourlyMetrics } from "../gen/vexil/v1/flags_pb";
import { problem, type Problem } from "../errors";
import { count, label, time } from "../format";
import { Sparkline, StackedBars, type Series } from "../components/Chart";
import { ProblemView } from "../components/ProblemView";

export function Metrics({ flag }: { flag: Flag }) {
  const [hours, setHours] = useState<24 | 168>(24);
  const [data, setData] = useState<GetMetricsResponse | null>(null);
  const [failure, setFailure] = useState<Problem | null>(null);

  useEffect(() => {
    let live = true;
    setData(null);
    flags.getMetrics({ flagName: flag.name, hours }).then(
      (r) => live && setData(r),
      (err) => live && setFailure(problem(err)),
    );
    return () => {
      live = false;
    };
  }, [flag.name, hours]);

  return (
    <div class="metrics">
      <div class="segmented" role="group" aria-label="Period">
        <button type="button" aria-pressed={hours === 24} data-testid="hours-24" onClick={() => setHours(24)}>24 hours</button>
        <button type="button" aria-pressed={hours === 168} data-testid="hours-168" onClick={() => setHours(168)}>7 days</button>
      </div>
      {failure && <ProblemView problem={failure} />}
      {!data && !failure && <p class="muted">Loading…</p>}
      {data && <Report data={data} boolean={flag.type === FlagType.BOOLEAN} days={hours > 24} />}
    </div>
  );
}

function hourLabel(h: HourlyMetrics, days: boolean): string {
  if (!h.hour) return "";
  const d = timestampDate(h.hour);
  return days ? d.toLocaleDateString(undefined, { weekday: "short", hour: "numeric" }) : d.toLocaleTimeString(undefined, { hour: "numeric" });
}

function Report({ data, boolean, days }: { data: GetMetricsResponse; boolean: boolean; days: boolean }) {
  const totals = data.totals;
  const labels = data.hours.map((h) => hourLabel(h, days));
  let series: Series[];
  if (boolean) {
    series = [
      { name: "on", values: data.hours.map((h) => Number(h.stats?.enabled ?? 0n)) },
      { name: "off", values: data.hours.map((h) => Number(h.stats?.disabled ?? 0n)) },
    ];
  } else {
    const names = [...new Set(data.hours.flatMap((h) => h.stats?.variants.map((v) => v.variant) ?? []))];
    series = names.map((name) => ({
      name,
      values: data.hours.map((h) => Number(h.stats?.variants.find((v) => v.variant === name)?.count ?? 0n)),
    }));
    // Answers serving no value are not in the variant counts.
    const noValue = data.hours.map((h, i) => Number(h.stats?.evaluations ?? 0n) - series.reduce((a, s) => a + (s.values[i] ?? 0), 0));
    if (noValue.some((v) => v > 0)) series.push({ name: "(no value)", values: noValue });
  }
  const evaluations = Number(totals?.evaluations ?? 0n);
  const users = data.hours.map((h) => Number(h.stats?.distinctUsers ?? 0n));
  const summary = `${count(evaluations)} evaluations over ${data.hours.length} hours: ${series.map((s) => `${s.name} ${count(s.values.reduce((a, b) => a + b, 0))}`).join(", ")}`;
  const latency = totals?.latency;

  return (
    <>
      <div class="stats">
        <div><span class="big" data-testid="metrics-total">{count(evaluations)}</span> evaluations</div>
        <div><span class="big">{count(totals?.distinctUsers ?? 0n)}</span> distinct users</div>
        <div><span class="big">{latency?.p50Ns ? micro(latency.p50Ns) : "—"}</span> p50</div>
        <div><span class="big">{latency?.p99Ns ? micro(latency.p99Ns) : "—"}</span> p99</div>
      </div>
      <p class="muted">Last evaluated: {time(data.lastEvaluatedAt) || "never"}</p>
      <h3>Evaluations per hour</h3>
      <StackedBars series={series} labels={labels} summary={summary} testid="metrics-chart" />
      <h3>Distinct users per hour</h3>
      <Sparkline values={users} summary={`Distinct users per hour, at most ${count(Math.max(0, ...users))}`} />
      <div class="row2">
        <table>
          <caption>Reasons</caption>
          <thead><tr><th scope="col">Reason</th><th scope="col" class="num">Evaluations</th></tr></thead>
          <tbody>
            {(totals?.reasons ?? []).map((r) => (
              <tr key={r.reason}><td>{label(Reason, r.reason)}</td><td class="num">{count(r.count)}</td></tr>
            ))}
          </tbody>
        </table>
        <table>
          <caption>Per environment</caption>
          <thead><tr><th scope="col">Environment</th><th scope="col" class="num">Evaluations</th><th scope="col" class="num">Users</th></tr></thead>
          <tbody>
            {data.environments.map((e) => (
              <tr key={e.environment}>
                <td>{e.environment || "(none)"}</td>
                <td class="num">{count(e.stats?.evaluations ?? 0n)}</td>
                <td class="num">{count(e.stats?.distinctUsers ?? 0n)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <details>
        <summary>Hourly data</summary>
        <div class="table-wrap">
          <table>
            <thead>
              <tr><th scope="col">Hour</th>{series.map((s) => <th key={s.name} scope="col" class="num">{s.name}</th>)}<th scope="col" class="num">Users</th></tr>
            </thead>
            <tbody>
              {data.hours.map((h, i) => (
                <tr key={i}>
                  <td>{time(h.hour)}</td>
                  {series.map((s) => <td key={s.name} class="num">{count(s.values[i] ?? 0)}</td>)}
                  <td class="num">{count(users[i] ?? 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </>
  );
}

function micro(ns: bigint): string {
  const n = Number(ns);
  return n >= 1e6 ? "> 1 ms" : `${+(n / 1000).toFixed(1)} µs`;
}
