//! Amanah in the browser: a Leptos client-side app over the HTTP API
//! (`shared/API.md`), served by every host from its own origin. It keeps no
//! secret and no patient data anywhere but in the page: the session is the
//! host's `HttpOnly` cookie, and nothing is stored in the browser except the
//! clinic id last used to log in (not personal data).
//!
//! Modules: `api` (fetch and the API's types), `time` (local time on
//! screen, UTC on the wire), `ui` (small shared widgets), and one module per
//! screen.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

mod api;
mod audit;
mod auth;
mod clinic;
mod patients;
mod schedule;
mod shell;
mod staff;
mod time;
mod ui;

#[wasm_bindgen(start)]
pub fn main() {
    mount_to_body(shell::App);
}
