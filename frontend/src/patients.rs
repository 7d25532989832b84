//! Patients: search as you type, register, and one patient's record
//! (demographics for every role; conditions, prescriptions and notes for
//! clinical roles only; the access timeline for owners).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use crate::api::{self, ApiError, AuditEntry, List, Patient};
use crate::time;
use crate::ui::{state, ErrorLine, Field, View};

#[component]
pub fn Patients() -> impl IntoView {
    let app = state();
    let query = RwSignal::new(String::new());
    let found = RwSignal::new(Vec::<Patient>::new());
    let error = RwSignal::new(None::<ApiError>);
    let asked = RwSignal::new(0u32);
    Effect::new(move |_| {
        let q = query.get();
        let n = asked.get_untracked() + 1;
        asked.set(n);
        spawn_local(async move {
            let r = api::search_patients(&q).await;
            // Only the answer to the latest search is shown.
            if asked.get_untracked() != n {
                return;
            }
            match r {
                Ok(l) => {
                    error.set(None);
                    found.set(l.items)
                }
                Err(e) => app.fail(&e, error),
            }
        });
    });
    let adding = RwSignal::new(false);
    view! {
        <section aria-labelledby="patients-title">
            <h1 id="patients-title">"Patients"</h1>
            <div class="toolbar">
                <label for="patient-search">"Search by name, phone or national id"</label>
                <input id="patient-search" type="search" autocomplete="off"
                    bind:value=query placeholder="e.g. Rabia, 0300 1234567" />
                <button on:click=move |_| adding.update(|a| *a = !*a) aria-expanded=move || adding.get().to_string()>
                    "New patient"
                </button>
            </div>
            {move || adding.get().then(|| view! { <NewPatient done=move |id| { adding.set(false); app.view.set(View::Patient(id)); } /> })}
            <ErrorLine error=error />
            <table class="list" aria-label="Patients found">
                <thead><tr><th>"Name"</th><th>"Date of birth"</th><th>"Phone"</th></tr></thead>
                <tbody>
                    {move || found.get().into_iter().map(|p| {
                        let id = p.id.clone();
                        view! {
                            <tr>
                                <td><button class="link" on:click=move |_| app.view.set(View::Patient(id.clone()))>{p.name.clone()}</button></td>
                                <td>{p.dob.clone()}</td>
                                <td>{p.phone.clone().unwrap_or_default()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {move || found.get().is_empty().then(|| view! { <p class="muted">"No patients found."</p> })}
        </section>
    }
}

fn opt(s: &RwSignal<String>) -> Value {
    let v = s.get_untracked();
    if v.trim().is_empty() {
        Value::Null
    } else {
        json!(v.trim())
    }
}

#[component]
fn NewPatient(done: impl Fn(String) + Clone + Send + Sync + 'static) -> impl IntoView {
    let app = state();
    let [name, dob, sex, phone, email, address, national_id] =
        std::array::from_fn(|_| RwSignal::new(String::new()));
    let error = RwSignal::new(None::<ApiError>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let done = done.clone();
        let body = json!({
            "name": name.get_untracked().trim(), "dob": dob.get_untracked(),
            "sex": opt(&sex), "phone": opt(&phone), "email": opt(&email),
            "address": opt(&address), "national_id": opt(&national_id),
        });
        spawn_local(async move {
            match api::post::<Patient>("/api/v1/patients", body).await {
                Ok(p) => done(p.id),
                Err(e) => app.fail(&e, error),
            }
        });
    };
    view! {
        <form class="card" on:submit=submit aria-label="New patient">
            <Field label="Full name" value=name field="name" error=error required=true id="p-name" />
            <Field label="Date of birth" value=dob kind="date" field="dob" error=error required=true id="p-dob" />
            <label for="p-sex">"Sex"</label>
            <select id="p-sex" bind:value=sex>
                <option value="">"—"</option>
                <option value="female">"female"</option>
                <option value="male">"male"</option>
                <option value="other">"other"</option>
                <option value="unknown">"unknown"</option>
            </select>
            <Field label="Phone" value=phone kind="tel" field="phone" error=error id="p-phone" />
            <Field label="Email" value=email kind="email" field="email" error=error id="p-email" />
            <Field label="Address" value=address field="address" error=error id="p-address" />
            <Field label="National id" value=national_id field="national_id" error=error id="p-nid" />
            <ErrorLine error=error />
            <button type="submit">"Register patient"</button>
        </form>
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Tab {
    Details,
    Conditions,
    Prescriptions,
    Notes,
    Timeline,
}

/// One patient's record.
#[component]
pub fn Record(id: String) -> impl IntoView {
    let app = state();
    let patient = RwSignal::new(None::<Patient>);
    let error = RwSignal::new(None::<ApiError>);
    let tab = RwSignal::new(Tab::Details);
    let purge = RwSignal::new(None::<String>);
    let pid = id.clone();
    spawn_local(async move {
        match api::get::<Patient>(&format!("/api/v1/patients/{pid}")).await {
            Ok(p) => patient.set(Some(p)),
            Err(e) => app.fail(&e, error),
        }
    });
    let clinical = move || app.session.get().is_some_and(|s| s.clinical());
    let owner = move || app.session.get().is_some_and(|s| s.is("owner"));
    let tab_button = move |label: &'static str, t: Tab| {
        view! {
            <button role="tab" aria-selected=move || (tab.get() == t).to_string()
                on:click=move |_| tab.set(t)>{label}</button>
        }
    };
    let delete_id = id.clone();
    let delete = move |_| {
        let id = delete_id.clone();
        spawn_local(async move {
            match api::json::<Value>("DELETE", &format!("/api/v1/patients/{id}"), None).await {
                Ok(v) => purge.set(v["purge_after"].as_str().map(time::local_datetime)),
                Err(e) => app.fail(&e, error),
            }
        });
    };
    let restore_id = id.clone();
    let restore = move |_| {
        let id = restore_id.clone();
        spawn_local(async move {
            match api::json::<Patient>("POST", &format!("/api/v1/patients/{id}/restore"), None)
                .await
            {
                Ok(p) => {
                    purge.set(None);
                    patient.set(Some(p));
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    let id_for_tabs = id.clone();
    view! {
        <section aria-labelledby="record-title">
            <button class="link" on:click=move |_| app.view.set(View::Patients)>"← All patients"</button>
            <h1 id="record-title">{move || patient.get().map(|p| p.name).unwrap_or_else(|| "Patient".into())}</h1>
            <ErrorLine error=error />
            {move || purge.get().map(|when| view! {
                <p class="notice" role="status">
                    "Deleted. The record is erased for good after " {when} ". "
                    <button on:click=restore.clone()>"Restore"</button>
                </p>
            })}
            <div class="tabs" role="tablist">
                {tab_button("Details", Tab::Details)}
                {move || clinical().then(|| view! {
                    {tab_button("Conditions", Tab::Conditions)}
                    {tab_button("Prescriptions", Tab::Prescriptions)}
                    {tab_button("Notes", Tab::Notes)}
                })}
                {move || owner().then(|| tab_button("Timeline", Tab::Timeline))}
            </div>
            {move || {
                let id = id_for_tabs.clone();
                match tab.get() {
                    Tab::Details => view! { <Details patient=patient error=error /> }.into_any(),
                    Tab::Conditions => view! { <Clinical id=id kind=&CONDITIONS /> }.into_any(),
                    Tab::Prescriptions => view! { <Clinical id=id kind=&PRESCRIPTIONS /> }.into_any(),
                    Tab::Notes => view! { <Clinical id=id kind=&NOTES /> }.into_any(),
                    Tab::Timeline => view! { <Timeline id=id /> }.into_any(),
                }
            }}
            {move || (owner() && purge.get().is_none() && patient.get().is_some()).then(|| view! {
                <p><button class="danger" on:click=delete.clone()>"Delete patient"</button></p>
            })}
        </section>
    }
}

#[component]
fn Details(patient: RwSignal<Option<Patient>>, error: RwSignal<Option<ApiError>>) -> impl IntoView {
    let app = state();
    let editing = RwSignal::new(false);
    let [name, dob, phone, email, address, national_id] =
        std::array::from_fn(|_| RwSignal::new(String::new()));
    let edit = move |_| {
        if let Some(p) = patient.get_untracked() {
            name.set(p.name);
            dob.set(p.dob);
            phone.set(p.phone.unwrap_or_default());
            email.set(p.email.unwrap_or_default());
            address.set(p.address.unwrap_or_default());
            national_id.set(p.national_id.unwrap_or_default());
            editing.set(true);
        }
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(p) = patient.get_untracked() else {
            return;
        };
        let body = json!({
            "name": name.get_untracked().trim(), "dob": dob.get_untracked(),
            "phone": opt(&phone), "email": opt(&email), "address": opt(&address),
            "national_id": opt(&national_id),
        });
        spawn_local(async move {
            match api::patch::<Patient>(&format!("/api/v1/patients/{}", p.id), body).await {
                Ok(p) => {
                    error.set(None);
                    patient.set(Some(p));
                    editing.set(false);
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    move || {
        match (editing.get(), patient.get()) {
        (_, None) => view! { <p class="muted">"Loading…"</p> }.into_any(),
        (false, Some(p)) => view! {
            <dl class="details">
                <dt>"Date of birth"</dt><dd>{p.dob}</dd>
                <dt>"Sex"</dt><dd>{p.sex.unwrap_or_default()}</dd>
                <dt>"Phone"</dt><dd>{p.phone.unwrap_or_default()}</dd>
                <dt>"Email"</dt><dd>{p.email.unwrap_or_default()}</dd>
                <dt>"Address"</dt><dd>{p.address.unwrap_or_default()}</dd>
                <dt>"National id"</dt><dd>{p.national_id.unwrap_or_default()}</dd>
            </dl>
            <button on:click=edit>"Edit"</button>
        }
        .into_any(),
        (true, Some(_)) => view! {
            <form class="card" on:submit=save aria-label="Edit patient">
                <Field label="Full name" value=name field="name" error=error required=true id="e-name" />
                <Field label="Date of birth" value=dob kind="date" field="dob" error=error required=true id="e-dob" />
                <Field label="Phone" value=phone kind="tel" field="phone" error=error id="e-phone" />
                <Field label="Email" value=email kind="email" field="email" error=error id="e-email" />
                <Field label="Address" value=address field="address" error=error id="e-address" />
                <Field label="National id" value=national_id field="national_id" error=error id="e-nid" />
                <button type="submit">"Save"</button>
                <button type="button" on:click=move |_| editing.set(false)>"Cancel"</button>
            </form>
        }
        .into_any(),
    }
    }
}

/// One kind of clinical entry: its path, the fields of its form, the
/// columns shown, and who may write it.
struct Kind {
    path: &'static str,
    title: &'static str,
    /// (JSON field, label, input type); a "select:a|b" type is a choice.
    fields: &'static [(&'static str, &'static str, &'static str)],
    shown: &'static [&'static str],
    writers: &'static [&'static str],
}

const CONDITIONS: Kind = Kind {
    path: "conditions",
    title: "Add a condition",
    fields: &[
        ("display", "Condition", "text"),
        ("code", "Code (ICD-10, optional)", "text"),
        ("onset", "Onset (optional)", "date"),
        ("status", "Status", "select:active|resolved"),
    ],
    shown: &["display", "code", "onset", "status"],
    writers: &["owner", "doctor", "nurse"],
};

const PRESCRIPTIONS: Kind = Kind {
    path: "prescriptions",
    title: "Prescribe",
    fields: &[
        ("drug", "Drug", "text"),
        ("dose", "Dose", "text"),
        ("route", "Route", "text"),
        ("frequency", "Frequency", "text"),
        ("duration", "Duration (optional)", "text"),
        ("notes", "Notes (optional)", "text"),
    ],
    shown: &["drug", "dose", "route", "frequency", "duration", "notes"],
    writers: &["owner", "doctor"],
};

const NOTES: Kind = Kind {
    path: "notes",
    title: "Write a note",
    fields: &[
        (
            "kind",
            "Kind",
            "select:progress|consultation|procedure|other",
        ),
        ("text", "Note", "textarea"),
    ],
    shown: &["kind", "text"],
    writers: &["owner", "doctor", "nurse"],
};

#[component]
fn Clinical(id: String, kind: &'static Kind) -> impl IntoView {
    let app = state();
    let items = RwSignal::new(Vec::<Value>::new());
    let error = RwSignal::new(None::<ApiError>);
    let base = format!("/api/v1/patients/{id}/{}", kind.path);
    let load = {
        let base = base.clone();
        move || {
            let base = base.clone();
            spawn_local(async move {
                match api::get::<List<Value>>(&base).await {
                    Ok(l) => items.set(l.items),
                    Err(e) => app.fail(&e, error),
                }
            });
        }
    };
    load();
    let values: Vec<RwSignal<String>> = kind
        .fields
        .iter()
        .map(|(_, _, t)| {
            RwSignal::new(
                t.strip_prefix("select:")
                    .and_then(|c| c.split('|').next())
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let may_write = move || {
        app.session
            .get()
            .is_some_and(|s| kind.writers.contains(&s.user.role.as_str()))
    };
    let submit = {
        let values = values.clone();
        let load = load.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let mut body = serde_json::Map::new();
            for ((name, _, _), v) in kind.fields.iter().zip(&values) {
                let text = v.get_untracked();
                if !text.trim().is_empty() {
                    body.insert((*name).to_owned(), json!(text.trim()));
                }
            }
            let base = base.clone();
            let values = values.clone();
            let load = load.clone();
            spawn_local(async move {
                match api::post::<Value>(&base, Value::Object(body)).await {
                    Ok(_) => {
                        error.set(None);
                        for (v, (_, _, t)) in values.iter().zip(kind.fields) {
                            if !t.starts_with("select:") {
                                v.set(String::new());
                            }
                        }
                        load();
                    }
                    Err(e) => app.fail(&e, error),
                }
            });
        }
    };
    view! {
        <div role="tabpanel">
            <ErrorLine error=error />
            <ul class="entries">
                {move || items.get().into_iter().map(|e| {
                    let at = e["created_at"].as_str().map(time::local_datetime).unwrap_or_default();
                    let parts = kind.shown.iter()
                        .filter_map(|k| e[*k].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" · ");
                    view! { <li><span class="muted">{at}</span> " " {parts}</li> }
                }).collect_view()}
            </ul>
            {move || items.get().is_empty().then(|| view! { <p class="muted">"Nothing recorded yet."</p> })}
            {move || may_write().then(|| view! {
                <form class="card" on:submit=submit.clone() aria-label=kind.title>
                    <h2>{kind.title}</h2>
                    {form_fields(kind, &values)}
                    <button type="submit">"Save"</button>
                </form>
            })}
        </div>
    }
}

/// The inputs of a clinical entry's form, bound to `values`.
fn form_fields(kind: &'static Kind, values: &[RwSignal<String>]) -> impl IntoView {
    kind.fields
        .iter()
        .zip(values.to_vec())
        .map(|((name, label, t), v)| {
            let fid = format!("c-{}-{name}", kind.path);
            if let Some(choices) = t.strip_prefix("select:") {
                view! {
                    <label for=fid.clone()>{*label}</label>
                    <select id=fid bind:value=v>
                        {choices.split('|').map(|c| view! { <option value=c>{c}</option> }).collect_view()}
                    </select>
                }
                .into_any()
            } else if *t == "textarea" {
                view! {
                    <label for=fid.clone()>{*label}</label>
                    <textarea id=fid rows="4" bind:value=v></textarea>
                }
                .into_any()
            } else {
                view! {
                    <label for=fid.clone()>{*label}</label>
                    <input id=fid type=*t bind:value=v />
                }
                .into_any()
            }
        })
        .collect_view()
}

/// Who opened or changed this patient's record, newest first.
#[component]
fn Timeline(id: String) -> impl IntoView {
    let app = state();
    let items = RwSignal::new(Vec::<AuditEntry>::new());
    let error = RwSignal::new(None::<ApiError>);
    spawn_local(async move {
        match api::get::<List<AuditEntry>>(&format!("/api/v1/patients/{id}/audit")).await {
            Ok(l) => items.set(l.items),
            Err(e) => app.fail(&e, error),
        }
    });
    view! {
        <div role="tabpanel">
            <ErrorLine error=error />
            <crate::audit::EntryTable items=items />
        </div>
    }
}
