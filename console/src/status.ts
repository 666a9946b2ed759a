// One aria-live status line for the whole console: pages announce what
// happened ("Saved", "Flag turned off") without owning a live region.
import { useEffect, useState } from "preact/hooks";

let current = "";
let timer = 0;
const listeners = new Set<(text: string) => void>();

function publish(text: string) {
  current = text;
  for (const listener of listeners) listener(text);
}

/** Shows `text` for a few seconds (screen readers hear it once). */
export function announce(text: string) {
  publish(text);
  clearTimeout(timer);
  timer = window.setTimeout(() => publish(""), 5000);
}

export function useStatus(): string {
  const [text, setText] = useState(current);
  useEffect(() => {
    listeners.add(setText);
    return () => void listeners.delete(setText);
  }, []);
  return text;
}
