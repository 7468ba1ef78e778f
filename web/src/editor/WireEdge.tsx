/**
 * A wire: a bezier curve from an output to an input, through its reroute points
 * (`ui.reroutes`, graph/groups.ts) in order — one curve segment per leg.
 * Test id: wire-<target>-<input> (on the path's group).
 */
import { BaseEdge, getBezierPath, Position as Side, type Edge, type EdgeProps } from "@xyflow/react";
import { memo } from "react";
import type { Position } from "../graph/document";

export type WireFlowEdge = Edge<{ points: Position[]; target: string; input: string }, "wire">;

/** The SVG path through `points` from (sx, sy) to (tx, ty): bezier legs leaving right, arriving left. */
export function wirePath(sx: number, sy: number, tx: number, ty: number, points: Position[]): string {
  const stops: Position[] = [[sx, sy], ...points, [tx, ty]];
  const legs: string[] = [];
  for (let i = 0; i < stops.length - 1; i++) {
    const [path] = getBezierPath({
      sourceX: stops[i][0],
      sourceY: stops[i][1],
      sourcePosition: Side.Right,
      targetX: stops[i + 1][0],
      targetY: stops[i + 1][1],
      targetPosition: Side.Left,
    });
    legs.push(i === 0 ? path : path.replace(/^M[^C]*/, ""));
  }
  return legs.join(" ");
}

function WireView({ sourceX, sourceY, targetX, targetY, data, style, markerEnd, id }: EdgeProps<WireFlowEdge>) {
  const path = wirePath(sourceX, sourceY, targetX, targetY, data?.points ?? []);
  return (
    <g data-testid={data ? `wire-${data.target}-${data.input}` : undefined}>
      <BaseEdge id={id} path={path} style={style} markerEnd={markerEnd} interactionWidth={16} />
    </g>
  );
}

export const WireEdge = memo(WireView);
