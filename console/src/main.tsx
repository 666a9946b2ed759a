// The console: finds out who the caller is, then routes the hash to a page.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { flags, token } from "./api";
import { isAuthProblem, problem, type Problem } from "./errors";
import type { GetCallerResponse } from "./gen/vexil/v1/flags_pb";
import { parseHash, useRoute } from "./route";
import { CallerContext } from "./session";
import { useStatus } from "./status";
import { Header, SignIn } from "./components/Header";
import { ProblemView } from "./components/ProblemView";
import { FlagList, prefetchList } from "./pages/FlagList";
import { FlagPage } from "./pages/FlagPage";
import { Groups } from "./pages/Groups";
import { Hygiene } from "./pages/Hygiene";
import { NewFlag } from "./pages/NewFlag";
import { NewSegment, SegmentList, SegmentPage } from "./pages/Segments";

function App() {
  const route = useRoute();
  const status = useStatus();
  const [caller, setCaller] = useState<GetCallerResponse | null>(null);
  const [failure, setFailure] = useState<Problem | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    // The first attempt's call was made before the first render.
    const answer = attempt === 0 && firstCaller ? firstCaller : flags.getCaller({});
    firstCaller = null;
    answer.then(
      (c) => {
        setCaller(c);
        setFailure(null);
      },
      (err) => {
        setCaller(null);
        setFailure(problem(err));
      },
    );
  }, [attempt]);

  const [section = "flags", name, tab = ""] = route.parts;
  let page;
  if (failure && isAuthProblem(failure)) {
    page = (
      <div class="center">
        {token() && <ProblemView problem={failure} />}
        <SignIn onSignIn={() => setAttempt((n) => n + 1)} />
      </div>
    );
  } else if (failure) {
    page = <ProblemView problem={failure} />;
  } else if (!caller && !(section === "flags" && !name)) {
    // The list is drawn at once (its controls appear with the caller);
    // other pages wait to know what the caller may do.
    page = <p class="muted">Loading…</p>;
  } else if (section === "flags" && name) {
    page = <FlagPage key={name} name={name} tab={tab} />;
  } else if (section === "new") {
    page = <NewFlag />;
  } else if (section === "hygiene") {
    page = <Hygiene />;
  } else if (section === "groups") {
    page = <Groups />;
  } else if (section === "new-segment") {
    page = <NewSegment />;
  } else if (section === "segments") {
    page = name ? <SegmentPage name={name} /> : <SegmentList />;
  } else {
    page = <FlagList route={route} />;
  }

  return (
    <CallerContext.Provider value={caller}>
      <a class="skip" href="#main" onClick={(e) => {
        e.preventDefault();
        document.getElementById("main")?.focus();
      }}>Skip to content</a>
      <Header caller={caller} section={section} onSignIn={() => setAttempt((n) => n + 1)} />
      <main id="main" tabIndex={-1}>{page}</main>
      <div class="status" role="status" aria-live="polite" data-testid="status">{status}</div>
    </CallerContext.Provider>
  );
}

// Who the caller is and the first page of the list are asked for at once,
// before the first render: the table waits for one round trip, not two.
let firstCaller: Promise<GetCallerResponse> | null = null;

const root = document.getElementById("app");
if (root) {
  firstCaller = flags.getCaller({});
  firstCaller.catch(() => {});
  const start = parseHash(location.hash);
  if ((start.parts[0] ?? "flags") === "flags" && !start.parts[1]) prefetchList(start);
  render(<App />, root);
}
