/**
 * The widget of one input, generated from its schema (schema/widgets.ts):
 * number fields with min/max/step (and a slider for bounded ranges), dropdowns
 * for choices and model files (a searchable combo for long lists), one-line
 * text, multi-line prompts that grow with their text, seed with its
 * randomise / increment / (decrement) / fixed control, a checkbox for booleans, and image
 * upload with a preview (an image's "Edit mask…" opens editor/MaskEditor.tsx).
 *
 * Test ids: widget-<node>-<input> (the value field; for a combo, its button),
 * widget-note-<node>-<input> (why a typed number was not applied), slider-<node>-<input>,
 * seed-mode-<node>-<input> (data-mode), combo-filter-<node>-<input>,
 * combo-option-<node>-<input>-<index>, upload-<node>-<input> (the file picker), edit-mask-<node>-<input>.
 *
 * Accessible names: every control is named by its input's name (`aria-label`: "steps", "steps
 * slider", "sampler_name filter"); a number box's range hint ("min 1, max 10000 — ↑/↓ to step")
 * is its description (`aria-describedby`), not its name. While the server's validation errors are
 * shown under the input (`errorId`: their element's id), the control is `aria-invalid` and
 * described by them too (`fieldAria`), as a half-typed number is by its note.
 *
 * Every change is one document edit (coalesced per input for undo). Inputs
 * carry the classes `nodrag nowheel` so that React Flow leaves them alone.
 *
 * A number box never keeps a value the user did not type in full: while the text is a
 * valid entry it is applied, while it is not (a half-typed "1e", a seed past 2^64−1) the
 * input holds the value from before editing began, the box is red and a note under it
 * says why; leaving the box (blur, Enter) with such text puts that value back in the box
 * and the note says what was kept. Integers are exact (a BigInt beyond 2^53).
 */
import { useEffect, useId, useLayoutEffect, useRef, useState, type ChangeEvent } from "react";
import { nextSeedMode, seedMode, setInput, setSeedMode, type InputValue } from "../graph/document";
import type { InputSpec } from "../schema/types";
import {
  COMBO_THRESHOLD,
  exactIntegerBound,
  filterChoices,
  integerValue,
  numberEntry,
  parseNumber,
  randomSeed,
  refusedEntryNote,
  sliderRange,
  UPLOAD_ACCEPT,
  uploadedFileId,
  uploadPreview,
  widgetText,
  type UploadKind,
  type Widget,
} from "../schema/widgets";
import { failureText } from "../state/app";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { openMaskEditor } from "../state/ui";
import { listKey } from "./listKeys";

interface Props {
  nodeId: string;
  name: string;
  spec: InputSpec;
  widget: Widget;
  value: InputValue | undefined;
  /** The ids (space-separated) of the validation errors shown under the input, when there are any. */
  errorId?: string;
}

/**
 * The ARIA state of a field: invalid when its own check fails (`invalid`) or validation errors are shown
 * for it (`errorId`); described by its own hint or note and by those errors.
 */
export function fieldAria(errorId: string | undefined, invalid = false, describedBy?: string): { "aria-invalid": boolean; "aria-describedby"?: string } {
  const ids = [describedBy, errorId].filter(Boolean).join(" ");
  return { "aria-invalid": invalid || Boolean(errorId), ...(ids ? { "aria-describedby": ids } : {}) };
}

export function InputWidget({ nodeId, name, spec, widget, value, errorId }: Props) {
  const app = useApp();
  const testId = `widget-${nodeId}-${name}`;
  const shown = value === undefined ? spec.default : value;
  const commit = (next: InputValue) => {
    app.editor.edit((doc) => setInput(doc, nodeId, name, next), `input:${nodeId}:${name}`);
    app.dispatch({ type: "clear_input_error", nodeId, input: name });
  };

  switch (widget.kind) {
    case "number": {
      const range = sliderRange(widget);
      if (!range) {
        return (
          <span className="ng-number-row">
            <NumberField testId={testId} label={name} value={shown} raw={value} widget={widget} onCommit={commit} errorId={errorId} />
          </span>
        );
      }
      return (
        <span className="ng-slider-row">
          <input
            className="nodrag nowheel ng-slider"
            type="range"
            data-testid={`slider-${nodeId}-${name}`}
            aria-label={`${name} slider`}
            min={range.min}
            max={range.max}
            step={range.step}
            value={typeof shown === "number" ? shown : range.min}
            onChange={(e) => {
              const next = Number(Number(e.target.value).toPrecision(12));
              if (next !== shown) commit(next);
            }}
          />
          <NumberField testId={testId} label={name} value={shown} raw={value} widget={widget} onCommit={commit} errorId={errorId} />
        </span>
      );
    }
    case "seed":
      return <SeedField nodeId={nodeId} name={name} testId={testId} value={shown} raw={value} widget={widget} onCommit={commit} errorId={errorId} />;
    case "toggle":
      return (
        <input
          className="nodrag ng-toggle"
          type="checkbox"
          data-testid={testId}
          aria-label={name}
          {...fieldAria(errorId)}
          checked={Boolean(shown)}
          onChange={(e) => commit(e.target.checked)}
        />
      );
    case "choice":
      if (widget.choices.length > COMBO_THRESHOLD) return <ComboField testId={testId} label={name} value={shown} choices={widget.choices} onCommit={commit} errorId={errorId} />;
      return <ChoiceField testId={testId} label={name} value={shown} choices={widget.choices} onCommit={commit} errorId={errorId} />;
    case "model_file":
      return <ModelField testId={testId} label={name} value={shown} folder={widget.folder} onCommit={commit} errorId={errorId} />;
    case "text":
      if (FOLDER_UPLOAD_INPUTS[app.editor.doc.nodes[nodeId]?.type ?? ""] === name) {
        return <FolderUploadField testId={testId} nodeId={nodeId} name={name} value={shown} onCommit={commit} errorId={errorId} />;
      }
      return <TextField testId={testId} label={name} value={shown} multiline={widget.multiline} onCommit={commit} errorId={errorId} />;
    case "file_upload":
      return <UploadField testId={testId} nodeId={nodeId} name={name} value={shown} kind={widget.uploadKind} onCommit={commit} errorId={errorId} />;
    default:
      return null;
  }
}

/** Local text that follows the document value except while the field has the focus. */
/** A field's text while it is edited: the document's value, except while the field has the focus, when it
 * keeps what was typed — unless the document changed to something else meanwhile (an undo, a redo). */
function useDraft(value: unknown): [string, (text: string) => void, boolean, (focused: boolean) => void] {
  const text = widgetText(value);
  const [draft, setDraftState] = useState(text);
  const [focused, setFocused] = useState(false);
  const typed = useRef(text);
  const setDraft = (next: string) => {
    typed.current = next;
    setDraftState(next);
  };
  useEffect(() => {
    if (!focused || text !== typed.current) {
      typed.current = text;
      setDraftState(text);
    }
  }, [text, focused]);
  return [draft, setDraft, focused, setFocused];
}

/** Where a number box stands while it has the focus: the input's value and text when editing began. */
interface EditStart {
  value: InputValue | undefined;
  text: string;
}

function NumberField({ testId, label, value, raw, widget, onCommit, errorId }: {
  testId: string;
  errorId?: string;
  /** The accessible name: the input's name. */
  label: string;
  /** The value shown (the default when the input is left out). */
  value: unknown;
  /** The document's value (undefined: left out), put back when an entry is not applied. */
  raw: InputValue | undefined;
  widget: Extract<Widget, { kind: "number" }>;
  onCommit: (v: InputValue | undefined) => void;
}) {
  const text = widgetText(value);
  const [draft, setDraft] = useState(text);
  const [start, setStart] = useState<EditStart | null>(null);
  const [note, setNote] = useState<string | null>(null);
  useEffect(() => {
    if (!start) setDraft(text);
  }, [text, start]);
  const parsed = parseNumber(draft, widget);
  const typed = start !== null && draft !== start.text;
  const invalid = !parsed.ok; // a value of the wrong type from the file is marked too
  const shownNote = note ?? (typed && !parsed.ok ? `${parsed.reason} — not applied` : null);
  const hintId = useId();

  /** Blur or Enter: a text that is not a valid entry gives way to the value from before, and the note says why. */
  const finish = (): EditStart | null => {
    if (!start || !typed) return start;
    const entry = numberEntry(draft, widget, start.value);
    if (entry.reason === null) {
      setNote(null);
      return { value: entry.value, text: draft };
    }
    onCommit(start.value);
    setDraft(start.text);
    setNote(refusedEntryNote(draft, entry.reason, start.text));
    return start;
  };

  return (
    <>
      <input
        className={`nodrag ng-number${invalid ? " ng-invalid" : ""}`}
        data-testid={testId}
        type="text"
        inputMode="decimal"
        aria-label={label}
        {...fieldAria(errorId, invalid, hintId)}
        value={draft}
        title={parsed.ok ? rangeText(widget) : parsed.reason}
        onFocus={() => {
          setNote(null);
          setStart({ value: raw, text: draft });
        }}
        onBlur={() => {
          finish();
          setStart(null);
        }}
        onChange={(e) => {
          setDraft(e.target.value);
          setNote(null);
          onCommit(numberEntry(e.target.value, widget, (start ?? { value: raw }).value).value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
            setStart(finish());
            return;
          }
          if (e.key !== "ArrowUp" && e.key !== "ArrowDown") return;
          e.preventDefault();
          const next = steppedNumber(value, widget, e.key === "ArrowUp" ? 1 : -1);
          setDraft(String(next));
          setNote(null);
          onCommit(next);
        }}
      />
      <span id={hintId} hidden>
        {shownNote ?? (parsed.ok ? rangeText(widget) : parsed.reason)}
      </span>
      {shownNote && (
        <span className="ng-field-note" data-testid={testId.replace(/^widget-/, "widget-note-")} role="alert">
          {shownNote}
        </span>
      )}
    </>
  );
}

/** ↑/↓ in a number box: one step up or down, kept within the bounds (exact for integers). */
function steppedNumber(value: unknown, widget: Extract<Widget, { kind: "number" }>, direction: 1 | -1): number | bigint {
  const step = widget.step ?? (widget.integer ? 1 : 0.1);
  if (widget.integer && Number.isInteger(step) && (typeof value === "bigint" || typeof value === "number")) {
    let next = (typeof value === "bigint" ? value : BigInt(Math.trunc(value))) + BigInt(direction * step);
    if (widget.min !== undefined && next < exactIntegerBound(widget.min, "min")) next = exactIntegerBound(widget.min, "min");
    if (widget.max !== undefined && next > exactIntegerBound(widget.max, "max")) next = exactIntegerBound(widget.max, "max");
    return integerValue(next);
  }
  const current = typeof value === "number" ? value : 0;
  let next = Number((current + direction * step).toPrecision(12));
  if (widget.min !== undefined) next = Math.max(widget.min, next);
  if (widget.max !== undefined) next = Math.min(widget.max, next);
  return next;
}

export function rangeText(widget: { min?: number; max?: number; step?: number }): string {
  const parts = [];
  if (widget.min !== undefined && widget.min > -1e15) parts.push(`min ${widget.min}`);
  if (widget.max !== undefined && widget.max < 1e15) parts.push(`max ${widget.max}`);
  if (widget.step !== undefined) parts.push(`step ${widget.step}`);
  return parts.join(", ") + (parts.length ? " — " : "") + "↑/↓ to step";
}

function SeedField({ nodeId, name, testId, value, raw, widget, onCommit, errorId }: {
  errorId?: string;
  nodeId: string;
  name: string;
  testId: string;
  value: unknown;
  raw: InputValue | undefined;
  widget: Extract<Widget, { kind: "seed" }>;
  onCommit: (v: InputValue | undefined) => void;
}) {
  const app = useApp();
  const mode = useStore(app.editor.store, (s) => (s.doc.nodes[nodeId] ? seedMode(s.doc.nodes[nodeId], name) : "fixed"));
  const numberWidget = { kind: "number" as const, integer: true, min: widget.min, max: widget.max, step: 1 };
  const labels = { randomize: "random", increment: "+1 / run", decrement: "−1 / run", fixed: "fixed" } as const; // plain text: no emoji font needed
  // as ComfyUI's "control after generate": a run uses the seed shown, then the next one is shown
  const titles = {
    randomize: "Each run uses the seed shown, then a new one is drawn (click: add one after each run)",
    increment: "Each run uses the seed shown, then it goes up by one (click: keep it fixed)",
    decrement: "Each run uses the seed shown, then it goes down by one (click: keep it fixed)",
    fixed: "The seed stays as it is (click: a new one after each run)",
  } as const;
  return (
    <span className="ng-seed">
      <NumberField testId={testId} label={name} value={value} raw={raw} widget={numberWidget} onCommit={onCommit} errorId={errorId} />
      <button
        type="button"
        className={`nodrag ng-seed-mode ng-seed-${mode}`}
        data-testid={`seed-mode-${nodeId}-${name}`}
        data-mode={mode}
        title={titles[mode]}
        aria-label={`${name} mode: ${labels[mode]}`}
        onClick={() => app.editor.edit((doc) => setSeedMode(doc, nodeId, name, nextSeedMode(mode)))}
      >
        {labels[mode]}
      </button>
      <button type="button" className="nodrag ng-icon" title="New random seed now" aria-label={`new random ${name}`} onClick={() => onCommit(randomSeed(widget.min, widget.max))}>
        ↻
      </button>
    </span>
  );
}

function ChoiceField({ testId, label, value, choices, onCommit, errorId }: {
  errorId?: string;
  testId: string;
  label: string;
  value: unknown;
  choices: unknown[];
  onCommit: (v: InputValue) => void;
}) {
  const index = choices.findIndex((c) => c === value);
  return (
    <select
      className="nodrag nowheel ng-select"
      data-testid={testId}
      aria-label={label}
      {...fieldAria(errorId)}
      value={index >= 0 ? String(index) : "missing"}
      onChange={(e: ChangeEvent<HTMLSelectElement>) => {
        const i = Number(e.target.value);
        if (Number.isInteger(i) && i >= 0) onCommit(choices[i] as InputValue);
      }}
    >
      {index < 0 && <option value="missing">{value === undefined ? "—" : `${widgetText(value)} (not a choice)`}</option>}
      {choices.map((choice, i) => (
        <option key={i} value={String(i)}>
          {String(choice)}
        </option>
      ))}
    </select>
  );
}

/** A searchable dropdown for long lists: a button with the value; open it to filter and pick. */
function ComboField({ testId, label, value, choices, onCommit, onOpen, missingNote, errorId }: {
  errorId?: string;
  testId: string;
  label: string;
  value: unknown;
  choices: unknown[];
  onCommit: (v: InputValue) => void;
  onOpen?: () => void;
  missingNote?: string;
}) {
  const [open, setOpen] = useState(false);
  const [query, setQuery] = useState("");
  const [active, setActive] = useState(0);
  const shown = filterChoices(choices, query);
  const listId = useId();
  const button = useRef<HTMLButtonElement>(null);
  const missing = value !== undefined && value !== "" && !choices.includes(value);
  /** Close the list; `refocus`: give the focus back to the combo's button (Escape, a pick with the keyboard). */
  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };
  const pick = (choice: unknown, refocus = true) => {
    onCommit(choice as InputValue);
    close(refocus);
    setQuery("");
  };
  return (
    <span className="ng-combo nodrag nowheel">
      <button
        type="button"
        ref={button}
        className={`ng-combo-button${missing ? " ng-invalid" : ""}`}
        data-testid={testId}
        aria-label={`${label}: ${value === undefined || value === "" ? "none chosen" : widgetText(value)}`}
        aria-haspopup="listbox"
        aria-expanded={open}
        {...fieldAria(errorId, missing)}
        data-value={widgetText(value)}
        title={missing ? missingNote ?? `${widgetText(value)} is not a choice` : widgetText(value)}
        onClick={() => {
          setOpen((o) => !o);
          onOpen?.();
        }}
      >
        <span>{value === undefined || value === "" ? "— choose —" : widgetText(value)}</span> ▾
      </button>
      {open && (
        <div className="ng-combo-list">
          <input
            autoFocus
            data-testid={`combo-filter-${testId.slice("widget-".length)}`}
            placeholder={`filter ${choices.length}…`}
            aria-label={`${label} filter`}
            role="combobox"
            aria-expanded="true"
            aria-controls={listId}
            aria-activedescendant={shown.length ? `${listId}-${active}` : undefined}
            value={query}
            onChange={(e) => {
              setQuery(e.target.value);
              setActive(0);
            }}
            onKeyDown={(e) => {
              if (e.key === "Escape") close(true);
              else if (!listKey(e.key, shown.length, active, setActive, (i) => pick(shown[i]))) return;
              e.preventDefault();
              e.stopPropagation();
            }}
            onBlur={(e) => {
              if (!e.relatedTarget || !(e.currentTarget.parentElement?.contains(e.relatedTarget as Node))) setTimeout(() => setOpen(false), 150);
            }}
          />
          <div className="ng-combo-options" id={listId} role="listbox" aria-label={`${label} choices`}>
            {shown.length === 0 && <div className="ng-muted">no match</div>}
            {shown.map((choice, i) => (
              <button
                type="button"
                key={String(choice)}
                id={`${listId}-${i}`}
                role="option"
                aria-selected={i === active}
                tabIndex={-1}
                className={`${i === active ? "ng-active" : ""}${choice === value ? " ng-current" : ""}`}
                data-testid={`combo-option-${testId.slice("widget-".length)}-${choices.indexOf(choice)}`}
                onMouseDown={(e) => e.preventDefault()}
                onClick={() => pick(choice, false)}
              >
                {String(choice)}
              </button>
            ))}
          </div>
        </div>
      )}
    </span>
  );
}

function ModelField({ testId, label, value, folder, onCommit, errorId }: {
  errorId?: string;
  testId: string;
  label: string;
  value: unknown;
  folder: string;
  onCommit: (v: string) => void;
}) {
  const app = useApp();
  const files = useStore(app.session, (s) => s.models[folder]);
  const list = files ?? [];
  const current = typeof value === "string" ? value : "";
  const missing = current !== "" && !list.includes(current);
  if (list.length > COMBO_THRESHOLD) {
    return (
      <ComboField
        testId={testId}
        label={label}
        value={current}
        choices={list}
        onCommit={(v) => onCommit(String(v))}
        onOpen={() => app.refreshModels(folder)}
        missingNote={`${current} is not in the ${folder} folder`}
        errorId={errorId}
      />
    );
  }
  return (
    <select
      className={`nodrag nowheel ng-select${missing ? " ng-invalid" : ""}`}
      data-testid={testId}
      aria-label={label}
      {...fieldAria(errorId, missing)}
      value={current}
      title={missing ? `${current} is not in the ${folder} folder` : `files in the ${folder} model folder`}
      onFocus={() => app.refreshModels(folder)}
      onChange={(e) => onCommit(e.target.value)}
    >
      {current === "" && <option value="">{list.length ? "— choose a file —" : `no files in ${folder}`}</option>}
      {missing && <option value={current}>{current} (missing)</option>}
      {list.map((file) => (
        <option key={file} value={file}>
          {file}
        </option>
      ))}
    </select>
  );
}

function TextField({ testId, label, value, multiline, onCommit, errorId }: {
  errorId?: string;
  testId: string;
  label: string;
  value: unknown;
  multiline: boolean;
  onCommit: (v: string) => void;
}) {
  const [draft, setDraft, , setFocused] = useDraft(value);
  const area = useRef<HTMLTextAreaElement>(null);
  // A prompt grows with its text (up to 16 lines; then it scrolls): its text's height is its min-height, so
  // in a node resized taller it can fill the rest (styles.css .ng-sized) and still grows as the text does.
  useLayoutEffect(() => {
    const element = area.current;
    if (!element) return;
    element.style.minHeight = "0px";
    element.style.height = "0px";     // the text's own height, not the height the node stretches it to
    const text = element.scrollHeight + 2;
    element.style.height = "";
    element.style.minHeight = `${Math.max(34, Math.min(text, 16 * 18))}px`;
  }, [draft]);
  const props = {
    className: `nodrag nowheel ${multiline ? "ng-textarea" : "ng-text"}`,
    "data-testid": testId,
    "aria-label": label,
    ...fieldAria(errorId),
    "data-graph-undo": "true",     // Ctrl+Z here is the graph's undo (shortcuts.ts `shortcutInField`)
    value: draft,
    onFocus: () => setFocused(true),
    onBlur: () => setFocused(false),
    onChange: (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => {
      setDraft(e.target.value);
      onCommit(e.target.value);
    },
  };
  return multiline ? <textarea ref={area} rows={2} {...props} /> : <input type="text" {...props} />;
}

function UploadField({ testId, nodeId, name, value, kind, onCommit, errorId }: {
  errorId?: string;
  testId: string;
  nodeId: string;
  name: string;
  value: unknown;
  kind: UploadKind;
  onCommit: (v: string) => void;
}) {
  const app = useApp();
  const fileInput = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const fileId = uploadedFileId(value);
  const preview = uploadPreview(kind, value);
  const previewProps = { className: "ng-upload-preview nodrag", "data-testid": `upload-preview-${nodeId}-${name}` };
  return (
    <div className="ng-upload">
      <div className="ng-upload-row">
        <TextField testId={testId} label={name} value={value} multiline={false} onCommit={onCommit} errorId={errorId} />
        <button type="button" className="nodrag" disabled={busy} aria-label={`upload a file for ${name}`} onClick={() => fileInput.current?.click()}>
          {busy ? "…" : "Upload"}
        </button>
        {fileId && (kind === "image" || kind === "mask") && (
          <button
            type="button"
            className="nodrag"
            data-testid={`edit-mask-${nodeId}-${name}`}
            aria-label={`Edit the mask of ${name}`}
            title="paint a mask on this image (saved as a new upload with alpha)"
            onClick={() => openMaskEditor(app.ui, nodeId, name, String(value))}
          >
            Edit mask…
          </button>
        )}
        <input
          ref={fileInput}
          hidden
          type="file"
          accept={UPLOAD_ACCEPT[kind]}
          data-testid={`upload-${nodeId}-${name}`}
          onChange={async (e) => {
            const file = e.target.files?.[0];
            e.target.value = "";
            if (!file) return;
            setBusy(true);
            const stored = await app.upload(file, kind);
            setBusy(false);
            if (stored) onCommit(stored);
          }}
        />
      </div>
      {/* the server's JPEG thumbnail: any format it reads (TIFF too), and not an 8192² file for a small preview */}
      {fileId && preview === "image" && <img {...previewProps} src={thumbnailUrl(app.fileUrl(fileId))} alt={String(value)} />}
      {fileId && preview === "audio" && <audio {...previewProps} controls preload="metadata" src={app.fileUrl(fileId)} />}
      {fileId && preview === "video" && <video {...previewProps} controls muted preload="metadata" src={app.fileUrl(fileId)} />}
    </div>
  );
}

// --- "Upload folder…": a training dataset's folder, its subfolders and captions ---------------------------------

/** The inputs that name a dataset folder inside the input folder (node type → input), which get "Upload folder…". */
export const FOLDER_UPLOAD_INPUTS: Record<string, string> = { ImageFolderDataset: "folder" };
/** Files of one folder upload at most: a dataset of LoRA size is tens to hundreds of images (and their captions). */
export const MAX_FOLDER_FILES = 2000;
const DATASET_IMAGES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]; // ImageFolderDataset's IMAGE_EXTENSIONS
const DATASET_CAPTIONS = ["txt", "caption"];
const MAX_SUBFOLDER_DEPTH = 4; // the server's limit (files.MAX_UPLOAD_DEPTH): the chosen folder and 3 below it

export interface FolderUpload {
  file: File;
  /** where it goes in the input folder: the chosen folder's name and the folders below it ("dataset/10_zorb") */
  subfolder: string;
  kind: "image" | "caption";
}

export interface FolderUploadPlan {
  /** the chosen folder's name: what `folder` is set to */
  folder: string;
  uploads: FolderUpload[];
  /** files that are neither an image nor a caption, hidden ones (".DS_Store"), or more than 4 folders deep */
  skipped: number;
}

/**
 * What a folder chosen with `<input type=file webkitdirectory>` uploads: each file's `webkitRelativePath`
 * ("dataset/10_zorb/a.png") gives its subfolder under the chosen folder's name; images go as kind image, .txt /
 * .caption files as kind caption (beside their image, as ImageFolderDataset reads them), the rest is skipped and
 * counted. Throws (with the fix) when no folder was chosen or it has more than MAX_FOLDER_FILES to upload.
 */
export function folderUploadPlan(files: readonly File[]): FolderUploadPlan {
  let folder = "";
  let skipped = 0;
  const uploads: FolderUpload[] = [];
  for (const file of files) {
    const parts = (file.webkitRelativePath || file.name).split("/");
    if (parts.length < 2) throw new Error("choose a folder (its files go into a folder of that name in the input folder)");
    folder ||= parts[0];
    const extension = file.name.includes(".") ? file.name.slice(file.name.lastIndexOf(".") + 1).toLowerCase() : "";
    const kind = DATASET_IMAGES.includes(extension) ? "image" : DATASET_CAPTIONS.includes(extension) ? "caption" : null;
    const hidden = parts.some((part) => part.startsWith(".")); // the server refuses hidden folders; .DS_Store is no data
    if (kind === null || hidden || parts.length - 1 > MAX_SUBFOLDER_DEPTH) skipped++;
    else uploads.push({ file, subfolder: parts.slice(0, -1).join("/"), kind });
  }
  if (uploads.length > MAX_FOLDER_FILES) {
    throw new Error(`${folder} has ${uploads.length.toLocaleString("en-US")} images and captions; an upload takes at most ` +
      `${MAX_FOLDER_FILES.toLocaleString("en-US")}: upload it in parts (one subfolder at a time), or copy it into the server's input folder`);
  }
  return { folder, uploads, skipped };
}

/** The toast after a folder upload: how many images and captions went where, and how many files were skipped. */
export function folderUploadSummary(plan: FolderUploadPlan): string {
  const images = plan.uploads.filter((u) => u.kind === "image").length;
  const captions = plan.uploads.length - images;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const skipped = plan.skipped ? `; skipped ${plural(plan.skipped, "other file")} (not an image or a .txt / .caption)` : "";
  return `Uploaded ${plural(images, "image")} and ${plural(captions, "caption")} into ${plan.folder}${skipped}`;
}

/** A dataset folder's name, with "Upload folder…": the chosen folder's images and captions go into the input folder
 *  under its name (subfolders kept: kohya's `10_name` folders), then the input names it. */
function FolderUploadField({ testId, nodeId, name, value, onCommit, errorId }: {
  testId: string;
  nodeId: string;
  name: string;
  value: unknown;
  onCommit: (v: string) => void;
  errorId?: string;
}) {
  const app = useApp();
  const folderInput = useRef<HTMLInputElement>(null);
  const [progress, setProgress] = useState<string | null>(null);
  useEffect(() => {
    // React knows no `webkitdirectory` prop: set it on the element (Chromium, Firefox and Safari read it)
    folderInput.current?.setAttribute("webkitdirectory", "");
  }, []);
  const uploadFolder = async (files: File[]) => {
    let plan: FolderUploadPlan;
    try {
      plan = folderUploadPlan(files);
    } catch (error) {
      app.toast(`Cannot upload the folder: ${(error as Error).message}`, "error");
      return;
    }
    if (plan.uploads.length === 0) {
      app.toast(`${plan.folder} has no images or captions to upload (${plan.skipped} other files)`, "error");
      return;
    }
    for (const [index, upload] of plan.uploads.entries()) {
      setProgress(`${index + 1} / ${plan.uploads.length}`);
      try {
        await app.client.upload(upload.file.name, new Uint8Array(await upload.file.arrayBuffer()), upload.kind, upload.subfolder);
      } catch (error) {
        setProgress(null);
        app.toast(`${failureText(error, `upload ${upload.subfolder}/${upload.file.name}`)} (${index} of ${plan.uploads.length} ` +
          "files uploaded before it)", "error");
        return;
      }
    }
    setProgress(null);
    app.toast(folderUploadSummary(plan));
    onCommit(plan.folder);
  };
  return (
    <div className="ng-upload-row">
      <TextField testId={testId} label={name} value={value} multiline={false} onCommit={onCommit} errorId={errorId} />
      <button
        type="button"
        className="nodrag"
        disabled={progress !== null}
        data-testid={`upload-folder-button-${nodeId}-${name}`}
        aria-label={`upload a folder for ${name}`}
        title={`its images and .txt / .caption captions go into the input folder, subfolders kept (at most ${MAX_FOLDER_FILES.toLocaleString("en-US")} files)`}
        onClick={() => folderInput.current?.click()}
      >
        {progress === null ? "Upload folder…" : `Uploading ${progress}…`}
      </button>
      <input
        ref={folderInput}
        hidden
        type="file"
        multiple
        data-testid={`upload-folder-${nodeId}-${name}`}
        onChange={(e) => {
          const files = Array.from(e.target.files ?? []);
          e.target.value = "";
          if (files.length) void uploadFolder(files);
        }}
      />
    </div>
  );
}

/** `/files/<id>?size=256`: a JPEG thumbnail of an image file (docs/protocol.md). */
function thumbnailUrl(url: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}size=256`;
}
