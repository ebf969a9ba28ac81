// The React test page of TestBrowserSDKInChromium (bundled with React by esbuild for the
// test only; the published module never bundles React).
import React from "react";
import { createRoot } from "react-dom/client";
import { useConnect } from "../src/react.ts";

function App() {
  const c = useConnect();
  const url = decodeURIComponent(location.hash.slice(1));
  return (
    <div>
      <button id="react-go" onClick={() => c.connect(url).catch(() => {})}>Connect</button>
      <p id="react-status">{c.status === "connected" ? "connected:" + c.result.connectionId : c.status === "error" ? "error:" + c.error.code : c.status}</p>
    </div>
  );
}

createRoot(document.getElementById("root")).render(<App />);
