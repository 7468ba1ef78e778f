/**
 * What a screen reader hears of a run (the editor's polite live region, editor/Panels.tsx
 * `Announcer`): its milestones, once each — started, finished, interrupted — for the run shown
 * on the canvas; never its steps. A failure is not said here: the error banner says it, as an
 * alert, with the message (both read it, the long message twice).
 *
 *   runAnnouncement(message, shownRun)   the words for one server message, or null
 */
export function runAnnouncement(message: { type: string; run_id?: unknown; node_id?: unknown; message?: unknown }, shownRun: string | null): string | null {
  if (typeof message.run_id !== "string" || message.run_id !== shownRun) return null;
  switch (message.type) {
    case "run_started":
      return "Run started";
    case "run_finished":
      return "Run finished";
    case "run_failed": // the error banner's alert (run/sessionState.ts)
      return null;
    case "run_interrupted":
      return "Run interrupted";
    default:
      return null;
  }
}
