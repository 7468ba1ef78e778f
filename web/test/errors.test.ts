import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { socketUrl } from "../src/protocol/client";
import { errorText, errorTitle } from "../src/protocol/errors";
import { EditorApp } from "../src/state/app";
import { FakeSocket, connectedApp, stopApp, welcome } from "./helpers";

const NEW_CODES = ["quota_exceeded", "value_too_large", "unknown_model_folder", "invalid_token", "forbidden", "internal_error"];

describe("error codes as words", () => {
  it("gives every new server error code a readable title and keeps the server's message", () => {
    for (const code of NEW_CODES) {
      expect(errorTitle(code)).not.toContain("_");
      expect(errorText(code, "what went wrong and the fix")).toContain(": what went wrong and the fix");
    }
    expect(errorText("quota_exceeded", "user ann has 5 runs queued (max_queued 5); wait for one", "submit"))
      .toBe("Could not submit — Quota exceeded: user ann has 5 runs queued (max_queued 5); wait for one");
    expect(errorText("internal_error", "KeyError: 'x'")).toBe("Server error: KeyError: 'x' (the server log has the details)");
    expect(errorTitle("brand_new_code")).toBe("Brand new code");
  });
});

describe("error frames in the app", () => {
  let socket: FakeSocket;
  let app: EditorApp;

  beforeEach(() => {
    ({ app, socket } = connectedApp());
  });
  afterEach(() => stopApp(app));

  it("toasts each error frame that answers no request, once, with its message", () => {
    for (const code of NEW_CODES.filter((c) => c !== "invalid_token")) {
      socket.reply({ type: "error", code, message: `message of ${code}` });
    }
    expect(app.toasts.get().map((t) => `${t.kind} ${t.text}`)).toEqual([
      "error Quota exceeded: message of quota_exceeded",
      "error Too large: message of value_too_large",
      "error Unknown model folder: message of unknown_model_folder",
      "error Not allowed: message of forbidden",
      "error Server error: message of internal_error (the server log has the details)",
    ]);
    expect(app.session.get().banner).toBeNull(); // a toast, not a banner
  });

  it("toasts a refused request once, saying what was tried", async () => {
    const submitted = app.run();
    const submit = socket.messages().at(-1)!;
    socket.reply({ type: "error", code: "quota_exceeded", message: "you have 2 runs queued; the limit is 2", request_id: submit.request_id });
    await submitted;
    expect(app.toasts.get().map((t) => t.text)).toEqual(["Could not submit — Quota exceeded: you have 2 runs queued; the limit is 2"]);

    const cancelled = app.cancel("r9");
    const cancel = socket.messages().at(-1)!;
    socket.reply({ type: "error", code: "forbidden", message: "run r9 is not yours", request_id: cancel.request_id });
    await cancelled;
    expect(app.toasts.get().at(-1)?.text).toBe("Could not cancel — Not allowed: run r9 is not yours");
    expect(app.toasts.get()).toHaveLength(2);
  });

  it("keeps an invalid_token in the banner (the connection is not greeted) until the next welcome", () => {
    socket.reply({ type: "error", code: "invalid_token", message: "the hello's token is wrong; send the token this connection was opened with (or none)" });
    expect(app.session.get().banner?.text).toContain("invalid_token: the hello's token is wrong");
    expect(app.toasts.get().at(-1)?.text).toMatch(/^Invalid token: /);
    socket.reply(welcome());
    expect(app.session.get().banner).toBeNull();
  });
});

describe("the token", () => {
  afterEach(() => vi.useRealTimers());

  it("works from the cookie alone: no token in the page, the socket URL, hello or file URLs", () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" });
    app.start();
    socket.open();
    expect(socket.messages()[0]).toEqual({ type: "hello", protocol_version: 1, batch: true, compact_events: true });
    expect(app.fileUrl("output/a.png")).toBe("files/output/a.png");
    expect(socketUrl({ href: "http://127.0.0.1:8188/" })).toBe("ws://127.0.0.1:8188/ws");
    app.client.close();
  });

  it("still passes a token from the page URL on to hello and file URLs", () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/?token=a%2Bb" });
    app.start();
    socket.open();
    expect(socket.messages()[0]).toEqual({ type: "hello", protocol_version: 1, batch: true, compact_events: true, token: "a+b" });
    expect(app.fileUrl("output/a.png")).toBe("files/output/a.png?token=a%2Bb");
    app.client.close();
  });
});
