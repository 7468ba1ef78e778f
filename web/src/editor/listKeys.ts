/**
 * Keyboard handling shared by the filtered lists that open with a text box (the templates menu, the
 * combo widget's choices): ↓/↑ move the active row within the list, Enter picks it.
 *
 *   listKey(key, count, active, setActive, pick)   true when the key was one of those (the caller then
 *                                                  prevents its default), false for any other key
 */
export function listKey(
  key: string,
  count: number,
  active: number,
  setActive: (update: (active: number) => number) => void,
  pick: (index: number) => void,
): boolean {
  if (key === "ArrowDown") setActive((a) => Math.min(count - 1, a + 1));
  else if (key === "ArrowUp") setActive((a) => Math.max(0, a - 1));
  else if (key === "Enter" && active >= 0 && active < count) pick(active);
  else return false;
  return true;
}
