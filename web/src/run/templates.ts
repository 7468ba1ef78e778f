/**
 * The templates menu's order: the demos people open to try things first, then the training graphs (which
 * run for minutes to hours), each group in the server's order.
 *
 *   isTrainingTemplate(t)   its file sits in a `train/` folder or is named `train_*.json`
 *   groupTemplates(list)    [{label, templates}] with empty groups left out
 *   filterTemplates(list, query)  the menu's filter box: the templates that match, best first
 *   templateMatch(t, query)  how well one matches (TemplateMatch, lower is better; null: not at all):
 *                           the file's name is the query ("txt2img" for graphs/txt2img.json), the title is the query, starts with it, has every word as the start of a
 *                           word, has every word; every word in the description, source or file path;
 *                           each word's letters in order in a word of the title (fuzzy). Any case.
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

/** How a template matches a query, best first. */
export const TemplateMatch = {
  fileName: 0,
  exactTitle: 1,
  titlePrefix: 2,
  titleWordPrefixes: 3,
  titleWords: 4,
  anywhere: 5,
  fuzzyTitle: 6,
} as const;

/** A template's file name without its folders and `.json` ("txt2img" for "graphs/txt2img.json"), lower case. */
function fileNameOf(template: Template): string {
  return normalized(String(template.id).split("/").pop() ?? "").replace(/\.json$/, "");
}

const normalized = (text: unknown) => textOf(text).toLowerCase().replace(/\s+/g, " ").trim();

/** Whether the letters of `needle` occur in `text` in order. */
function inOrder(needle: string, text: string): boolean {
  let at = 0;
  for (const letter of needle) {
    at = text.indexOf(letter, at) + 1;
    if (at === 0) return false;
  }
  return true;
}

/** How well `template` matches `query` (a TemplateMatch value, lower is better), or null when it does not. */
export function templateMatch(template: Template, query: string): number | null {
  const wanted = normalized(query);
  const title = normalized(template.title);
  const words = wanted.split(" ").filter(Boolean);
  if (!words.length) return TemplateMatch.anywhere;
  if (fileNameOf(template) === wanted) return TemplateMatch.fileName;
  if (title === wanted) return TemplateMatch.exactTitle;
  if (title.startsWith(wanted)) return TemplateMatch.titlePrefix;
  const titleWords = title.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const wordsOf = (w: string) => w.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (words.every((w) => wordsOf(w).every((part) => titleWords.some((t) => t.startsWith(part))))) {
    return TemplateMatch.titleWordPrefixes;
  }
  if (words.every((w) => title.includes(w))) return TemplateMatch.titleWords;
  const text = [template.title, template.description, template.source, template.id].map(normalized).join("\n");
  if (words.every((w) => text.includes(w))) return TemplateMatch.anywhere;
  const fuzzy = words.every((w) => wordsOf(w).every((part) => titleWords.some((t) => inOrder(part, t))));
  return fuzzy ? TemplateMatch.fuzzyTitle : null;
}

/** The templates that match `query`, best match first (the given order among equals); all of them for no query. */
export function filterTemplates(templates: Template[], query: string): Template[] {
  if (!query.trim()) return templates;
  return templates
    .map((template, position) => ({ template, position, match: templateMatch(template, query) }))
    .filter((entry): entry is { template: Template; position: number; match: number } => entry.match !== null)
    .sort((a, b) => a.match - b.match || a.position - b.position)
    .map((entry) => entry.template);
}
