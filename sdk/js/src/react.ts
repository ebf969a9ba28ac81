// useConnect: connect() as a React hook (React is a peer dependency, never bundled).
import { useCallback, useRef, useState } from "react";

import { connect, ConnectError, type ConnectEvent, type ConnectOptions, type ConnectResult } from "./index.js";

export { ConnectError, redirectResult } from "./index.js";
export type { ConnectEvent, ConnectOptions, ConnectResult } from "./index.js";

/** The state of the hook's last flow. */
export type ConnectState =
  | { status: "idle" }
  | { status: "pending"; event?: ConnectEvent }
  | { status: "connected"; result: ConnectResult }
  | { status: "error"; error: ConnectError };

/**
 * useConnect returns a connect(connectUrl) to call from a click handler (a popup needs the
 * user's gesture) and the state of the last flow.
 */
export function useConnect(options: Omit<ConnectOptions, "window"> = {}): ConnectState & {
  connect: (connectUrl: string) => Promise<ConnectResult>;
} {
  const [state, setState] = useState<ConnectState>({ status: "idle" });
  const opts = useRef(options);
  opts.current = options;
  const run = useCallback(async (connectUrl: string) => {
    setState({ status: "pending" });
    try {
      const result = await connect(connectUrl, {
        ...opts.current,
        onEvent: (event) => {
          if (event.type === "opened" || event.type === "redirecting") setState({ status: "pending", event });
          opts.current.onEvent?.(event);
        },
      });
      setState({ status: "connected", result });
      return result;
    } catch (e) {
      const error = e instanceof ConnectError ? e : new ConnectError("unknown_error", String(e));
      setState({ status: "error", error });
      throw error;
    }
  }, []);
  return { ...state, connect: run };
}
