/**
 * What a screen reader hears of a run (the editor's polite live region, editor/Panels.tsx
 * `Announcer`): its milestones, once each — started, finished, failed, interrupted — for the
 * run shown on the canvas; never its steps.
 *
 *   runAnnouncement(message, shownRun)   the words for one server message, or null
 */
import { textOf } from "../protocol/records";

export function runAnnouncement(message: { type: string; run_id?: unknown; node_id?: unknown; message?: unknown }, shownRun: string | null): string | null {
  if (typeof message.run_id !== "string" || message.run_id !== shownRun) return null;
  switch (message.type) {
    case "run_started":
      return "Run started";
    case "run_finished":
      return "Run finished";
    case "run_failed":
      return `Run failed${message.node_id ? ` at node ${textOf(message.node_id)}` : ""}${message.message ? `: ${textOf(message.message)}` : ""}`;
    case "run_interrupted":
      return "Run interrupted";
    default:
      return null;
  }
}
