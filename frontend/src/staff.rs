//! Staff (owners): who works here, adding someone, changing a role,
//! deactivating an account (it stops working on its next request), and
//! resetting a forgotten password or a lost two-factor device (the user's
//! sessions end; a temporary password is shown here once).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use crate::api::{self, ApiError, List, User};

/// The answer to a reset: a temporary password when one was asked for.
#[derive(serde::Deserialize)]
struct Reset {
    #[serde(default)]
    temporary_password: Option<String>,
}
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
    // A temporary password, shown once, with whose it is.
    let issued = RwSignal::new(None::<(String, String)>);
    let reset = move |id: String, who: String, body: serde_json::Value| {
        spawn_local(async move {
            match api::post::<Reset>(&format!("/api/v1/users/{id}/reset"), body).await {
                Ok(r) => {
                    error.set(None);
                    issued.set(r.temporary_password.map(|p| (who, p)));
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
            {move || issued.get().map(|(who, p)| view! {
                <p class="notice" role="status">
                    "Temporary password for " {who} ": " <code>{p}</code>
                    ". Give it to them in person; it is shown only now, and they choose their own at their next sign-in."
                </p>
            })}
            <table class="list" aria-label="Staff">
                <thead><tr><th>"Name"</th><th>"Email"</th><th>"Role"</th><th>"Two-factor"</th><th>"Account"</th></tr></thead>
                <tbody>
                    {move || users.get().into_iter().map(|u| {
                        let (id1, id2, id3, id4) = (u.id.clone(), u.id.clone(), u.id.clone(), u.id.clone());
                        let (who1, who2) = (u.name.clone(), u.name.clone());
                        let (reset_totp_label, reset_password_label) = (
                            format!("Reset the two-factor device of {}", u.name),
                            format!("Reset the password of {}", u.name),
                        );
                        // One's own account is reset by another owner.
                        let own = app.session.get_untracked().is_some_and(|s| s.user.id == u.id);
                        let mfa = u.mfa_enabled;
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
                                <td>
                                    {if mfa { "on " } else { "not set up" }}
                                    {(mfa && !own).then(|| view! {
                                        <button aria-label=reset_totp_label.clone() on:click=move |_| reset(id3.clone(), who1.clone(), json!({"totp": true}))>"Reset two-factor"</button>
                                    })}
                                </td>
                                <td>
                                    <button on:click=move |_| change(id2.clone(), json!({"active": !active}))>
                                        {if active { "Deactivate" } else { "Reactivate" }}
                                    </button>
                                    {(!own).then(|| view! {
                                        " "
                                        <button aria-label=reset_password_label.clone() on:click=move |_| reset(id4.clone(), who2.clone(), json!({"password": true}))>"Reset password"</button>
                                    })}
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
