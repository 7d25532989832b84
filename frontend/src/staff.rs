//! Staff (owners): who works here, adding someone, changing a role, and
//! deactivating an account (it stops working on its next request).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use crate::api::{self, ApiError, List, User};
use crate::ui::{state, ErrorLine, Field};

const ROLES: [&str; 4] = ["owner", "doctor", "nurse", "receptionist"];

#[component]
pub fn Staff() -> impl IntoView {
    let app = state();
    let users = RwSignal::new(Vec::<User>::new());
    let error = RwSignal::new(None::<ApiError>);
    let reload = RwSignal::new(0u32);
    Effect::new(move |_| {
        reload.get();
        spawn_local(async move {
            match api::get::<List<User>>("/api/v1/users?limit=200").await {
                Ok(l) => users.set(l.items),
                Err(e) => app.fail(&e, error),
            }
        });
    });
    let change = move |id: String, body: serde_json::Value| {
        spawn_local(async move {
            match api::patch::<User>(&format!("/api/v1/users/{id}"), body).await {
                Ok(_) => {
                    error.set(None);
                    reload.update(|n| *n += 1)
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    let (name, email, role, password) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new("doctor".to_owned()),
        RwSignal::new(String::new()),
    );
    let add_error = RwSignal::new(None::<ApiError>);
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"name": name.get_untracked().trim(), "email": email.get_untracked().trim(),
            "role": role.get_untracked(), "password": password.get_untracked()});
        spawn_local(async move {
            match api::post::<User>("/api/v1/users", body).await {
                Ok(_) => {
                    add_error.set(None);
                    name.set(String::new());
                    email.set(String::new());
                    password.set(String::new());
                    reload.update(|n| *n += 1);
                }
                Err(e) => app.fail(&e, add_error),
            }
        });
    };
    view! {
        <section aria-labelledby="staff-title">
            <h1 id="staff-title">"Staff"</h1>
            <ErrorLine error=error />
            <table class="list" aria-label="Staff">
                <thead><tr><th>"Name"</th><th>"Email"</th><th>"Role"</th><th>"Two-factor"</th><th>"Account"</th></tr></thead>
                <tbody>
                    {move || users.get().into_iter().map(|u| {
                        let (id1, id2) = (u.id.clone(), u.id.clone());
                        let current = u.role.clone();
                        let active = u.active;
                        let label = format!("Role of {}", u.name);
                        view! {
                            <tr class:inactive=!active>
                                <td>{u.name.clone()}</td>
                                <td>{u.email.clone()}</td>
                                <td>
                                    <select aria-label=label on:change=move |ev| change(id1.clone(), json!({"role": event_target_value(&ev)}))>
                                        {ROLES.iter().map(|r| view! { <option value=*r selected=current == *r>{*r}</option> }).collect_view()}
                                    </select>
                                </td>
                                <td>{if u.mfa_enabled { "on" } else { "not set up" }}</td>
                                <td>
                                    <button on:click=move |_| change(id2.clone(), json!({"active": !active}))>
                                        {if active { "Deactivate" } else { "Reactivate" }}
                                    </button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <form class="card" on:submit=add aria-labelledby="add-staff-title">
                <h2 id="add-staff-title">"Add a staff member"</h2>
                <Field label="Name" value=name field="name" error=add_error required=true id="s-name" />
                <Field label="Email" value=email kind="email" field="email" error=add_error required=true id="s-email" />
                <label for="s-role">"Role"</label>
                <select id="s-role" bind:value=role>
                    {ROLES.iter().map(|r| view! { <option value=*r>{*r}</option> }).collect_view()}
                </select>
                <Field label="First password (12 characters or more; they change it)" value=password kind="password" field="password" error=add_error required=true autocomplete="new-password" id="s-password" />
                <ErrorLine error=add_error />
                <button type="submit">"Add"</button>
            </form>
        </section>
    }
}
