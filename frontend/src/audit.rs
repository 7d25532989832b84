//! The clinic's audit trail (owners): every access and change, and whether
//! the hash chain verifies from the first entry.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiError, AuditEntry, List, Verification};
use crate::time;
use crate::ui::{state, ErrorLine};

/// Audit entries as a table, newest first as given.
#[component]
pub fn EntryTable(items: RwSignal<Vec<AuditEntry>>) -> impl IntoView {
    view! {
        <table class="list" aria-label="Audit entries">
            <thead><tr><th>"#"</th><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"What"</th><th>"Outcome"</th></tr></thead>
            <tbody>
                {move || items.get().into_iter().map(|e| {
                    let who = match (&e.role, &e.on_behalf_of) {
                        (Some(r), Some(o)) => format!("{} ({r}, for {o})", e.actor),
                        (Some(r), None) => format!("{} ({r})", e.actor),
                        _ => e.actor.clone(),
                    };
                    view! {
                        <tr>
                            <td>{e.seq}</td>
                            <td>{time::local_datetime(&e.at)}</td>
                            <td>{who}</td>
                            <td>{e.action.clone()}</td>
                            <td>{e.resource.clone().unwrap_or_default()}{e.reason.clone().map(|r| format!(" — {r}"))}</td>
                            <td class=format!("outcome {}", e.outcome)>{e.outcome.clone()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn Audit() -> impl IntoView {
    let app = state();
    let items = RwSignal::new(Vec::<AuditEntry>::new());
    let verification = RwSignal::new(None::<Verification>);
    let error = RwSignal::new(None::<ApiError>);
    spawn_local(async move {
        match api::get::<Verification>("/api/v1/audit/verify").await {
            Ok(v) => verification.set(Some(v)),
            Err(e) => app.fail(&e, error),
        }
        match api::get::<List<AuditEntry>>("/api/v1/audit?limit=200").await {
            Ok(mut l) => {
                l.items.reverse();
                items.set(l.items)
            }
            Err(e) => app.fail(&e, error),
        }
    });
    view! {
        <section aria-labelledby="audit-title">
            <h1 id="audit-title">"Audit trail"</h1>
            {move || verification.get().map(|v| if v.ok {
                view! { <p class="verified" role="status" id="chain-status">{format!("Chain verified: {} entries, unbroken from the first.", v.entries.unwrap_or(0))}</p> }.into_any()
            } else {
                view! { <p class="error" role="alert" id="chain-status">{format!("The chain is broken at entry {}: someone changed the record outside Amanah.", v.first_bad_seq.unwrap_or(0))}</p> }.into_any()
            })}
            <ErrorLine error=error />
            <EntryTable items=items />
        </section>
    }
}
