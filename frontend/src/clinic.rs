//! The clinic (owners): export of everything, decrypted, as CSV or JSON.
//! The download is an ordinary same-origin link, so the browser streams it
//! to disk and the session cookie goes with it.

use leptos::prelude::*;

#[component]
pub fn Clinic() -> impl IntoView {
    let app = crate::ui::state();
    view! {
        <section aria-labelledby="clinic-title">
            <h1 id="clinic-title">{move || app.session.get().map(|s| s.clinic.name).unwrap_or_default()}</h1>
            <p>"Clinic id: " <code>{move || app.session.get().map(|s| s.clinic.id).unwrap_or_default()}</code></p>
            <h2>"Export"</h2>
            <p>"Every record of the clinic, decrypted. The export itself is recorded in the audit trail."</p>
            <p>
                <a class="button" id="export-csv" href="/api/v1/export?format=csv" download>"Download CSV (zip)"</a>
                " "
                <a class="button" id="export-json" href="/api/v1/export?format=json" download>"Download JSON"</a>
            </p>
        </section>
    }
}
