//! The clinic (owners): its facts, the export of everything (CSV or JSON),
//! what nurses and receptionists may do, support access requests to
//! approve, and deletion with its purge date and a cancel button.
//! Downloads are ordinary same-origin links, so the browser streams them to
//! disk and the session cookie goes with them.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{self, ApiError, List};
use crate::time;
use crate::ui::{state, ErrorLine, Field};

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct ClinicFacts {
    id: String,
    name: String,
    region: String,
    created_at: String,
    #[serde(default)]
    deletion: Option<Deletion>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct Deletion {
    purge_after: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct RoleSetting {
    role: String,
    adjustable: bool,
    permissions: Vec<String>,
    ceiling: Vec<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct AccessRequest {
    id: String,
    requested_by: String,
    ticket: String,
    reason: String,
    status: String,
    created_at: String,
    #[serde(default)]
    session_expires_at: Option<String>,
}

#[component]
pub fn Clinic() -> impl IntoView {
    let app = state();
    let facts = RwSignal::new(None::<ClinicFacts>);
    let error = RwSignal::new(None::<ApiError>);
    let reload = RwSignal::new(0u32);
    Effect::new(move |_| {
        reload.get();
        spawn_local(async move {
            match api::get::<ClinicFacts>("/api/v1/clinic").await {
                Ok(f) => facts.set(Some(f)),
                Err(e) => app.fail(&e, error),
            }
        });
    });
    let deleting = move || facts.get().and_then(|f| f.deletion);
    view! {
        <section aria-labelledby="clinic-title">
            <h1 id="clinic-title">{move || facts.get().map(|f| f.name).unwrap_or_default()}</h1>
            <ErrorLine error=error />
            {move || facts.get().map(|f| view! {
                <dl class="details">
                    <dt>"Clinic id"</dt><dd><code>{f.id}</code></dd>
                    <dt>"Region"</dt><dd>{f.region}</dd>
                    <dt>"Since"</dt><dd>{time::local_datetime(&f.created_at)}</dd>
                </dl>
            })}
            <h2>"Export"</h2>
            <p>"Every record of the clinic, decrypted. The export itself is recorded in the audit trail."</p>
            <p>
                <a class="button" id="export-csv" href="/api/v1/export?format=csv" download>"Download CSV (zip)"</a>
                " "
                <a class="button" id="export-json" href="/api/v1/export?format=json" download>"Download JSON"</a>
            </p>
            {move || deleting().is_none().then(|| view! {
                <Roles />
                <SupportAccess />
            })}
            <DeleteClinic deletion=Signal::derive(deleting) changed=move || reload.update(|n| *n += 1) />
        </section>
    }
}

/// What nurses and receptionists may do, within the fixed ceilings.
#[component]
fn Roles() -> impl IntoView {
    let app = state();
    let roles = RwSignal::new(Vec::<RoleSetting>::new());
    let error = RwSignal::new(None::<ApiError>);
    let saved = RwSignal::new(false);
    let load = move || {
        spawn_local(async move {
            match api::get::<List<RoleSetting>>("/api/v1/clinic/roles").await {
                Ok(l) => roles.set(l.items),
                Err(e) => app.fail(&e, error),
            }
        });
    };
    load();
    let put = move |body: Value| {
        saved.set(false);
        spawn_local(async move {
            match api::json::<Value>("PUT", "/api/v1/clinic/roles", Some(body)).await {
                Ok(_) => {
                    error.set(None);
                    saved.set(true);
                    load();
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    let toggle = move |role: String, permission: String, on: bool| {
        let Some(r) = roles.get_untracked().into_iter().find(|r| r.role == role) else {
            return;
        };
        let mut now: Vec<String> = r
            .permissions
            .into_iter()
            .filter(|p| *p != permission)
            .collect();
        if on {
            now.push(permission);
        }
        put(json!({ role: now }));
    };
    view! {
        <h2>"What each role may do"</h2>
        <p class="hint">"Owners and doctors are fixed. Nurses and receptionists can be narrowed, or widened up to a ceiling; a change applies on their next request."</p>
        <ErrorLine error=error />
        {move || saved.get().then(|| view! { <p class="notice" role="status">"Saved."</p> })}
        {move || roles.get().into_iter().filter(|r| r.adjustable).map(|r| {
            let role = r.role.clone();
            let reset = role.clone();
            view! {
                <fieldset class="card">
                    <legend>{r.role.clone()}</legend>
                    {r.ceiling.iter().map(|p| {
                        let (role, permission) = (role.clone(), p.clone());
                        let checked = r.permissions.contains(p);
                        view! {
                            <label class="region">
                                <input type="checkbox" prop:checked=checked
                                    on:change=move |ev| toggle(role.clone(), permission.clone(), event_target_checked(&ev)) />
                                <span>{p.replace('_', " ")}</span>
                            </label>
                        }
                    }).collect_view()}
                    <button type="button" on:click=move |_| put(json!({ reset.clone(): null }))>"Restore the defaults"</button>
                </fieldset>
            }
        }).collect_view()}
    }
}

/// Platform support asks under a ticket; the owner approves; the session
/// that follows lasts 30 minutes and shows a banner to everyone in it.
#[component]
fn SupportAccess() -> impl IntoView {
    let app = state();
    let requests = RwSignal::new(Vec::<AccessRequest>::new());
    let error = RwSignal::new(None::<ApiError>);
    let load = move || {
        spawn_local(async move {
            match api::get::<List<AccessRequest>>("/api/v1/access-requests").await {
                Ok(l) => requests.set(l.items),
                Err(e) => app.fail(&e, error),
            }
        });
    };
    load();
    let approve = move |id: String| {
        spawn_local(async move {
            match api::json::<Value>(
                "POST",
                &format!("/api/v1/access-requests/{id}/approve"),
                None,
            )
            .await
            {
                Ok(_) => {
                    error.set(None);
                    load()
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    view! {
        <h2>"Support access"</h2>
        <ErrorLine error=error />
        {move || if requests.get().is_empty() {
            view! { <p class="muted">"No requests from Amanah support."</p> }.into_any()
        } else {
            view! {
                <table class="list" aria-label="Support access requests">
                    <thead><tr><th>"Asked"</th><th>"Ticket"</th><th>"Reason"</th><th>"By"</th><th>"Status"</th><th></th></tr></thead>
                    <tbody>
                        {requests.get().into_iter().map(|r| {
                            let id = r.id.clone();
                            let status = match &r.session_expires_at {
                                Some(t) => format!("{} (session until {})", r.status, time::local_hm(t)),
                                None => r.status.clone(),
                            };
                            view! {
                                <tr>
                                    <td>{time::local_datetime(&r.created_at)}</td>
                                    <td>{r.ticket.clone()}</td>
                                    <td>{r.reason.clone()}</td>
                                    <td>{r.requested_by.clone()}</td>
                                    <td>{status}</td>
                                    <td>{(r.status == "pending").then(|| view! {
                                        <button on:click=move |_| approve(id.clone())>"Approve"</button>
                                    })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            }.into_any()
        }}
    }
}

/// Deletion: 30 days' grace with a cancel button, then everything is
/// erased for good (the clinic's key first).
#[component]
fn DeleteClinic(
    deletion: Signal<Option<Deletion>>,
    changed: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let app = state();
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let cancel = {
        let changed = changed.clone();
        move |_| {
            let changed = changed.clone();
            spawn_local(async move {
                match api::call("DELETE", "/api/v1/clinic/deletion", None).await {
                    Ok(()) => {
                        error.set(None);
                        changed()
                    }
                    Err(e) => app.fail(&e, error),
                }
            });
        }
    };
    let schedule = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let changed = changed.clone();
        let body = json!({"password": password.get_untracked()});
        spawn_local(async move {
            match api::call("POST", "/api/v1/clinic/deletion", Some(body)).await {
                Ok(()) => {
                    password.set(String::new());
                    error.set(None);
                    changed()
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    view! {
        <h2>"Delete the clinic"</h2>
        {move || match deletion.get() {
            Some(d) => view! {
                <div class="card danger-zone">
                    <p class="error" role="alert" id="deletion-status">
                        "This clinic is scheduled for deletion. Everything in it is erased for good after "
                        {time::local_datetime(&d.purge_after)} ". Until then, only this page, the export and the audit trail open."
                    </p>
                    <ErrorLine error=error />
                    <button on:click=cancel.clone()>"Cancel the deletion"</button>
                </div>
            }.into_any(),
            None => view! {
                <form class="card danger-zone" on:submit=schedule.clone()>
                    <p>"Every patient, record and account of the clinic is erased 30 days after you confirm; you can cancel until then. Export first."</p>
                    <Field label="Your password, to confirm" value=password kind="password" field="password" error=error required=true autocomplete="current-password" id="delete-password" />
                    <ErrorLine error=error />
                    <button type="submit" class="danger">"Delete the clinic"</button>
                </form>
            }.into_any(),
        }}
    }
}
