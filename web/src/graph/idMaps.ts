/**
 * Maps keyed by names a user wrote: node ids, input and output names, node types,
 * group and reroute ids, subgraph names.
 *
 * A plain `{}` inherits `constructor`, `toString`, `hasOwnProperty`, ... from
 * Object.prototype, and assigning its `__proto__` key replaces the prototype instead
 * of storing a value — so a graph with a node called `constructor` would read a
 * function where a node should be. Every such map in the editor is an object
 * *without* a prototype, where each of those names is an ordinary key; plain reads
 * (`map[id]`, `id in map`) are then safe. The functions below build them:
 *
 *   idMap(entries?)            a new map (from entries, like Object.fromEntries)
 *   copyIdMap(map)             a copy (what `{ ...map }` would give, prototype-free)
 *   withId(map, id, value)     a copy with one key set
 *   ownValue(object, key)      a key of an object from elsewhere (parsed JSON, the server): own keys only
 *
 * Object spread and Object.fromEntries give objects WITH a prototype: use these instead
 * wherever the keys came from a file or the server.
 */

export type IdMap<T> = Record<string, T>;

/** A map without a prototype, filled from `entries` (later entries win). */
export function idMap<T>(entries: Iterable<readonly [string, T]> = []): IdMap<T> {
  const map = Object.create(null) as IdMap<T>;
  for (const [key, value] of entries) map[key] = value;
  return map;
}

/** A prototype-free copy of a map (own keys only). */
export function copyIdMap<T>(map: Record<string, T> | undefined | null): IdMap<T> {
  return idMap(map ? Object.entries(map) : []);
}

/** A copy of `map` with `id` set to `value` (key order: an existing key keeps its place). */
export function withId<T>(map: Record<string, T>, id: string, value: T): IdMap<T> {
  const next = copyIdMap(map);
  next[id] = value;
  return next;
}

/** `object[key]` when it is an own key of a plain object, else undefined (never an inherited member). */
export function ownValue(object: unknown, key: string): unknown {
  return object !== null && typeof object === "object" && Object.hasOwn(object, key) ? (object as Record<string, unknown>)[key] : undefined;
}

/** Whether `key` is an own key of `object`. */
export function hasOwnKey(object: unknown, key: string): boolean {
  return object !== null && typeof object === "object" && Object.hasOwn(object, key);
}
