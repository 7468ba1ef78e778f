import { describe, expect, it } from "vitest";
import { checkLink, createsCycle, incompatibilityReason, portsCompatible } from "../src/schema/compatibility";
import { realSchemas } from "./helpers";

const { types } = realSchemas();

describe("port compatibility", () => {
  it("allows equal types", () => {
    expect(portsCompatible("LATENT", "LATENT", types)).toBe(true);
  });

  it("allows what the destination accepts (INT feeds FLOAT) but not the reverse", () => {
    expect(portsCompatible("INT", "FLOAT", types)).toBe(true);
    expect(portsCompatible("FLOAT", "INT", types)).toBe(false);
  });

  it("allows * at either end", () => {
    expect(portsCompatible("*", "MODEL", types)).toBe(true);
    expect(portsCompatible("IMAGE", "*", types)).toBe(true);
  });

  it("explains a refusal naming both types", () => {
    expect(incompatibilityReason("LATENT", "INT", types)).toBe("LATENT output cannot feed an INT input (it takes INT)");
    expect(incompatibilityReason("BOOLEAN", "FLOAT", types)).toBe("BOOLEAN output cannot feed a FLOAT input (it takes FLOAT or INT)");
    expect(incompatibilityReason("INT", "FLOAT", types)).toBeNull();
  });

  it("refuses unknown types unless equal", () => {
    expect(portsCompatible("FOO", "BAR", {})).toBe(false);
    expect(portsCompatible("FOO", "FOO", {})).toBe(true);
  });
});

describe("checkLink", () => {
  const upstream: Record<string, string[]> = { b: ["a"], c: ["b"] };
  const upstreamOf = (id: string) => upstream[id] ?? [];

  it("refuses a cycle", () => {
    expect(createsCycle("c", "a", upstreamOf)).toBe(true);
    expect(createsCycle("a", "c", upstreamOf)).toBe(false);
    const check = checkLink({ sourceNode: "c", sourcePort: "INT", targetNode: "a", targetPort: "INT", types, upstreamOf });
    expect(check).toEqual({ ok: false, reason: expect.stringContaining("cycle") });
  });

  it("refuses a self link and unknown ports, accepts a good link", () => {
    expect(checkLink({ sourceNode: "a", sourcePort: "INT", targetNode: "a", targetPort: "INT", types, upstreamOf }).ok).toBe(false);
    expect(checkLink({ sourceNode: "a", sourcePort: undefined, targetNode: "b", targetPort: "INT", types, upstreamOf }).ok).toBe(false);
    expect(checkLink({ sourceNode: "a", sourcePort: "INT", targetNode: "c", targetPort: "FLOAT", types, upstreamOf })).toEqual({ ok: true });
  });

  it("gives the type reason for incompatible ports", () => {
    const check = checkLink({ sourceNode: "a", sourcePort: "LATENT", targetNode: "b", targetPort: "INT", types, upstreamOf });
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(/^LATENT output cannot feed an INT input/);
  });
});
