/**
 * A note on the canvas (graph/notes.ts, `ui.notes`): ComfyUI's Note and MarkdownNote.
 *
 * A bar to drag it by and a text field that is the note: typed into in place, each keystroke
 * written into the document (coalesced into one undo step per note while typing; Ctrl+Z in it is the
 * graph's undo, as in a prompt). The text is plain text in a <textarea> — never HTML, so a note's
 * `<img onerror=…>` is shown as those characters; Markdown is shown as written. A long text scrolls
 * inside the note; the field takes at most MAX_NOTE_TEXT characters. Resized by its handles when
 * selected; moved, deleted, copied and pasted with the nodes (editor/GraphCanvas.tsx).
 *
 * Test ids: note-<id>, note-bar-<id>, note-text-<id>.
 */
import { NodeResizer, type Node, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { textColorOn } from "../graph/nodeLook";
import { MAX_NOTE_TEXT, NOTE_MIN_SIZE, noteColor, updateNote, type Note } from "../graph/notes";
import { useApp } from "../state/context";

export type NoteFlowNode = Node<{ note: Note }, "note">;

function NoteView({ data, selected }: NodeProps<NoteFlowNode>) {
  const app = useApp();
  const { note } = data;
  const color = noteColor(note);
  const style = color ? { background: color, color: textColorOn(color) } : undefined;
  return (
    <div className={`ng-note${selected ? " ng-selected" : ""}`} data-testid={`note-${note.id}`} style={style}>
      <NodeResizer
        isVisible={selected}
        minWidth={NOTE_MIN_SIZE[0]}
        minHeight={NOTE_MIN_SIZE[1]}
        onResize={(_, p) => app.editor.dragEdit((doc) => updateNote(doc, note.id, { bounds: [p.x, p.y, p.width, p.height] }))}
        onResizeEnd={() => app.editor.dragEnd()}
      />
      <div className="ng-note-bar" data-testid={`note-bar-${note.id}`} title="drag to move the note">
        Note
      </div>
      <textarea
        className="nodrag nowheel ng-note-text"
        data-testid={`note-text-${note.id}`}
        data-graph-undo="true"
        aria-label="Note text"
        placeholder="Write a note (plain text)…"
        maxLength={MAX_NOTE_TEXT}
        spellCheck={false}
        value={note.text}
        onChange={(e) => app.editor.edit((doc) => updateNote(doc, note.id, { text: e.target.value }), `note-text:${note.id}`)}
      />
    </div>
  );
}

export const NoteNode = memo(NoteView);
