// The Worker's entry module: instantiates the Rust (wasm-bindgen) module once
// per isolate and hands each request to its `fetch` export, and each cron
// trigger to its `scheduled` export (the purge).
// `cargo xtask` builds ./build/ (cargo → wasm-bindgen --target web → wasm-opt).
import { initSync, fetch as handle, scheduled as onSchedule } from "./build/amanah_edge.js";
import module from "./build/amanah_edge_bg.wasm";

initSync({ module });

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
  scheduled(event, env, ctx) {
    return onSchedule(event, env, ctx);
  },
};
