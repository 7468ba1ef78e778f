/**
 * The templates menu's order: the demos people open to try things first, then the training graphs (which
 * run for minutes to hours), each group in the server's order.
 *
 *   isTrainingTemplate(t)   its file sits in a `train/` folder or is named `train_*.json`
 *   groupTemplates(list)    [{label, templates}] with empty groups left out
 *   filterTemplates(list, query)  the menu's filter box: every word of the query in the title,
 *                           description, source or file path (case-insensitive)
 */
import { textOf } from "../protocol/records";
import type { Template } from "./sessionState";

export function isTrainingTemplate(template: Pick<Template, "id">): boolean {
  const path = String(template.id).split("/").slice(1);     // the id is <source>/<path inside graphs/>
  return path.some((part, i) => (i < path.length - 1 ? part === "train" : part.startsWith("train_")));
}

export interface TemplateGroup {
  label: string;
  templates: Template[];
}

export function groupTemplates(templates: Template[]): TemplateGroup[] {
  const groups = [
    { label: "Examples", templates: templates.filter((t) => !isTrainingTemplate(t)) },
    { label: "Training graphs (minutes to hours)", templates: templates.filter(isTrainingTemplate) },
  ];
  return groups.filter((g) => g.templates.length > 0);
}

/** The templates every word of `query` occurs in (title, description, source or id; any case), in the given order. */
export function filterTemplates(templates: Template[], query: string): Template[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return templates;
  return templates.filter((t) => {
    const text = [t.title, t.description, t.source, t.id].map((v) => textOf(v)).join("\n").toLowerCase();
    return words.every((w) => text.includes(w));
  });
}
