//! The frame around every screen: who is logged in, the navigation, the
//! support-session banner, the idle warning, and which screen shows.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Session};
use crate::auth::{load_session, ChangePassword, Enrol, Gate};
use crate::time;
use crate::ui::{AppState, View};

/// The server ends a session after this much inactivity.
const IDLE_MS: f64 = 15.0 * 60_000.0;
/// The warning shows this long before.
const WARN_MS: f64 = 2.0 * 60_000.0;

#[component]
pub fn App() -> impl IntoView {
    let app = AppState {
        session: RwSignal::new(None),
        view: RwSignal::new(View::Schedule),
        last_active: RwSignal::new(time::now_ms()),
        notice: RwSignal::new(None),
    };
    provide_context(app);
    let checked = RwSignal::new(false);
    spawn_local(async move {
        if let Ok(s) = load_session().await {
            app.session.set(Some(s));
        }
        checked.set(true);
    });
    move || {
        if !checked.get() {
            return view! { <p class="loading" role="status">"Loading…"</p> }.into_any();
        }
        match app.session.get() {
            None => view! { <Gate /> }.into_any(),
            Some(s) if s.must_change_password() => view! { <ChangePassword /> }.into_any(),
            Some(s) if s.must_enrol() => view! { <Enrol /> }.into_any(),
            Some(_) => view! { <Main /> }.into_any(),
        }
    }
}

#[component]
fn Main() -> impl IntoView {
    let app = crate::ui::state();
    let now = RwSignal::new(time::now_ms());
    let ticker =
        set_interval_with_handle(move || now.set(time::now_ms()), Duration::from_secs(10)).ok();
    on_cleanup(move || {
        if let Some(t) = ticker {
            t.clear();
        }
    });
    let touch = move || app.last_active.set(time::now_ms());
    // Past the idle limit the server has ended the session: show the login.
    Effect::new(move |_| {
        if now.get() - app.last_active.get_untracked() > IDLE_MS {
            app.session.set(None);
        }
    });
    let idle_warning = move || now.get() - app.last_active.get() > IDLE_MS - WARN_MS;
    let stay = move |_| {
        touch();
        spawn_local(async move {
            match load_session().await {
                Ok(s) => app.session.set(Some(s)),
                Err(_) => app.session.set(None),
            }
        });
    };
    let logout = move |_| {
        spawn_local(async move {
            let _ = api::call("POST", "/api/v1/auth/logout", None).await;
            api::set_access_reason(None);
            app.session.set(None);
        });
    };
    let session = move || app.session.get();
    let nav = move |label: &'static str, to: View| {
        let target = to.clone();
        let current = move || {
            let v = app.view.get();
            v == target || (target == View::Patients && matches!(v, View::Patient(_)))
        };
        view! {
            <li>
                <button class="nav" aria-current=move || if current() { "page" } else { "false" }
                    on:click=move |_| app.view.set(to.clone())>{label}</button>
            </li>
        }
    };
    view! {
        <div class="app" on:click=move |_| touch() on:keydown=move |_| touch()>
            {move || session().and_then(|s| s.impersonation.clone()).map(|i| {
                let left = move || {
                    now.get();
                    time::minutes_until(&i.expires_at).unwrap_or(0).max(0)
                };
                view! {
                    <div class="banner support" role="alert">
                        "Support session under ticket " <strong>{i.ticket.clone()}</strong>
                        ": every action is recorded. " {left} " minutes left."
                    </div>
                }
            })}
            {move || app.notice.get().map(|n| view! {
                <div class="banner notice" role="alert">
                    {n} " "
                    <button on:click=move |_| app.notice.set(None)>"Dismiss"</button>
                </div>
            })}
            {move || idle_warning().then(|| view! {
                <div class="banner idle" role="alert">
                    "You will be logged out in under 2 minutes for inactivity. "
                    <button on:click=stay>"Stay logged in"</button>
                </div>
            })}
            <header>
                <div class="who">
                    <strong>{move || session().map(|s| s.clinic.name)}</strong>
                    <span class="muted">{move || session().map(|s: Session| format!("{} · {}", s.user.name, s.user.role))}</span>
                </div>
                <nav aria-label="Main">
                    <ul>
                        {nav("Schedule", View::Schedule)}
                        {nav("Patients", View::Patients)}
                        {move || session().is_some_and(|s| s.is("owner")).then(|| view! {
                            {nav("Staff", View::Staff)}
                            {nav("Audit", View::Audit)}
                            {nav("Clinic", View::Clinic)}
                        })}
                    </ul>
                </nav>
                <button class="logout" on:click=logout>"Log out"</button>
            </header>
            <main>
                {move || match app.view.get() {
                    View::Schedule => view! { <crate::schedule::Schedule /> }.into_any(),
                    View::Patients => view! { <crate::patients::Patients /> }.into_any(),
                    View::Patient(id) => view! { <crate::patients::Record id=id /> }.into_any(),
                    View::Staff => view! { <crate::staff::Staff /> }.into_any(),
                    View::Audit => view! { <crate::audit::Audit /> }.into_any(),
                    View::Clinic => view! { <crate::clinic::Clinic /> }.into_any(),
                }}
            </main>
        </div>
    }
}
