// @authpipe/connect: the browser side of authpipe-proxy's hosted connect page.
//
// connect(connectUrl) opens the connect link (a connect session's connect_url, created by
// the application's backend) in a popup with ?display=popup. The proxy's result page posts
// {type: "authpipe:connect", status, connectionId, error} to this window with this page's
// origin as the exact target (the session's return_url must be on this origin); connect()
// accepts a message only from the connect URL's origin and from the popup it opened. When
// the browser blocks the popup, connect() sends the whole page to the connect link instead
// (the flow then ends on the return_url with ?connection_id=…&status=…: read it with
// redirectResult()). No runtime dependencies.

/** What a finished connect flow resolves with. */
export interface ConnectResult {
  connectionId: string;
  status: "connected";
}

/** The events of a flow, in order: opened (or redirecting), then connected, error or closed. */
export type ConnectEvent =
  | { type: "opened" }
  | { type: "redirecting" }
  | { type: "connected"; connectionId: string }
  | { type: "error"; code: string }
  | { type: "closed" };

/** Options of connect(). */
export interface ConnectOptions {
  /** Called with each event of the flow. */
  onEvent?: (event: ConnectEvent) => void;
  /** When the popup is blocked, navigate this page to the connect link (default true); false rejects with popup_blocked. */
  redirect?: boolean;
  /** The popup's size (default 500 × 700). */
  width?: number;
  height?: number;
  /** The window to open the popup from (default: the global window). */
  window?: Window;
}

/** Why a flow did not connect: code is window_closed, popup_blocked, invalid_url, or the provider's error (access_denied, invalid_scope, …). */
export class ConnectError extends Error {
  readonly code: string;
  constructor(code: string, message?: string) {
    super(message ?? `authpipe connect: ${code}`);
    this.name = "ConnectError";
    this.code = code;
  }
}

/** The message type the proxy's result page posts. */
export const MESSAGE_TYPE = "authpipe:connect";

interface ResultMessage {
  type: string;
  status: string;
  connectionId?: string;
  error?: string;
}

function isResultMessage(v: unknown): v is ResultMessage {
  if (typeof v !== "object" || v === null) return false;
  const m = v as Record<string, unknown>;
  return m.type === MESSAGE_TYPE && typeof m.status === "string";
}

/** The connect URL's origin, or null when it is not an absolute http(s) URL. */
function originOf(raw: string): string | null {
  try {
    const u = new URL(raw);
    return u.protocol === "https:" || u.protocol === "http:" ? u.origin : null;
  } catch {
    return null;
  }
}

/** How long connect() waits for a late message after it sees the popup closed. */
const CLOSE_GRACE_MS = 300;
const POLL_MS = 250;

/**
 * Opens connectUrl in a popup and resolves with the connection when the end user has
 * connected; rejects with a ConnectError when the provider refused (its error code), the
 * end user closed the popup (window_closed) or the URL is not one (invalid_url). When the
 * popup is blocked the page navigates to the connect link and the promise never settles.
 */
export function connect(connectUrl: string, options: ConnectOptions = {}): Promise<ConnectResult> {
  const win = options.window ?? window;
  const emit = (e: ConnectEvent) => {
    try {
      options.onEvent?.(e);
    } catch {
      // a listener's exception does not change the flow
    }
  };
  const origin = originOf(connectUrl);
  if (origin === null) {
    return Promise.reject(new ConnectError("invalid_url", "authpipe connect: the connect URL must be an absolute http(s) URL"));
  }
  const popupUrl = new URL(connectUrl);
  popupUrl.searchParams.set("display", "popup");
  const w = options.width ?? 500;
  const h = options.height ?? 700;
  const left = Math.max(0, (win.screenX ?? 0) + ((win.outerWidth ?? w) - w) / 2);
  const top = Math.max(0, (win.screenY ?? 0) + ((win.outerHeight ?? h) - h) / 2);
  const popup = win.open(popupUrl.toString(), "authpipe-connect", `popup,width=${w},height=${h},left=${left},top=${top}`);
  if (!popup) {
    if (options.redirect === false) {
      return Promise.reject(new ConnectError("popup_blocked", "authpipe connect: the browser blocked the popup"));
    }
    emit({ type: "redirecting" });
    win.location.assign(connectUrl);
    return new Promise<ConnectResult>(() => {}); // the page is going away
  }
  emit({ type: "opened" });
  return new Promise<ConnectResult>((resolve, reject) => {
    let settled = false;
    let closeTimer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      settled = true;
      win.removeEventListener("message", onMessage);
      clearInterval(poll);
      if (closeTimer !== undefined) clearTimeout(closeTimer);
    };
    const onMessage = (e: MessageEvent) => {
      // Exact origin and the very window we opened: nothing else may answer for the flow.
      if (settled || e.origin !== origin || e.source !== popup || !isResultMessage(e.data)) return;
      finish();
      const m = e.data;
      if (m.status === "connected" && typeof m.connectionId === "string" && m.connectionId !== "") {
        emit({ type: "connected", connectionId: m.connectionId });
        resolve({ connectionId: m.connectionId, status: "connected" });
        return;
      }
      const code = typeof m.error === "string" && m.error !== "" ? m.error : "unknown_error";
      emit({ type: "error", code });
      reject(new ConnectError(code));
    };
    win.addEventListener("message", onMessage);
    const poll = setInterval(() => {
      if (settled || closeTimer !== undefined || !popup.closed) return;
      // The result page posts, then closes itself: give its message a moment to arrive.
      closeTimer = setTimeout(() => {
        if (settled) return;
        finish();
        emit({ type: "closed" });
        reject(new ConnectError("window_closed", "authpipe connect: the window was closed before the account was connected"));
      }, CLOSE_GRACE_MS);
    }, POLL_MS);
  });
}

/**
 * The outcome a redirect flow (a blocked popup) brought back to the return URL: a
 * ConnectResult, a ConnectError with the provider's code, or null when href carries none.
 */
export function redirectResult(href: string = window.location.href): ConnectResult | ConnectError | null {
  const q = new URL(href).searchParams;
  const status = q.get("status");
  if (status === "connected" && q.get("connection_id")) {
    return { connectionId: q.get("connection_id") as string, status: "connected" };
  }
  if (status === "error") {
    return new ConnectError(q.get("error") || "unknown_error");
  }
  return null;
}
