/**
 * Plugin problems as the server reports them, and what the editor says about them.
 *
 * Sources (docs/protocol.md): `welcome.plugin_warnings` (levels error and
 * warning: plugins that failed to load, clashing node names, ...) and the
 * `plugins {loaded, failed, skipped, conflicts, warnings}` reply to
 * `list_plugins` (its warnings also include level "info": choices the user
 * made, such as a denied plugin). Each warning is `{kind, level, plugin,
 * message, fix}` plus details per kind.
 *
 * Main objects:
 *   PluginWarning, PluginsReport   the records
 *   problemsOf                     the warnings worth a badge (error, warning), errors first
 *   warningsSignature              a key that changes when the set of problems changes
 *                                  (a dismissed notice comes back only for new problems)
 *   unknownTypeHint                why a node type may be missing: its plugin failed or is ambiguous
 */

export type PluginWarningLevel = "error" | "warning" | "info";

export interface PluginWarning {
  kind: string;
  level: PluginWarningLevel | string;
  plugin: string;
  message: string;
  fix?: string;
  /** For clashes and preferences: the bare node type name concerned. */
  type?: string;
  plugins?: string[];
  [extra: string]: unknown;
}

export interface LoadedPlugin {
  name: string;
  source?: string;
  version?: string | null;
  nodes?: string[];
  [extra: string]: unknown;
}

export interface PluginsReport {
  loaded: LoadedPlugin[];
  failed: Record<string, unknown>[];
  skipped: { name: string; reason: string }[];
  conflicts: Record<string, unknown>[];
  warnings: PluginWarning[];
}

const LEVEL_ORDER: Record<string, number> = { error: 0, warning: 1, info: 2 };

/** Keep only well-formed warning records (the server's, or an older server's nothing). */
export function cleanWarnings(raw: unknown): PluginWarning[] {
  if (!Array.isArray(raw)) return [];
  return raw.filter(
    (w): w is PluginWarning => w !== null && typeof w === "object" && typeof (w as PluginWarning).message === "string",
  ).map((w) => ({ ...w, plugin: String(w.plugin ?? "?"), kind: String(w.kind ?? "warning"), level: String(w.level ?? "warning") }));
}

/** The warnings that need the user's attention (levels error and warning), errors first. */
export function problemsOf(warnings: PluginWarning[]): PluginWarning[] {
  return warnings
    .filter((w) => w.level === "error" || w.level === "warning")
    .sort((a, b) => (LEVEL_ORDER[a.level] ?? 1) - (LEVEL_ORDER[b.level] ?? 1));
}

/** A key of the current problems: a notice the user dismissed comes back only when this changes. */
export function warningsSignature(warnings: PluginWarning[]): string {
  return problemsOf(warnings).map((w) => `${w.level}|${w.kind}|${w.plugin}|${w.message}`).sort().join("\n");
}

/**
 * Why a node type the server does not know may be missing, from the plugin warnings:
 * the plugin named by a qualified type (`safety.Checker`) failed or was skipped, or
 * the bare name clashes between plugins. Null when the warnings say nothing about it.
 */
export function unknownTypeHint(type: string, warnings: PluginWarning[]): string | null {
  const dot = type.indexOf(".");
  const plugin = dot > 0 ? type.slice(0, dot) : null;
  const bare = dot > 0 ? type.slice(dot + 1) : type;
  for (const w of warnings) {
    if (plugin !== null && w.plugin === plugin && (w.kind === "failed" || w.kind === "skipped")) {
      return `${w.message}${w.fix ? ` — fix: ${w.fix}` : ""}`;
    }
    if (w.kind === "clash" && w.type === bare) {
      return `${w.message}${w.fix ? ` — fix: ${w.fix}` : ""}`;
    }
  }
  return null;
}
