/**
 * The text an output node shows under it after a run (SchemaNode's `node-output-<id>`), from its recorded outputs.
 *
 * The server sends a node's outputs JSON-ready (nodegraph/results.py `jsonable`): a tensor or array as its
 * description `{type, shape, dtype}`, a PIL image as `{type: "Image", size, mode}`. An output node that passes its
 * image on (a Preview Bridge: outputs IMAGE and records files) showed `{"images": {"type": "Tensor", "shape": …}}`
 * as text beside its preview. Such a description is a picture, not text: left out where the node has files (they
 * are shown as pictures), else written short ("images: tensor 1×64×64×3 float32").
 */

/** A tensor's / array's / image's description as the server writes it, or null for any other value. */
function summaryText(value: unknown): string | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort().join(",");
  const dims = (list: unknown) => (Array.isArray(list) && list.every((n) => typeof n === "number") ? list.join("×") : null);
  if (keys === "dtype,shape,type" && typeof record.type === "string" && dims(record.shape) !== null) {
    const dtype = String(record.dtype ?? "").replace(/^torch\./, "");
    return `${record.type.toLowerCase()} ${dims(record.shape)}${dtype ? ` ${dtype}` : ""}`;
  }
  if (keys === "mode,size,type" && record.type === "Image" && dims(record.size) !== null) {
    return `image ${dims(record.size)} ${String(record.mode)}`;
  }
  return null;
}

/** The short text of a value made only of such descriptions (one, or a list of them), or null. */
function picturesText(value: unknown): string | null {
  if (Array.isArray(value)) {
    const parts = value.map(summaryText);
    return parts.length && parts.every((p) => p !== null) ? parts.join(", ") : null;
  }
  return summaryText(value);
}

/**
 * The text shown for an output node's recorded outputs (null when there is nothing to show besides files).
 * `hasFiles`: the node shows files of this run (the server sends them apart from the outputs, so a pass-through
 * node's recorded `images` are the pictures already shown).
 */
export function displayOutput(value: unknown, hasFiles = false): string | null {
  if (value === undefined || value === null) return null;
  const whole = picturesText(value); // a node whose recorded output is one tensor (or a list of them)
  if (whole !== null) return hasFiles ? null : whole;
  if (typeof value === "object" && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    if (typeof record.text === "string") return record.text;
    const filesShown = hasFiles || (Array.isArray(record.files) && record.files.length > 0);
    const rest: Record<string, unknown> = {};
    const pictures: string[] = [];
    for (const [key, item] of Object.entries(record)) {
      if (key === "files") continue;
      const short = picturesText(item);
      if (short === null) rest[key] = item;
      else if (!filesShown) pictures.push(`${key}: ${short}`);
    }
    const lines = [...pictures];
    if (Object.keys(rest).length) lines.push(JSON.stringify(rest, null, 1));
    return lines.length ? lines.join("\n") : null;
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}
