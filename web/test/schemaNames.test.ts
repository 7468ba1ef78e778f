import { describe, expect, it } from "vitest";
import { checkConnection } from "../src/editor/GraphCanvas";
import { fromGraphFile, toGraphFile } from "../src/graph/document";
import { paletteGroups } from "../src/schema/palette";
import { namesOf, schemaSetFrom, uniqueSchemas, type NodeSchema } from "../src/schema/types";
import { seedInputsOf } from "../src/state/app";
import { realSchemas } from "./helpers";

const schemas = realSchemas();

const bare = (type: string, extra: Partial<NodeSchema> = {}): NodeSchema => ({
  type,
  category: "c",
  display_name: type,
  description: "",
  output_node: false,
  inputs: {},
  outputs: [],
  ...extra,
});

describe("node type names: canonical, qualified and aliases", () => {
  it("indexes every schema under its type, its qualified_type and each alias", () => {
    const unique = uniqueSchemas(schemas.nodes);
    expect(unique.length).toBeGreaterThan(50);
    for (const schema of unique) {
      expect(schema.qualified_type, `${schema.type} has a qualified_type`).toMatch(/^[\w-]+\.\w+$/);
      for (const name of namesOf(schema)) expect(schemas.nodes[name], name).toBe(schema);
    }
    expect(schemas.nodes["example.MixColors"]).toBe(schemas.nodes.MixColors);
    expect(schemas.nodes["primitives.Int"]).toBe(schemas.nodes.Int);
  });

  it("lists each schema once in the palette, and finds plugin nodes by their qualified name", () => {
    const listed = paletteGroups(schemas.nodes, "").flatMap((g) => g.nodes.map((n) => n.type));
    expect(listed.length).toBe(uniqueSchemas(schemas.nodes).length);
    expect(new Set(listed).size).toBe(listed.length);
    const example = paletteGroups(schemas.nodes, "example.mixcolors").flatMap((g) => g.nodes.map((n) => n.type));
    expect(example).toEqual(["MixColors"]);
  });

  it("never lets an alias hide another node's canonical name", () => {
    const set = schemaSetFrom("h", [
      bare("B", { qualified_type: "two.B", aliases: ["two.B", "A"] }),
      bare("A", { qualified_type: "one.A", aliases: ["one.A"] }),
    ], {});
    expect(set.nodes.A.qualified_type).toBe("one.A");
    expect(set.nodes["two.B"].type).toBe("B");
    expect(uniqueSchemas(set.nodes).map((n) => n.type).sort()).toEqual(["A", "B"]);
  });

  it("treats a schema from an older server (no qualified_type, no aliases) as before", () => {
    const set = schemaSetFrom("h", [bare("Int")], {});
    expect(Object.keys(set.nodes)).toEqual(["Int"]);
    expect(namesOf(set.nodes.Int)).toEqual(["Int"]);
  });

  it("opens a graph saved with qualified names as known nodes: ports check, seeds found, names kept on save", () => {
    const file = {
      format_version: 1,
      nodes: {
        red: { type: "example.HexColor", inputs: { hex: "#ff0000" } },
        blue: { type: "example.HexColor", inputs: { hex: "#0000ff" } },
        mix: { type: "example.MixColors", inputs: { a: { node: "red", output: "color" }, b: { node: "blue", output: "color" }, t: 0.5 } },
        save: { type: "example.SaveColors", inputs: { a: { node: "mix", output: "color" } } },
        n: { type: "primitives.Int", inputs: { value: 3 } },
        t2i: { type: "example.TextToImage", inputs: { seed: 1 } },
      },
    };
    const doc = fromGraphFile(file);
    for (const node of Object.values(doc.nodes)) expect(schemas.nodes[node.type], node.type).toBeDefined();
    expect(schemas.nodes[doc.nodes.save.type].output_node).toBe(true);
    // COLOR → COLOR is accepted; INT → COLOR is refused with the port types named
    expect(checkConnection(doc, schemas, { source: "red", sourceHandle: "out:color", target: "save", targetHandle: "in:b" }).ok).toBe(true);
    const refused = checkConnection(doc, schemas, { source: "n", sourceHandle: "out:value", target: "save", targetHandle: "in:b" });
    expect(refused.ok).toBe(false);
    expect(refused.ok ? "" : refused.reason).toContain("INT output cannot feed");
    expect(seedInputsOf(schemas.nodes[doc.nodes.t2i.type]).map((s) => s.name)).toEqual(["seed"]);
    expect(toGraphFile(doc)).toEqual({ ...file, format_version: 2 });
  });
});
