import { describe, expect, it } from "vitest";

import { filterTemplates, groupTemplates, isTrainingTemplate, templateMatch, TemplateMatch } from "../src/run/templates";
import type { Template } from "../src/run/sessionState";

const t = (id: string): Template => ({ id, source: id.split("/")[0], title: id }) as Template;

describe("templates menu", () => {
  it("recognises training graphs by folder or file name, not by a word elsewhere", () => {
    expect(isTrainingTemplate(t("project/train/train_tiny_world.json"))).toBe(true);
    expect(isTrainingTemplate(t("video/train_tiny_world_motion.json"))).toBe(true);
    expect(isTrainingTemplate(t("project/txt2img.json"))).toBe(false);
    expect(isTrainingTemplate(t("train/txt2img.json"))).toBe(false);          // a plugin named "train"
    expect(isTrainingTemplate(t("project/trainer_demo/x.json"))).toBe(false);
  });

  it("puts the demos first and keeps the server's order inside each group", () => {
    const groups = groupTemplates([t("project/train/a.json"), t("project/txt2img.json"),
                                   t("video/train_b.json"), t("video/txt2vid.json")]);
    expect(groups.map((g) => g.label)).toEqual(["Examples", "Training graphs (minutes to hours)"]);
    expect(groups[0].templates.map((x) => x.id)).toEqual(["project/txt2img.json", "video/txt2vid.json"]);
    expect(groups[1].templates.map((x) => x.id)).toEqual(["project/train/a.json", "video/train_b.json"]);
    expect(groupTemplates([t("project/txt2img.json")]).length).toBe(1);
  });

  it("filters by every word of the query in the title, description, source or path, any case", () => {
    const list = [
      { id: "project/txt2img.json", source: "project", title: "Text to image (tiny world)", description: "The default graph." },
      { id: "video/txt2vid.json", source: "video", title: "Text to video", description: "Frames from a prompt." },
      { id: "audio/txt2audio.json", source: "audio", title: "Text to audio", description: "A spectrogram, then a WAV." },
      { id: "project/train/train_tiny_world.json", source: "project", title: "Train tiny world", description: "Hours on a CPU." },
    ] as Template[];
    const ids = (query: string) => filterTemplates(list, query).map((x) => x.id);
    expect(ids("")).toEqual(list.map((x) => x.id));
    expect(ids("  ")).toEqual(list.map((x) => x.id));
    expect(ids("Text to VIDEO")).toEqual(["video/txt2vid.json"]);      // title, any case
    expect(ids("spectrogram")).toEqual(["audio/txt2audio.json"]);      // description
    expect(ids("audio")).toEqual(["audio/txt2audio.json"]);            // source
    expect(ids("tiny world")).toEqual(["project/txt2img.json", "project/train/train_tiny_world.json"]);
    expect(ids("train_tiny")).toEqual(["project/train/train_tiny_world.json"]); // path
    expect(ids("text nothing")).toEqual([]);
  });

  it("ranks an exact title first, then titles that start with the query or have its words, then the rest", () => {
    const list = [
      { id: "project/img2img.json", source: "project", title: "Image to image (tiny world)",
        description: "Text to image first, then the image to image pass (tiny world)." },
      { id: "project/txt2img_hires.json", source: "project", title: "Text to image (tiny world), hires fix" },
      { id: "project/txt2img.json", source: "project", title: "Text to image (tiny world)" },
      { id: "project/other.json", source: "project", title: "Textures" },
    ] as Template[];
    const ids = (query: string) => filterTemplates(list, query).map((x) => x.id);
    expect(ids("text to image (TINY world)")).toEqual(
      ["project/txt2img.json", "project/txt2img_hires.json", "project/img2img.json"]);
    expect(ids("image tiny")).toEqual(["project/img2img.json", "project/txt2img_hires.json", "project/txt2img.json"]);
    expect(templateMatch(list[2], "Text to image (tiny world)")).toBe(TemplateMatch.exactTitle);
    expect(templateMatch(list[1], "text to")).toBe(TemplateMatch.titlePrefix);
    expect(templateMatch(list[2], "tex ima")).toBe(TemplateMatch.titleWordPrefixes);
    expect(templateMatch(list[0], "first pass")).toBe(TemplateMatch.anywhere);
    expect(templateMatch(list[3], "txtrs")).toBe(TemplateMatch.fuzzyTitle);
    expect(templateMatch(list[3], "zebra")).toBeNull();
    expect(templateMatch(list[2], "tim")).toBeNull(); // letters spread over several title words: no match
  });
});
