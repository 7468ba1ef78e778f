/**
 * Node search: fuzzy, ranked, and optionally filtered by a port type.
 *
 * Used by the palette and by the search popup (double-click on the canvas, or
 * a wire dropped on empty canvas). Every word of the query must match some
 * field of a node; a word's score is its best match over the fields, weighted
 * by field:
 *
 *   display name, type name, qualified name, aliases   1.0
 *   port types of the node's inputs and outputs         0.6
 *   category                                            0.5
 *   names of its inputs and outputs ("seed", "denoise")  0.45
 *   description                                         0.35
 *
 * and by how it matches (exact 100, prefix 80, a whole word of the field 70,
 * the start of a word 60 — words split at spaces, punctuation and camelCase —,
 * a substring 40, the letters in order 10–20, never strewn wider than three times the word). So "int" ranks the node named
 * Int first, then Int Math, then Random Int; nodes whose description merely
 * contains "int" come last.
 *
 * A hit is *strong* when every word of the query is a word of some field (exact,
 * prefix, whole word, word start: kind >= STRONG_MATCH) or a synonym's; a hit
 * found only by a mid-word substring or by letters in order ("invert" →
 * "Image Flip Rotate") is *weak*, and so is one whose words are only words of the description ("face": Render
 * Turntable's "face normals"). Strong hits come first, and Enter (palette,
 * popup) adds the best hit only when it is strong, so a query with no good
 * match adds nothing instead of an unrelated node.
 *
 * Synonyms (SYNONYMS) map the vocabulary of other node editors onto this
 * project's names: "clip" finds the text-encoder nodes (ComfyUI calls them
 * CLIP...), "ksampler" finds K Sampler, and ComfyUI's class names find our
 * equivalent ("CheckpointLoaderSimple" → Load Checkpoint, "LoraLoader" → Load
 * LoRA, "VAELoader" → Load VAE, ...). A synonym match scores 0.9 of a direct one. A plugin's ComfyUI class
 * names (`register_comfyui_classes`: "FaceDetailer" imports as a ported pack's Object Detailer) come with its schema
 * (`comfyui_classes`) and are searched the same way, as names weighted 0.9. A ComfyUI class whose work
 * is done another way here (Reroute: a wire's menu; CLIPSetLastLayer: Encode Text's clip_skip) has a hint
 * (SEARCH_HINTS, `searchHint`) that the search popup shows above the hits; a query for a note (`asksForNote`:
 * "Note", "MarkdownNote") makes the popup offer a note (graph/notes.ts) before the hits.
 *
 * A word of 5 letters or more that leaves out a letter or two of a name ("ksamplr") is a strong
 * hit too (a typo, not an unrelated node). Among equal scores the common nodes (COMMON_NODES) come
 * first, the more used first, and training nodes last; with no query yet (a wire dropped on the
 * canvas) the nodes taking exactly the wire's type come first, and within them and within the generic
 * (*) ones the common nodes lead in that order and the training nodes end.
 *
 * Port filtering (`PortFilter`): when a wire is dragged from an output of type
 * T and dropped on empty canvas, only nodes with an input that accepts T are
 * offered (and that input is the one to connect); from an input of type T,
 * only nodes with an output that T accepts.
 */
import { portsCompatible } from "./compatibility";
import { uniqueSchemas, type NodeSchema, type PortType } from "./types";

/**
 * Words other editors use → words this project uses (all lower case). ComfyUI class names
 * (typed as one word: "CheckpointLoaderSimple") map to the type name of our equivalent,
 * which a synonym matches exactly; where we have none (e.g. ConditioningCombine) there is
 * no entry, so the search does not pretend. A synonym matches a field it equals or (70) one it is part of;
 * one written "=int" only a name it equals (the node Int, not Print nor an INT port).
 */
export const SYNONYMS: Record<string, string[]> = {
  clip: ["text encoder", "text_encoder", "encode text"],
  prompt: ["encode text"],
  unet: ["u net", "model"],
  upscale: ["scale"],
  preview: ["preview image", "show"],
  lora: ["loadlora"],
  controlnet: ["loadcontrolnet", "applycontrolnet"],
  // ComfyUI class names → our node types
  checkpointloader: ["loadcheckpoint"],
  checkpointloadersimple: ["loadcheckpoint"],
  checkpointsave: ["savecheckpoint"],
  loraloader: ["loadlora"],
  loraloadermodelonly: ["loadloramodelonly", "loadlora"],
  vaeloader: ["loadvae"],
  unetloader: ["loadunet"],
  cliploader: ["loadtextencoder", "load text encoder"],
  dualcliploader: ["loadfluxtextencoders"],
  triplecliploader: ["loadsd3textencoders"],
  controlnetloader: ["loadcontrolnet"],
  controlnetapply: ["applycontrolnet"],
  controlnetapplyadvanced: ["applycontrolnet"],
  controlnetapplysd3: ["applycontrolnet"],
  upscalemodelloader: ["loadupscalemodel"],
  imageupscalewithmodel: ["upscaleimagewithmodel"],
  latentupscale: ["latentupscale"],
  latentupscaleby: ["latentupscale"],
  imagescaletototalpixels: ["imagescale"],
  imagepadforoutpaint: ["imagepad"],
  imagecompositemasked: ["compositeimages"],
  canny: ["cannyedges"],
  cliptextencode: ["encodetext", "encode text"],
  cliptextencodesdxl: ["encodetextsdxl"],
  cliptextencodeflux: ["encodetextflux"],
  cliptextencodesd3: ["encodetextsd3"],
  emptylatentimage: ["emptylatent"],
  emptysd3latentimage: ["emptylatent"],
  ksampler: ["k sampler", "ksampler"],
  ksampleradvanced: ["ksampler"],
  samplercustom: ["sample"],
  samplercustomadvanced: ["sample"],
  ksamplerselect: ["selectsampler"],
  basicscheduler: ["schedule"],
  vaeencode: ["vaeencode"],
  vaeencodeforinpaint: ["vaeencodeforinpaint"],
  vaedecode: ["vaedecode"],
  setlatentnoisemask: ["setlatentnoisemask"],
  saveimage: ["saveimage"],
  previewimage: ["previewimage"],
  loadimage: ["loadimage"],
  loadimagemask: ["loadimage"],
  saveanimatedwebp: ["savevideo"],
  // ComfyUI classes whose work is done elsewhere here (nodegraph/comfyui.py's INSTEAD table; SEARCH_HINTS says where)
  clipsetlastlayer: ["encodetext"],
  primitivenode: ["=int", "=float", "=string", "=boolean"],
  primitiveint: ["=int"],
  primitivefloat: ["=float"],
  primitivestring: ["=string"],
  primitiveboolean: ["=boolean"],
};

/**
 * What a ComfyUI user typing a class name (lower case, spaces removed) should know when nodegraph does that work
 * another way or not at all: shown above the hits. Kept with nodegraph/comfyui.py's INSTEAD table (its import
 * errors say the same; web/test/searchHints.test.ts checks each of its classes has a hint here).
 */
export const SEARCH_HINTS: Record<string, string> = {
  reroute: "Reroutes are not nodes here: right-click a wire → Add reroute here.",
  primitivenode: "ComfyUI's PrimitiveNode is the input's own widget here (type the value into it), or one of the primitive nodes below (Int, Float, String, Boolean) linked to several inputs.",
  clipsetlastlayer: "ComfyUI's CLIPSetLastLayer is Encode Text's clip_skip here (stop_at_clip_layer -2 is clip_skip 2).",
  conditioningcombine: "nodegraph has no conditioning combine (regional prompting): write both prompts in one Encode Text, or weight a part with (words:1.2).",
  conditioningsetarea: "nodegraph has no area conditioning yet: inpaint the region with a mask instead.",
  conditioningconcat: "nodegraph has no conditioning concat: write both prompts in one Encode Text (long prompts are encoded in chunks).",
  controlnetapply: "ComfyUI's ControlNetApply (one conditioning) is Apply ControlNet here, which takes positive and negative together.",
  ksampleradvanced: "A KSamplerAdvanced over the whole schedule is K Sampler; over part of it: Schedule → SplitSigmas → Sample.",
  imagecompositemasked: "ComfyUI's ImageCompositeMasked is Composite Images here (with resize_source: Image Scale to the destination first).",
  note: "A note is text on the canvas here, not a node (never run): Enter adds one; right-click the canvas → Add note does too.",
  markdownnote: "A note is text on the canvas here, not a node (never run; Markdown is shown as written): Enter adds one; right-click the canvas → Add note does too.",
};

/** Words (as `searchHint` reads a query) that ask for a note: ComfyUI's Note / MarkdownNote, other editors' words. */
const NOTE_WORDS = new Set(["note", "notes", "markdownnote", "textnote", "comment", "sticky", "stickynote"]);

/** Whether `query` asks for a note (the search popup then offers "Add a note here" first). */
export function asksForNote(query: string): boolean {
  return NOTE_WORDS.has(query.toLowerCase().replace(/[^a-z0-9]+/g, ""));
}

/** The hint for `query` (SEARCH_HINTS), or null: the query as one lower-case word, spaces and punctuation left out. */
export function searchHint(query: string): string | null {
  const key = query.toLowerCase().replace(/[^a-z0-9]+/g, "");
  return Object.hasOwn(SEARCH_HINTS, key) ? SEARCH_HINTS[key] : null;
}

const FIELD_WEIGHTS = { name: 1, comfyui: 0.9, port: 0.6, category: 0.5, socket: 0.45, description: 0.35 } as const;

/** A schema as the server sends it for a node that plugins import ComfyUI classes as: their names (the server's
 *  `Session.node_schemas`), which the search treats as synonyms of the node's own names. */
type WithComfyUIClasses = NodeSchema & { comfyui_classes?: string[] };

/** The least match kind (matchScore) that counts as matching a word: a word start. */
export const STRONG_MATCH = 60;

/** Where a wire being dragged came from: its port type and which side it is. */
export interface PortFilter {
  port: string;
  /** "output": the wire comes from an output, the new node must take it as an input. */
  from: "output" | "input";
}

export interface SearchHit {
  schema: NodeSchema;
  score: number;
  /** Every query word is a word (or a word's start) of some field, or a synonym's; false: letters in order or mid-word only. */
  strong: boolean;
  /** With a port filter: the input (from an output) or output (from an input) to connect. */
  port?: string;
}

/** The words of a name: split at non-alphanumerics and camelCase boundaries, lower case. */
export function wordsOf(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** How well one query word matches one field (0: not at all). */
export function matchScore(word: string, field: string): number {
  const text = field.toLowerCase();
  if (!text || !word) return 0;
  if (text === word) return 100;
  if (text.startsWith(word)) return 80;
  const words = wordsOf(field);
  if (words.includes(word)) return 70;
  if (words.some((w) => w.startsWith(word))) return 60;
  if (text.includes(word)) return 40;
  if (words.join("") === word) return 90; // "ksampler" vs "K Sampler"
  if (isNearMiss(word, words.join(""))) return STRONG_MATCH; // "ksamplr", "upscle": a letter or two left out
  return subsequenceScore(word, text);
}

/** A typo that leaves out a letter or two: every letter of `word` (5 or more) in order in `text`, within a
 *  stretch at most two letters longer than the word, from its first letter. */
function isNearMiss(word: string, text: string): boolean {
  if (word.length < 5 || !text.startsWith(word[0]) || text.length > word.length + 2) return false;
  let at = -1;
  for (const ch of word) {
    at = text.indexOf(ch, at + 1);
    if (at < 0) return false;
  }
  return true;
}

/**
 * The nodes people reach for most, as in ComfyUI's search, most used first: among hits that score
 * the same ("seed" is an input of K Sampler and of Vocode), and first when a dropped wire's search has
 * no query yet (an IMAGE wire: Preview Image, Save Image before Image Pad), in this order (a text
 * encoder's wire: Encode Text, as ComfyUI's CLIPTextEncode, before Load LoRA).
 */
export const COMMON_NODES = ["KSampler", "PreviewImage", "SaveImage", "VAEDecode", "VAEEncode", "EncodeText",
  "LoadCheckpoint", "EmptyLatent", "LoadImage", "LoadLoRA", "ImageScale", "UpscaleImageWithModel"];

/** A node for training (its category, or a part of it, is "training": Train Flow, Distill LCM, Save LoRA). */
export function isTrainingNode(schema: NodeSchema): boolean {
  return (schema.category ?? "").split("/").includes("training");
}

/**
 * The palette's categories with no search, in the order a first graph is built (docs/editor.md, "The palette"): load a
 * model, encode the prompt, sample, the latent, the image; then the other core categories. A category ranks by its
 * first part ("loaders/flux" with "loaders"); the categories of plugins (3D, audio, video ...) come after these, and
 * training ones (a "training" part: minutes to hours of work) last. Alphabetical, the palette opened on 20+ 3D and
 * audio nodes, with Load Checkpoint and K Sampler far down.
 */
export const CORE_CATEGORIES = ["loaders", "conditioning", "sampling", "latent", "image", "mask", "upscale", "primitives",
  "model_patches", "advanced", "utils"];

/** Where `category` goes in the palette with no search: its first part's place in CORE_CATEGORIES, then plugins', then training. */
export function categoryRank(category: string): number {
  const parts = category.toLowerCase().split("/");
  if (parts.includes("training")) return CORE_CATEGORIES.length + 1;
  const core = CORE_CATEGORIES.indexOf(parts[0]);
  return core >= 0 ? core : CORE_CATEGORIES.length;
}

/** The palette's groups (sorted by name) in `categoryRank` order, names deciding within a rank (a stable sort). */
export function orderPaletteGroups<G extends { category: string }>(groups: G[]): G[] {
  return [...groups].sort((a, b) => categoryRank(a.category) - categoryRank(b.category));
}

/**
 * How much everyday use lifts a hit: a common node by its place in COMMON_NODES (the first gets the
 * whole `lift`, the last half of it), a training node sinks (minutes to hours of work, never the node
 * a dropped wire is for: with no query it comes after every other node), the rest 0. `lift` is small
 * next to a typed query's scores (a tie-break) and large next to an empty query's.
 */
function everydayBonus(schema: NodeSchema, lift: number): number {
  const common = COMMON_NODES.indexOf(schema.type);
  if (common >= 0) return lift * (1 - common / (2 * COMMON_NODES.length));
  return isTrainingNode(schema) ? -lift : 0;
}

/** Letters in order spread wider than this many times the word's length match nothing: "reroute" found Image To
 *  Audio Latent by seven letters strewn over its description. */
const MAX_SPREAD = 3;

/** The letters of `word` in order in `text`, at most MAX_SPREAD times its length apart: 10–20, more for tighter
 *  matches; 0 when they are not there. */
function subsequenceScore(word: string, text: string): number {
  if (word.length < 2) return 0;
  let at = -1;
  let first = -1;
  for (const ch of word) {
    at = text.indexOf(ch, at + 1);
    if (at < 0) return 0;
    if (first < 0) first = at;
  }
  const spread = at - first + 1;
  if (spread > MAX_SPREAD * word.length) return 0;
  return 5 + 15 * (word.length / spread);
}

function fieldsOf(schema: NodeSchema): [string, number][] {
  const names = [schema.display_name, schema.type, schema.qualified_type ?? "", ...(schema.aliases ?? [])];
  const ports = new Set([...Object.values(schema.inputs).map((i) => i.port), ...schema.outputs.map((o) => o.port)]);
  ports.delete("*");
  // Input and output names ("seed" finds K Sampler, Random Noise ...): users search for what they want to set.
  const sockets = new Set([...Object.keys(schema.inputs), ...schema.outputs.map((o) => o.name)]);
  // A ported pack's class names ("FaceDetailer", "SDXL Prompt Styler"): what its users type, like SYNONYMS' keys.
  const comfyui = (schema as WithComfyUIClasses).comfyui_classes ?? [];
  return [
    ...names.filter(Boolean).map((n): [string, number] => [n, FIELD_WEIGHTS.name]),
    ...comfyui.filter((n) => typeof n === "string" && n).map((n): [string, number] => [n, FIELD_WEIGHTS.comfyui]),
    ...[...ports].map((p): [string, number] => [p, FIELD_WEIGHTS.port]),
    [schema.category ?? "", FIELD_WEIGHTS.category],
    ...[...sockets].map((n): [string, number] => [n, FIELD_WEIGHTS.socket]),
    [schema.description ?? "", FIELD_WEIGHTS.description],
  ];
}

/** A query word's best weighted score over the fields, whether some field has it as a word (or a synonym does), and
 *  whether a field other than the description does (`named`). */
function wordMatch(word: string, fields: [string, number][]): { score: number; strong: boolean; named: boolean } {
  let best = 0;
  let strong = false;
  let named = false;
  for (const [field, weight] of fields) {
    const kind = matchScore(word, field);
    best = Math.max(best, weight * kind);
    strong ||= kind >= STRONG_MATCH;
    named ||= kind >= STRONG_MATCH && weight > FIELD_WEIGHTS.description;
  }
  for (const synonym of Object.hasOwn(SYNONYMS, word) ? SYNONYMS[word] : []) {
    for (const [field, weight] of fields) {
      const text = field.toLowerCase();
      const hit = !synonym.startsWith("=") ? (text === synonym ? 100 : text.includes(synonym) ? 70 : 0)
        : weight === FIELD_WEIGHTS.name && text === synonym.slice(1) ? 100 : 0;
      best = Math.max(best, 0.9 * weight * hit);
      strong ||= hit > 0;
      named ||= hit > 0;
    }
  }
  return { score: best, strong, named };
}

/**
 * The node's score for `query` (0: it does not match every word), and whether the match is strong: every word is a
 * word of some field, and at least one of them of a field besides the description (a word of the description alone
 * is no good match: "face" found Render Turntable by its "face normals"; "invert image" finds Mask Operation).
 */
export function matchNode(schema: NodeSchema, query: string): { score: number; strong: boolean } {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return { score: 1, strong: true };
  const fields = fieldsOf(schema);
  let total = 0;
  let strong = true;
  let named = false;
  for (const word of words) {
    const match = wordMatch(word, fields);
    if (match.score <= 0) {
      // "encode text" typed as one word, or several words written together: try the whole query once
      if (words.length === 1) return { score: 0, strong: false };
      const joined = wordMatch(words.join(""), fields);
      return { score: Math.max(0, joined.score * 0.8), strong: joined.strong && joined.named };
    }
    total += match.score;
    strong &&= match.strong;
    named ||= match.named;
  }
  return { score: total, strong: strong && named };
}

/** The node's score for `query` (0: it does not match every word). */
export function scoreNode(schema: NodeSchema, query: string): number {
  return matchNode(schema, query).score;
}

/** The port of `schema` a wire from `filter` would connect to (null when none fits). */
export function matchingPort(schema: NodeSchema, filter: PortFilter, types: Record<string, PortType>): string | null {
  if (filter.from === "output") {
    for (const [name, spec] of Object.entries(schema.inputs)) {
      if (spec.port === filter.port || (spec.port !== "*" && portsCompatible(filter.port, spec.port, types))) return name;
    }
    for (const [name, spec] of Object.entries(schema.inputs)) if (spec.port === "*") return name;
    return null;
  }
  for (const out of schema.outputs) if (out.port === filter.port) return out.name;
  for (const out of schema.outputs) if (portsCompatible(out.port, filter.port, types)) return out.name;
  return null;
}

/** Node schemas matching `query` (and the port filter), best first: strong hits, then weak ones. */
export function searchNodes(
  nodes: Record<string, NodeSchema>,
  query: string,
  options: { filter?: PortFilter | null; types?: Record<string, PortType>; limit?: number } = {},
): SearchHit[] {
  const hits: SearchHit[] = [];
  for (const schema of uniqueSchemas(nodes)) {
    let port: string | undefined;
    if (options.filter) {
      const found = matchingPort(schema, options.filter, options.types ?? {});
      if (found === null) continue;
      port = found;
    }
    const match = matchNode(schema, query);
    let score = match.score;
    if (score <= 0) continue;
    score += everydayBonus(schema, query.trim() ? 0.5 : 3);
    if (port !== undefined && options.filter) {
      // Nodes whose port has exactly the wire's type come before generic (*) and converting ones — by more
      // than everydayBonus spans (±3 with no query), so a LORA wire offers Save LoRA (a training node) before
      // Wait or Switch (a re-test: Enter added Wait); the everyday order sorts within each of the two groups.
      const exact = options.filter.from === "output" ? schema.inputs[port]?.port === options.filter.port : schema.outputs.find((o) => o.name === port)?.port === options.filter.port;
      if (exact) score += query.trim() ? 5 : 7;
    }
    hits.push(port === undefined ? { schema, score, strong: match.strong } : { schema, score, strong: match.strong, port });
  }
  const name = (s: NodeSchema) => s.display_name || s.type;
  hits.sort((a, b) => Number(b.strong) - Number(a.strong) || b.score - a.score || name(a.schema).length - name(b.schema).length || name(a.schema).localeCompare(name(b.schema)));
  return options.limit ? hits.slice(0, options.limit) : hits;
}
