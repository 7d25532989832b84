// Loads the app's WebAssembly. A file of its own, because the page's CSP
// allows no inline script.
import init from "/amanah.js";
init({ module_or_path: "/amanah_bg.wasm" });
