/**
 * What floats over the canvas: the node search popup, the context menus, the
 * keyboard-shortcut help and the bar shown while a subgraph is open.
 *
 * SearchPopup (double-click on the canvas, or a wire dropped on empty canvas):
 *   fuzzy search (schema/search.ts) at the cursor; ↑/↓ and Enter, or a click, add the
 *   node there (clear of other nodes); opened from a wire it lists only nodes that fit
 *   that wire's type and connects the new node to it. When even the best hit is weak
 *   (letters in order, mid-word), nothing is highlighted and the popup says "no good
 *   match": Enter adds nothing until ↓ (or the mouse) picks one of the weak hits. A query that asks for a note
 *   ("note", "MarkdownNote", "comment": schema/search.ts `asksForNote`) offers "Add a note here" first (search-add-note),
 *   which Enter picks.
 * ContextMenu (right-click, or Shift+F10 / the Menu key on a focused node or wire): items for the
 *   canvas (with "Add note"), a node (or the selection), a wire, a group, a reroute or a note — see `menuItems`; a node's
 *   "Connect an output…" lists the links it can make (editor/connectChoices.ts). It is a menu
 *   (role menu / menuitem): the focus moves onto its first item, ↑/↓ Home/End move between items
 *   (never the node behind it), Escape closes it and the focus goes back to what opened it.
 * HelpPanel: editor/shortcuts.ts as a table, in a dialog (role dialog, named by its heading) that takes the focus
 *   on its scrolling table (↑/↓ PageUp/PageDown scroll it); Escape closes it and the focus goes back to the opener.
 * SubgraphBar: the path of open subgraphs with a button back to the outer graph.
 *
 * A ComfyUI class name with another home here (schema/search.ts SEARCH_HINTS: Reroute, CLIPSetLastLayer) gets a
 * hint line above the hits.
 *
 * Test ids: search-popup, search-input, search-item-<type> (data-strong), search-add-note, search-no-good-match, search-hint, context-menu,
 * menu-<action>, help-panel, help-body, subgraph-bar, subgraph-back.
 */
import { useEffect, useId, useLayoutEffect, useMemo, useRef, useState } from "react";
import { connect, disconnect, docEdges, moveNodes, nodeSize, setNodeSize, type Position } from "../graph/document";
import { addGroup, addReroute, GROUP_COLORS, groupMembers, groupsOf, removeGroup, removeReroutes, updateGroup } from "../graph/groups";
import { idMap } from "../graph/idMaps";
import { isMinimised, NODE_COLORS, nodeColors, setNodeColor, toggleMinimised } from "../graph/nodeLook";
import { alignNodes, distributeNodes, type AlignEdge, type Rect } from "../graph/layout";
import {
  exposedPorts, exposeInput, exposeOutput, linksToPort, stopExposing, stopExposingInput, stopExposingOutput, subgraphName, SUBGRAPH_INPUTS,
} from "../graph/subgraph";
import { asksForNote, searchHint, searchNodes } from "../schema/search";
import type { EditorApp } from "../state/app";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { openMaskEditor, type MenuTarget } from "../state/ui";
import { maskEditableInputs } from "../schema/widgets";
import { addNodeAt, addNoteAt, selectionActions } from "./GraphCanvas";
import { copyNotes, NOTE_PREFIX, removeNotes } from "../graph/notes";
import { choiceLabel, connectChoices } from "./connectChoices";
import { pruneReroutes } from "../graph/groups";
import { useReturnFocus } from "./focusReturn";
import { SHORTCUTS } from "./shortcuts";

export function SearchPopup() {
  const app = useApp();
  const search = useStore(app.ui, (s) => s.search);
  const nodes = useStore(app.session, (s) => s.schemas.nodes);
  const types = useStore(app.session, (s) => s.schemas.types);
  const doc = useStore(app.editor.store, (s) => s.doc);
  const [query, setQuery] = useState("");
  // The hit picked with ↑/↓ or the mouse; null: none yet, so the best hit, when it is a strong match.
  const [picked, setPicked] = useState<number | null>(null);
  const list = useRef<HTMLDivElement>(null);
  const listId = useId();
  useReturnFocus(search !== null);
  const all = useMemo(() => app.schemasFor(doc), [app, doc, nodes]); // eslint-disable-line react-hooks/exhaustive-deps
  const hits = useMemo(
    () => (search ? searchNodes(all, query, { filter: search.wire?.filter ?? null, types, limit: 40 }) : []),
    [all, query, search, types],
  );
  // A note asked for (not from a wire: a note takes no wire): "Add a note here" leads, highlighted as NOTE_ITEM.
  const noteOffered = !search?.wire && asksForNote(query);
  // The highlighted hit, which Enter adds; -1: none (the best hit is weak and none was picked).
  const active = picked ?? (noteOffered ? NOTE_ITEM : hits[0]?.strong ? 0 : -1);
  useEffect(() => {
    setQuery("");
    setPicked(null);
  }, [search]);
  useEffect(() => {
    list.current?.querySelector(".ng-active")?.scrollIntoView({ block: "nearest" });
  }, [active]);
  const popup = useRef<HTMLDivElement>(null);
  // autoFocus alone lost the focus now and then to the double-click that opened the popup (its events end on the
  // canvas after the popup mounts), and the first keys typed went nowhere: take it again once they have settled
  useEffect(() => {
    if (!search) return;
    const frame = requestAnimationFrame(() => popup.current?.querySelector<HTMLInputElement>("input")?.focus());
    return () => cancelAnimationFrame(frame);
  }, [search]);
  const [popupHeight, setPopupHeight] = useState(380);
  useLayoutEffect(() => {
    const height = popup.current?.offsetHeight;
    if (height && height !== popupHeight) setPopupHeight(height);
  });
  if (!search) return null;

  const choose = (index: number, byKeyboard = false) => {
    if (index === NOTE_ITEM && noteOffered) {
      app.ui.set((s) => ({ ...s, search: null }));
      addNoteAt(app, search.at);
      return;
    }
    const hit = hits[index];
    if (!hit) return;
    app.ui.set((s) => ({ ...s, search: null }));
    const id = addNodeAt(app, hit.schema.type, search.at);
    // added from the keyboard (Shift+F10 → Add node…, Enter): the focus goes onto the new node, so its
    // menu (Shift+F10 → Connect an output…) is one key away, not back on the canvas
    if (id && byKeyboard) focusNodeWhenShown(id);
    const wire = search.wire;
    if (!id || !wire || !hit.port) return;
    const port = hit.port;
    app.editor.edit((doc) =>
      wire.filter.from === "output" ? connect(doc, wire.node, wire.handle, id, port) : connect(doc, id, port, wire.node, wire.handle),
    );
  };

  // at the cursor, moved up and left as far as it needs to stay whole inside the window (its height is
  // measured: the wire's filter line made it taller than the 380 px assumed before, 6 px past the bottom)
  const left = Math.max(0, Math.min(search.screen[0], window.innerWidth - 340));
  const top = Math.max(0, Math.min(search.screen[1], window.innerHeight - popupHeight - 4));
  return (
    <div className="ng-search-popup" data-testid="search-popup" ref={popup} style={{ left, top }} onContextMenu={(e) => e.preventDefault()}>
      <input
        autoFocus
        data-testid="search-input"
        role="combobox"
        aria-label={search.wire ? `Search nodes that fit ${search.wire.filter.port}` : "Search nodes"}
        aria-expanded="true"
        aria-controls={listId}
        aria-activedescendant={active === NOTE_ITEM && noteOffered ? `${listId}-note` : active >= 0 && hits[active] ? `${listId}-${active}` : undefined}
        placeholder={search.wire ? `Nodes that fit ${search.wire.filter.port}…` : "Search nodes…"}
        value={query}
        onChange={(e) => {
          setQuery(e.target.value);
          setPicked(null);
        }}
        onKeyDown={(e) => {
          if (e.key === "ArrowDown") setPicked(Math.min(hits.length - 1, Math.max(0, active + 1)));
          else if (e.key === "ArrowUp") setPicked(noteOffered && active <= 0 ? NOTE_ITEM : Math.max(0, active - 1));
          else if (e.key === "Enter") choose(active, true);
          else if (e.key === "Escape") app.ui.set((s) => ({ ...s, search: null }));
          else return;
          e.preventDefault();
          e.stopPropagation();
        }}
      />
      {search.wire && <div className="ng-muted ng-search-filter">only nodes that {search.wire.filter.from === "output" ? "take" : "give"} {search.wire.filter.port}</div>}
      <div className="ng-search-list" ref={list} id={listId} role="listbox" aria-label="Nodes">
        {searchHint(query) && <div className="ng-search-hint" data-testid="search-hint">{searchHint(query)}</div>}
        {noteOffered && (
          <button
            type="button"
            id={`${listId}-note`}
            role="option"
            aria-selected={active === NOTE_ITEM}
            tabIndex={-1}
            className={`ng-search-item${active === NOTE_ITEM ? " ng-active" : ""}`}
            data-testid="search-add-note"
            onMouseEnter={() => setPicked(NOTE_ITEM)}
            onClick={() => choose(NOTE_ITEM)}
            title="a text note on the canvas (plain text), saved with the graph, never run"
          >
            <span className="ng-search-name">Add a note here</span>
            <span className="ng-muted ng-search-meta">note · text on the canvas</span>
          </button>
        )}
        {hits.length === 0 && !noteOffered && <div className="ng-muted" data-testid="search-no-good-match">No good match: no node matches.</div>}
        {hits.length > 0 && !hits[0].strong && !noteOffered && (
          <div className="ng-muted ng-search-weak" data-testid="search-no-good-match">
            No good match for “{query.trim()}”. Letters in order only: ↓ to pick one anyway.
          </div>
        )}
        {hits.map((hit, i) => (
          <button
            type="button"
            key={hit.schema.type}
            id={`${listId}-${i}`}
            role="option"
            aria-selected={i === active}
            tabIndex={-1}
            className={`ng-search-item${i === active ? " ng-active" : ""}${hit.strong ? "" : " ng-weak"}`}
            data-testid={`search-item-${hit.schema.type}`}
            data-strong={hit.strong}
            onMouseEnter={() => setPicked(i)}
            onClick={() => choose(i)}
            title={hit.schema.description}
          >
            <span className="ng-search-name">{hit.schema.display_name || hit.schema.type}</span>
            <span className="ng-muted ng-search-meta">
              {hit.port ? `${hit.port} · ` : ""}
              {hit.schema.category}
            </span>
          </button>
        ))}
      </div>
    </div>
  );
}

/** `picked` / `active` of the search popup's "Add a note here" (before the hits: index 0 is the first hit). */
const NOTE_ITEM = -2;

interface MenuItem {
  key: string;
  label: string;
  run: () => void;
  disabled?: boolean;
}

function selectedRects(app: EditorApp, ids: string[]): Record<string, Rect> {
  const rects = app.canvas.rects();
  return idMap(ids.filter((id) => rects[id]).map((id): [string, Rect] => [id, rects[id]]));
}

/**
 * Inside an open subgraph, the node menu's items that expose the right-clicked input or output of inner node `id` as
 * the subgraph's (docs/graph-format.md "Subgraphs": `inputs` with `default` from the widget's value, `outputs`), or
 * stop exposing it; on the title: stop exposing its exposed ports, expose its outputs. Each is one undo step; the
 * links to a port outside go at Back, named in a toast now.
 */
function exposeItems(app: EditorApp, id: string): MenuItem[] {
  const open = app.editor.state.path.at(-1);
  const node = app.editor.doc.nodes[id];
  if (!open || !node) return [];
  const name = open.name;
  const pointed = app.canvas.menuPort?.node === id ? app.canvas.menuPort : null;
  const schema = app.schemasFor()[node.type];
  const declared = exposedPorts(app.editor.doc, name);
  const exposedAs = (input: string) => {
    const value = node.inputs[input];
    return value && typeof value === "object" && !Array.isArray(value) && (value as { node?: unknown }).node === SUBGRAPH_INPUTS ? String((value as { output: unknown }).output) : null;
  };
  const outputPort = (output: string) => Object.entries(declared.outputs).find(([, t]) => t.node === id && t.output === output)?.[0] ?? null;
  const stop = (kind: "input" | "output", port: string): MenuItem => ({
    key: `unexpose-${kind}-${port}`,
    label: `Stop exposing subgraph ${kind} ${port}`,
    run: () => {
      const links = linksToPort(open.outer, name, kind, port);
      app.editor.edit((doc) => (kind === "input" ? stopExposingInput(doc, name, port) : stopExposingOutput(doc, name, port)));
      app.toast(`Subgraph ${kind} ${port} is no longer exposed${links.length ? `; its links outside go: ${links.join(", ")}` : ""}`);
    },
  });
  const exposeIn = (input: string): MenuItem => ({
    key: `expose-input-${input}`,
    label: `Expose ${input} as subgraph input`,
    run: () => {
      let port = "";
      app.editor.edit((doc) => {
        const made = exposeInput(doc, name, id, input, input in node.inputs ? node.inputs[input] : schema?.inputs[input]?.default);
        port = made.port;
        return made.doc;
      });
      app.toast(`${input} is now subgraph input ${port}: the subgraph node shows it (Back)`);
    },
  });
  const exposeOut = (output: string): MenuItem => ({
    key: `expose-output-${output}`,
    label: `Expose ${output} as subgraph output`,
    run: () => app.editor.edit((doc) => exposeOutput(doc, name, id, output).doc),
  });
  if (pointed && "input" in pointed) {
    const port = exposedAs(pointed.input);
    return [port !== null ? stop("input", port) : exposeIn(pointed.input)];
  }
  if (pointed && "output" in pointed) {
    const port = outputPort(pointed.output);
    return [port !== null ? stop("output", port) : exposeOut(pointed.output)];
  }
  const items: MenuItem[] = [];
  for (const input of Object.keys(node.inputs)) {
    const port = exposedAs(input);
    if (port !== null) items.push(stop("input", port));
  }
  for (const output of schema?.outputs ?? []) {
    const port = outputPort(output.name);
    items.push(port !== null ? stop("output", port) : exposeOut(output.name));
  }
  return items;
}

/** On a subgraph node: stop exposing each of its definition's ports (the links to it here go in the same step). */
function outerStopItems(app: EditorApp, id: string, name: string): MenuItem[] {
  if (!app.editor.doc.subgraphs?.[name]) return [];
  const declared = exposedPorts(app.editor.doc, name);
  const stop = (kind: "input" | "output", port: string): MenuItem => ({
    key: `unexpose-${kind}-${port}`,
    label: `Stop exposing ${kind} ${port}`,
    run: () => {
      const links = linksToPort(app.editor.doc, name, kind, port);
      app.editor.edit((doc) => stopExposing(doc, name, kind, port));
      app.toast(`Subgraph ${kind} ${port} of ${id} is no longer exposed${links.length ? `; links removed: ${links.join(", ")}` : ""}`);
    },
  });
  return [...declared.inputs.map((port) => stop("input", port)), ...Object.keys(declared.outputs).map((port) => stop("output", port))];
}

/** The items of the context menu for `target` (the node menu acts on the whole selection). */
export function menuItems(app: EditorApp, target: MenuTarget, at: Position, screen: Position): MenuItem[] {
  const selection = Object.keys(app.editor.state.selectedNodes).filter((id) => id in app.editor.doc.nodes);
  switch (target.kind) {
    case "canvas":
      return [
        { key: "add-node", label: "Add node…", run: () => app.ui.set((s) => ({ ...s, search: { screen, at } })) },
        { key: "add-note", label: "Add note", run: () => addNoteAt(app, at) },
        { key: "paste", label: "Paste (Ctrl+V)", run: () => app.paste() },
        { key: "add-group", label: selection.length ? "Group selected nodes (Ctrl+G)" : "Add group here", run: () => {
          if (selection.length) selectionActions.group(app, selection);
          else app.layoutEdit((doc) => addGroup(doc, [{ x: at[0] + 30, y: at[1] + 64, width: 340, height: 200 }]).doc);
        } },
        { key: "auto-layout", label: "Auto-layout (Alt+L)", run: () => selectionActions.autoLayout(app) },
        { key: "select-all", label: "Select all (Ctrl+A)", run: () => app.editor.select(idMap(Object.keys(app.editor.doc.nodes).map((id) => [id, true as const]))) },
        { key: "fit-view", label: "Fit the graph in view", run: () => app.canvas.fit() },
      ];
    case "node": {
      const ids = selection.includes(target.id) ? selection : [target.id];
      const node = app.editor.doc.nodes[target.id];
      const inner = node ? subgraphName(node.type) : null;
      const many = ids.length > 1;
      const align = (edge: AlignEdge) => () => app.layoutEdit((doc) => moveNodes(doc, alignNodes(selectedRects(app, ids), edge)));
      const items: MenuItem[] = [
        { key: "rename", label: "Rename", run: () => app.ui.set((s) => ({ ...s, renaming: `node:${target.id}` })) },
        { key: "connect", label: "Connect an output…", run: () => app.ui.set((s) => ({ ...s, menu: { screen, at, target: { kind: "connect", id: target.id } } })) },
        { key: "bypass", label: `${node?.mode === "bypass" ? "Un-bypass" : "Bypass"} (Ctrl+B)`, run: () => selectionActions.toggleMode(app, "bypass", ids) },
        { key: "mute", label: `${node?.mode === "mute" ? "Unmute" : "Mute"} (Ctrl+M)`, run: () => selectionActions.toggleMode(app, "mute", ids) },
        { key: "copy", label: "Copy (Ctrl+C)", run: () => app.copySelection() },
        { key: "duplicate", label: "Duplicate", run: () => {
          if (app.copySelection()) {
            app.canvas.pointer = null;
            // the focus goes onto the copy (as onto a node added from the menu), not back onto the original
            const [copy] = app.paste();
            if (copy !== undefined) focusNodeWhenShown(copy);
          }
        } },
        { key: "group", label: "Group (Ctrl+G)", run: () => selectionActions.group(app, ids) },
        { key: "collapse", label: "Collapse into subgraph (Ctrl+Shift+E)", run: () => selectionActions.collapse(app, ids) },
        { key: "minimise", label: `${node && isMinimised(node) ? "Expand" : "Minimise"} (Alt+C)`, run: () => app.editor.edit((doc) => toggleMinimised(doc, ids)) },
        { key: "color", label: "Colour…", run: () => app.ui.set((s) => ({ ...s, menu: { screen, at, target: { kind: "color", ids } } })) },
      ];
      // "Edit mask…" for each image upload input naming a file (one item when there is one: ComfyUI's "Open in MaskEditor")
      const schema = node ? app.schemasFor()[node.type] : undefined;
      const maskable = node && schema && !many ? maskEditableInputs(schema.inputs, node.inputs) : [];
      for (const { input, file } of maskable) {
        items.push({
          key: maskable.length > 1 ? `edit-mask-${input}` : "edit-mask",
          label: maskable.length > 1 ? `Edit mask of ${input}…` : "Edit mask…",
          run: () => openMaskEditor(app.ui, target.id, input, file),
        });
      }
      if (inner !== null && app.editor.doc.subgraphs?.[inner]) items.push({ key: "open-subgraph", label: "Open subgraph", run: () => app.openSubgraph(inner, target.id) });
      if (!many) items.push(...exposeItems(app, target.id), ...(inner !== null ? outerStopItems(app, target.id, inner) : []));
      if (node && nodeSize(node)) items.push({ key: "reset-size", label: "Reset size", run: () => app.layoutEdit((doc) => setNodeSize(doc, target.id, null)) });
      if (many) {
        items.push(
          { key: "align-left", label: "Align left edges", run: align("left") },
          { key: "align-top", label: "Align top edges", run: align("top") },
          { key: "align-center-x", label: "Align centres (vertical line)", run: align("center-x") },
          { key: "distribute-x", label: "Distribute horizontally", disabled: ids.length < 3, run: () => app.layoutEdit((doc) => moveNodes(doc, distributeNodes(selectedRects(app, ids), "x"))) },
          { key: "distribute-y", label: "Distribute vertically", disabled: ids.length < 3, run: () => app.layoutEdit((doc) => moveNodes(doc, distributeNodes(selectedRects(app, ids), "y"))) },
        );
      }
      items.push({ key: "delete", label: "Delete (Del)", run: () => {
        app.editor.select(idMap(ids.map((id) => [id, true as const])));
        selectionActions.delete(app);
      } });
      return items;
    }
    case "wire":
      return [
        { key: "add-reroute", label: "Add reroute here", run: () => app.layoutEdit((doc) => addReroute(doc, { node: target.target, input: target.input }, at).doc) },
        { key: "delete-wire", label: "Delete wire", run: () => app.editor.edit((doc) => pruneAfterDisconnect(doc, target.target, target.input)) },
      ];
    case "group": {
      const group = groupsOf(app.editor.doc).find((g) => g.id === target.id);
      if (!group) return [];
      const next = GROUP_COLORS[(GROUP_COLORS.indexOf(group.color) + 1) % GROUP_COLORS.length];
      return [
        { key: "rename-group", label: "Rename group", run: () => app.ui.set((s) => ({ ...s, renaming: `group:${target.id}` })) },
        { key: "group-color", label: "Next colour", run: () => app.editor.edit((doc) => updateGroup(doc, target.id, { color: next })) },
        { key: "select-group", label: "Select its nodes", run: () => app.editor.select(idMap(groupMembers(group, app.canvas.rects()).map((id) => [id, true as const]))) },
        { key: "remove-group", label: "Remove group (keep nodes)", run: () => app.editor.edit((doc) => removeGroup(doc, target.id)) },
      ];
    }
    case "reroute":
      return [{ key: "remove-reroute", label: "Remove reroute", run: () => app.editor.edit((doc) => removeReroutes(doc, [target.id])) }];
    case "note":
      return [
        { key: "copy-note", label: "Copy (Ctrl+C)", disabled: !copyNotes(app.editor.doc, [target.id]).length, run: () => {
          if (!app.editor.state.selectedNodes[NOTE_PREFIX + target.id]) app.editor.select({ [NOTE_PREFIX + target.id]: true });
          app.copySelection();
        } },
        { key: "delete-note", label: "Delete note", run: () => app.editor.edit((doc) => removeNotes(doc, [target.id])) },
      ];
    case "color": {
      // ComfyUI's colours (so a colour means the same there), the current one marked; "No colour": the theme's
      const first = app.editor.doc.nodes[target.ids[0]];
      const current = first ? nodeColors(first) : null;
      return [
        ...NODE_COLORS.map((choice) => ({
          key: `color-${choice.name.replace(" ", "-")}`,
          label: `${current?.bgcolor === choice.bgcolor ? "✓ " : ""}${choice.name[0].toUpperCase()}${choice.name.slice(1)}`,
          run: () => app.editor.edit((doc) => setNodeColor(doc, target.ids, choice)),
        })),
        { key: "color-none", label: "No colour", run: () => app.editor.edit((doc) => setNodeColor(doc, target.ids, null)) },
      ];
    }
    case "connect": {
      const choices = connectChoices(app.editor.doc, app.schemasFor(), app.session.get().schemas.types, target.id);
      if (!choices.length) return [{ key: "connect-none", label: "No link fits this node", disabled: true, run: () => undefined }];
      return choices.map((c, i) => ({
        key: `connect-${i}`,
        label: choiceLabel(c),
        run: () => {
          app.editor.edit((doc) => pruneReroutes(connect(doc, c.source, c.output, c.target, c.input)));
          app.dispatch({ type: "clear_input_error", nodeId: c.target, input: c.input });
          app.toast(`Connected ${c.source}.${c.output} → ${c.target}.${c.input}`);
        },
      }));
    }
  }
}

/** Remove the wire into `target.input` and its reroutes. */
function pruneAfterDisconnect(doc: import("../graph/document").EditorDocument, target: string, input: string) {
  const gone = docEdges(doc).some((e) => e.target === target && e.input === input);
  if (!gone) return doc;
  const next = disconnect(doc, target, input);
  const ids = (Array.isArray(doc.uiRest?.reroutes) ? (doc.uiRest!.reroutes as { id?: string; to?: { node?: string; input?: string } }[]) : [])
    .filter((r) => r?.to?.node === target && r?.to?.input === input)
    .map((r) => String(r.id));
  return removeReroutes(next, ids);
}

/** ↑/↓, Home/End in an open menu: the focus moves between its enabled items (wrapping). */
function menuKey(event: React.KeyboardEvent<HTMLElement>) {
  const items = [...event.currentTarget.querySelectorAll<HTMLElement>("[role=menuitem]:not(:disabled)")];
  if (!items.length) return;
  const at = items.indexOf(document.activeElement as HTMLElement);
  let next: number;
  if (event.key === "ArrowDown") next = (at + 1) % items.length;
  else if (event.key === "ArrowUp") next = (at - 1 + items.length) % items.length;
  else if (event.key === "Home") next = 0;
  else if (event.key === "End") next = items.length - 1;
  else if (event.key === "ArrowLeft" || event.key === "ArrowRight") next = Math.max(0, at);
  else return;
  event.preventDefault();
  event.stopPropagation(); // never the node behind the menu
  items[next].focus();
}

export function ContextMenu() {
  const app = useApp();
  const menu = useStore(app.ui, (s) => s.menu);
  const box = useRef<HTMLDivElement>(null);
  useReturnFocus(menu !== null);
  // Opened (or turned into another menu, "Connect an output…"): the focus goes onto its first item.
  useEffect(() => {
    if (menu) box.current?.querySelector<HTMLElement>("[role=menuitem]:not(:disabled)")?.focus({ preventScroll: true });
  }, [menu]);
  useEffect(() => {
    if (!menu) return;
    const close = (e: MouseEvent) => {
      if (!(e.target as HTMLElement).closest?.(".ng-context-menu")) app.ui.set((s) => ({ ...s, menu: null }));
    };
    window.addEventListener("mousedown", close);
    return () => window.removeEventListener("mousedown", close);
  }, [app, menu]);
  if (!menu) return null;
  const items = menuItems(app, menu.target, menu.at, menu.screen);
  return (
    <div
      className="ng-context-menu"
      data-testid="context-menu"
      data-target={menu.target.kind}
      ref={box}
      role="menu"
      aria-label={menuLabel(menu.target)}
      onKeyDown={menuKey}
      style={{ left: Math.min(menu.screen[0], window.innerWidth - 260), top: Math.max(8, Math.min(menu.screen[1], window.innerHeight - 36 * items.length - 10)) }}
      onContextMenu={(e) => e.preventDefault()}
    >
      {items.map((item) => (
        <button
          type="button"
          key={item.key}
          data-testid={`menu-${item.key}`}
          role="menuitem"
          tabIndex={-1}
          disabled={item.disabled}
          onClick={() => {
            app.ui.set((s) => ({ ...s, menu: null }));
            item.run();
          }}
        >
          {item.label}
        </button>
      ))}
    </div>
  );
}

/**
 * Focus node `id` once the canvas shows it: React Flow draws a new node hidden until it is measured, and a
 * hidden element takes no focus, so this tries each frame (for half a second at most).
 */
function focusNodeWhenShown(id: string, frames = 30): void {
  if (typeof requestAnimationFrame === "undefined") return; // no page to focus on (the menu's actions run in tests)
  requestAnimationFrame(() => {
    const element = [...document.querySelectorAll<HTMLElement>(".react-flow__node")].find((e) => e.dataset.id === id);
    element?.focus();
    if (document.activeElement !== element && frames > 0) focusNodeWhenShown(id, frames - 1);
  });
}

/** What a menu is for, as its accessible name. */
function menuLabel(target: MenuTarget): string {
  switch (target.kind) {
    case "canvas": return "Canvas menu";
    case "node": return `Menu of node ${target.id}`;
    case "wire": return `Menu of the wire into ${target.target}.${target.input}`;
    case "group": return "Group menu";
    case "reroute": return "Reroute menu";
    case "note": return "Note menu";
    case "connect": return `Links node ${target.id} can make`;
    case "color": return target.ids.length === 1 ? `Colours for node ${target.ids[0]}` : `Colours for ${target.ids.length} nodes`;
  }
}

export function HelpPanel() {
  const app = useApp();
  const open = useStore(app.ui, (s) => s.help);
  const body = useRef<HTMLDivElement>(null);
  useReturnFocus(open);
  // The focus moves into it (its scrolling table: PageDown / ↓ scroll it), as into a menu.
  useEffect(() => {
    if (open) body.current?.focus({ preventScroll: true });
  }, [open]);
  if (!open) return null;
  const close = () => app.ui.set((s) => ({ ...s, help: false }));
  return (
    <div
      className="ng-help"
      data-testid="help-panel"
      role="dialog"
      aria-labelledby="ng-help-title"
      onKeyDown={(e) => {
        if (e.key !== "Escape") return;
        e.stopPropagation();
        close();
      }}
    >
      <h2>
        <span id="ng-help-title">Keyboard and mouse</span>
        <button type="button" className="ng-icon" onClick={close} title="close (Escape)" aria-label="Close the keyboard help">
          ×
        </button>
      </h2>
      <div className="ng-help-body" ref={body} tabIndex={0} role="region" aria-label="Shortcuts (scrolls with ↑/↓, PageUp/PageDown)" data-testid="help-body">
        <table>
          <tbody>
            {SHORTCUTS.map((s) => (
              <tr key={s.keys}>
                <td>
                  <kbd>{s.keys}</kbd>
                </td>
                <td>{s.action}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

export function SubgraphBar() {
  const app = useApp();
  const path = useStore(app.editor.store, (s) => s.path);
  if (!path.length) return null;
  return (
    <div className="ng-subgraph-bar" data-testid="subgraph-bar">
      <button type="button" data-testid="subgraph-back" onClick={() => app.editor.closeSubgraph()} title="back to the enclosing graph (Escape)">
        ← Back
      </button>
      <span>
        graph {path.map((p) => ` › ${p.name}`).join("")}
      </span>
      <span className="ng-muted">editing a subgraph: inputs read from $inputs; Run runs the whole graph</span>
    </div>
  );
}
