// Follows EvaluationService.Watch from a revision and reconnects (with
// backoff, from the last revision seen) when the stream ends, so a page
// stays current without reloading.
import { Code, ConnectError } from "@connectrpc/connect";
import { evaluation } from "./api";
import type { WatchResponse } from "./gen/vexil/v1/flags_pb";

export interface WatchOptions {
  since: bigint;
  flagNames?: string[];
  signal: AbortSignal;
  onEvent: (event: WatchResponse["event"]) => void;
  /** Connection state for the page to show; `null` when streaming fine. */
  onTrouble?: (message: string | null) => void;
}

// Servers end streams with "resubscribe with since_revision=N".
const RESUME = /since_revision=(\d+)/;

export async function follow(options: WatchOptions): Promise<void> {
  let since = options.since;
  let delay = 500;
  while (!options.signal.aborted) {
    try {
      const stream = evaluation.watch(
        { sinceRevision: since, engine: 3, flagNames: options.flagNames ?? [] },
        { signal: options.signal },
      );
      for await (const response of stream) {
        const event = response.event;
        if (event.case === "snapshot" || event.case === "change" || event.case === "heartbeat" || event.case === "segmentChange") {
          if (event.value.revision > since) since = event.value.revision;
        }
        delay = 500;
        options.onTrouble?.(null);
        options.onEvent(event);
      }
    } catch (err) {
      if (options.signal.aborted) return;
      const error = ConnectError.from(err);
      if (error.code === Code.Unauthenticated || error.code === Code.PermissionDenied) {
        options.onTrouble?.(`Live updates stopped: ${error.rawMessage}`);
        return;
      }
      const resume = RESUME.exec(error.rawMessage)?.[1];
      if (resume) since = BigInt(resume);
      options.onTrouble?.("Live updates interrupted; reconnecting…");
    }
    await sleep(delay, options.signal);
    delay = Math.min(delay * 2, 30_000);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
