//! Getting in: sign-up (each region and where its data lives), login with
//! the TOTP step, and TOTP enrolment with a QR code drawn in the page.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use crate::api::{
    self, ApiError, LoginResult, MfaResult, Region, Session, SignedUp, TotpEnrolment,
};
use crate::ui::{state, AppState, ErrorLine, Field};

const CLINIC_KEY: &str = "amanah.clinic";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The clinic id last used on this device (not personal data).
fn remembered_clinic() -> String {
    storage()
        .and_then(|s| s.get_item(CLINIC_KEY).ok().flatten())
        .unwrap_or_default()
}

fn remember_clinic(id: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(CLINIC_KEY, id);
    }
}

/// Reloads the session after a login step. A support session states its
/// purpose (its ticket) on every request from here on.
pub async fn load_session() -> Result<Session, ApiError> {
    let s = api::get::<Session>("/api/v1/auth/session").await?;
    api::set_access_reason(
        s.impersonation
            .as_ref()
            .map(|i| format!("support ticket {}", i.ticket)),
    );
    Ok(s)
}

/// Log in, or sign a new clinic up.
#[component]
pub fn Gate() -> impl IntoView {
    // `/?signup` (a link from another region's sign-up) opens on sign-up,
    // once: the address goes back to `/`.
    let asked = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .is_some_and(|s| s.contains("signup"));
    if asked {
        if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some("/"));
        }
    }
    let signing_up = RwSignal::new(asked);
    let notice = RwSignal::new(None::<String>);
    view! {
        <main class="gate">
            <h1>"Amanah"</h1>
            <p class="tagline">"Clinic records, kept in the region you choose."</p>
            <div class="tabs" role="tablist">
                <button role="tab" aria-selected=move || (!signing_up.get()).to_string()
                    on:click=move |_| if signing_up.get_untracked() { signing_up.set(false) }>"Log in"</button>
                <button role="tab" aria-selected=move || signing_up.get().to_string()
                    on:click=move |_| if !signing_up.get_untracked() { signing_up.set(true) }>"Sign up a clinic"</button>
            </div>
            {move || notice.get().map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {move || if signing_up.get() {
                view! { <SignUp done=move |msg| { notice.set(Some(msg)); signing_up.set(false); } /> }.into_any()
            } else {
                view! { <Login /> }.into_any()
            }}
        </main>
    }
}

#[component]
fn SignUp(done: impl Fn(String) + Clone + Send + Sync + 'static) -> impl IntoView {
    let regions = RwSignal::new(Vec::<Region>::new());
    let here = RwSignal::new(String::new());
    spawn_local(async move {
        if let Ok(r) = api::get::<Vec<Region>>("/api/v1/regions").await {
            regions.set(r);
        }
        if let Ok(h) = api::get::<Value>("/healthz").await {
            here.set(h["region"].as_str().unwrap_or("").to_owned());
        }
    });
    let region = RwSignal::new(String::new());
    Effect::new(move |_| {
        if region.get_untracked().is_empty() && !here.get().is_empty() {
            region.set(here.get());
        }
    });
    let (name, owner, email, password) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let elsewhere = move || {
        let r = region.get();
        (!r.is_empty() && r != here.get())
            .then(|| regions.get().into_iter().find(|x| x.id == r))
            .flatten()
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if elsewhere().is_some() {
            return;
        }
        busy.set(true);
        error.set(None);
        let done = done.clone();
        let body = json!({
            "name": name.get_untracked(),
            "region": region.get_untracked(),
            "owner": {"name": owner.get_untracked(), "email": email.get_untracked(), "password": password.get_untracked()},
        });
        spawn_local(async move {
            match api::post::<SignedUp>("/api/v1/clinics", body).await {
                Ok(s) => {
                    remember_clinic(&s.clinic.id);
                    done(format!(
                        "{} is ready. Its clinic id is {}: keep it, every login asks for it. Log in now to set up two-factor authentication.",
                        s.clinic.name, s.clinic.id
                    ));
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="card" on:submit=submit aria-labelledby="signup-title">
            <h2 id="signup-title">"Sign up a clinic"</h2>
            <fieldset>
                <legend>"Where your clinic's data lives"</legend>
                <p class="hint">"Chosen once: every record of the clinic stays in this region."</p>
                {move || regions.get().into_iter().map(|r| {
                    let id = r.id.clone();
                    let checked = { let id = id.clone(); move || region.get() == id };
                    let pick = { let id = id.clone(); move |_| region.set(id.clone()) };
                    view! {
                        <label class="region">
                            <input type="radio" name="region" value=id.clone() prop:checked=checked on:change=pick />
                            <span>
                                <strong>{r.name.clone()}</strong>" — data stored in "{r.location.clone()}
                                <br/>
                                <small>{match &r.retention {
                                    Some(t) => format!("Deleted records are kept {} years after the last visit ({}).", t.years, t.law),
                                    None => "Deleted records are purged 30 days after deletion.".to_owned(),
                                }}</small>
                            </span>
                        </label>
                    }
                }).collect_view()}
            </fieldset>
            {move || elsewhere().map(|r| view! {
                <p class="notice" role="status">
                    "Clinics of " {r.name.clone()} " sign up on that region's own site: "
                    {match r.url.clone() {
                        Some(u) => view! { <a href=format!("{u}/?signup")>{format!("continue at {u}")}</a> }.into_any(),
                        None => view! { <span>"ask your Amanah contact for its address"</span> }.into_any(),
                    }}
                </p>
            })}
            <Field label="Clinic name" value=name field="name" error=error required=true id="su-clinic" />
            <Field label="Your name" value=owner field="owner.name" error=error required=true autocomplete="name" id="su-name" />
            <Field label="Your email" value=email kind="email" field="owner.email" error=error required=true autocomplete="email" id="su-email" />
            <Field label="Password (12 characters or more)" value=password kind="password" field="owner.password" error=error required=true autocomplete="new-password" id="su-password" />
            <ErrorLine error=error />
            <button type="submit" disabled=move || busy.get() || elsewhere().is_some()>"Create the clinic"</button>
        </form>
    }
}

#[component]
fn Login() -> impl IntoView {
    let app = state();
    let clinic = RwSignal::new(remembered_clinic());
    let (email, password, code) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let needs_code = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let finish = move || {
        spawn_local(async move {
            match load_session().await {
                Ok(s) => app.session.set(Some(s)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = if needs_code.get_untracked() {
                api::post::<MfaResult>(
                    "/api/v1/auth/mfa",
                    json!({"code": code.get_untracked().trim()}),
                )
                .await
                .map(|r| {
                    let failed = r
                        .session
                        .and_then(|s| s.notice)
                        .map_or(0, |n| n.failed_codes);
                    if failed > 0 {
                        app.notice.set(Some(format!(
                            "{failed} wrong two-factor code{} entered for your account since you last signed in. If that was not you, tell your clinic's owner.",
                            if failed == 1 { " was" } else { "s were" }
                        )));
                    }
                    false
                })
            } else {
                let id = clinic.get_untracked().trim().to_owned();
                api::post::<LoginResult>(
                    "/api/v1/auth/login",
                    json!({"clinic": id, "email": email.get_untracked(), "password": password.get_untracked()}),
                )
                .await
                .map(|r| {
                    remember_clinic(&id);
                    r.mfa_required
                })
            };
            busy.set(false);
            match result {
                Ok(true) => {
                    needs_code.set(true);
                    password.set(String::new());
                }
                Ok(false) => finish(),
                Err(e) => {
                    if needs_code.get_untracked() && e.status == 401 {
                        code.set(String::new());
                    }
                    error.set(Some(e));
                }
            }
        });
    };
    view! {
        <form class="card" on:submit=submit aria-labelledby="login-title">
            <h2 id="login-title">"Log in"</h2>
            {move || if needs_code.get() {
                view! {
                    <p>"Enter the 6-digit code from your authenticator app."</p>
                    <Field label="Code" value=code kind="text" field="code" error=error required=true autocomplete="one-time-code" id="f-code" />
                }.into_any()
            } else {
                view! {
                    <Field label="Clinic id" value=clinic field="clinic" error=error required=true />
                    <Field label="Email" value=email kind="email" field="email" error=error required=true autocomplete="username" />
                    <Field label="Password" value=password kind="password" field="password" error=error required=true autocomplete="current-password" />
                }.into_any()
            }}
            <ErrorLine error=error />
            <button type="submit" disabled=move || busy.get()>
                {move || if needs_code.get() { "Verify" } else { "Log in" }}
            </button>
        </form>
    }
}

/// The QR code of an `otpauth://` URI, as SVG markup made here (no
/// third-party service sees the secret).
fn qr_svg(uri: &str) -> String {
    use qrcode::render::svg;
    qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<svg::Color>()
                .min_dimensions(220, 220)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build()
        })
        .unwrap_or_default()
}

/// A new password in place of the temporary one an owner's reset gave,
/// required before anything else.
#[component]
pub fn ChangePassword() -> impl IntoView {
    let app = state();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let sent = api::call(
                "POST",
                "/api/v1/auth/password",
                Some(json!({"current": current.get_untracked(), "new": new.get_untracked()})),
            )
            .await;
            reopen_after(app, sent, error).await;
            busy.set(false);
        });
    };
    view! {
        <main class="gate">
            <h1>"Choose a new password"</h1>
            <p>"Your clinic's owner reset your password. Enter the temporary password they gave you, then a new one of your own."</p>
            <form class="card" on:submit=submit>
                <Field label="Temporary password" value=current kind="password" field="current" error=error required=true autocomplete="current-password" />
                <Field label="New password" value=new kind="password" field="new" error=error required=true autocomplete="new-password" />
                <ErrorLine error=error />
                <button type="submit" disabled=move || busy.get()>"Save password"</button>
            </form>
        </main>
    }
}

/// After a gate's form was sent (a new password, a confirmed TOTP): the
/// session is read again, so the gate it answered opens; an error of
/// either step is shown beside the form.
async fn reopen_after(
    app: AppState,
    sent: Result<(), ApiError>,
    error: RwSignal<Option<ApiError>>,
) {
    let session = match sent {
        Ok(()) => load_session().await,
        Err(e) => Err(e),
    };
    match session {
        Ok(s) => app.session.set(Some(s)),
        Err(e) => app.fail(&e, error),
    }
}

/// TOTP enrolment, required of owners and doctors before anything else.
#[component]
pub fn Enrol() -> impl IntoView {
    let app = state();
    let password = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let enrolment = RwSignal::new(None::<TotpEnrolment>);
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::post::<TotpEnrolment>(
                "/api/v1/auth/totp",
                json!({"password": password.get_untracked()}),
            )
            .await
            {
                Ok(e) => {
                    password.set(String::new());
                    enrolment.set(Some(e));
                }
                Err(e) => app.fail(&e, error),
            }
            busy.set(false);
        });
    };
    let confirm = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let sent = api::call(
                "POST",
                "/api/v1/auth/totp/confirm",
                Some(json!({"code": code.get_untracked().trim()})),
            )
            .await;
            reopen_after(app, sent, error).await;
            busy.set(false);
        });
    };
    view! {
        <main class="gate">
            <h1>"Set up two-factor authentication"</h1>
            <p>"Owners and doctors sign in with a password and a code from an authenticator app on their phone."</p>
            {move || match enrolment.get() {
                None => view! {
                    <form class="card" on:submit=start>
                        <Field label="Your password" value=password kind="password" field="password" error=error required=true autocomplete="current-password" />
                        <ErrorLine error=error />
                        <button type="submit" disabled=move || busy.get()>"Show my QR code"</button>
                    </form>
                }.into_any(),
                Some(e) => view! {
                    <form class="card" on:submit=confirm>
                        <p>"Scan this with your authenticator app, or type the key below into it."</p>
                        <div class="qr" role="img" aria-label="QR code for your authenticator app" inner_html=qr_svg(&e.otpauth_uri)></div>
                        <p>"Key: "<code id="totp-secret">{e.secret.clone()}</code></p>
                        <Field label="Code from the app" value=code field="code" error=error required=true autocomplete="one-time-code" id="f-code" />
                        <ErrorLine error=error />
                        <button type="submit" disabled=move || busy.get()>"Confirm"</button>
                    </form>
                }.into_any(),
            }}
        </main>
    }
}
