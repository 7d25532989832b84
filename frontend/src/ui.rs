//! Small widgets every screen uses: the error line, labelled inputs, and
//! the app's shared state.

use leptos::prelude::*;

use crate::api::{ApiError, Session};

/// Where in the app the user is.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    Schedule,
    Patients,
    Patient(String),
    Staff,
    Audit,
    Clinic,
}

/// The state every screen may read: the session and the current view.
#[derive(Clone, Copy)]
pub struct AppState {
    pub session: RwSignal<Option<Session>>,
    pub view: RwSignal<View>,
    /// When the user last did something (ms), for the idle warning.
    pub last_active: RwSignal<f64>,
    /// What the user should know on signing in (wrong codes entered for
    /// their account), until they dismiss it.
    pub notice: RwSignal<Option<String>>,
}

pub fn state() -> AppState {
    expect_context::<AppState>()
}

impl AppState {
    /// Handles an error of any screen: a dead session goes back to login.
    pub fn fail(&self, e: &ApiError, shown: RwSignal<Option<ApiError>>) {
        if e.is_unauthenticated() && self.session.get_untracked().is_some() {
            self.session.set(None);
        }
        shown.set(Some(e.clone()));
    }
}

/// The error of the last action, as a sentence next to the form.
#[component]
pub fn ErrorLine(error: RwSignal<Option<ApiError>>) -> impl IntoView {
    move || {
        error.get().map(|e| {
            view! { <p class="error" role="alert">{e.text()}</p> }
        })
    }
}

/// A labelled text input bound to a signal; `field` marks it invalid when
/// the last error names it.
#[component]
pub fn Field(
    label: &'static str,
    value: RwSignal<String>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(default = "")] field: &'static str,
    #[prop(optional)] error: Option<RwSignal<Option<ApiError>>>,
    #[prop(default = false)] required: bool,
    #[prop(default = "")] autocomplete: &'static str,
    #[prop(default = "")] id: &'static str,
) -> impl IntoView {
    let invalid = move || {
        error
            .and_then(|e| e.get())
            .and_then(|e| e.field)
            .is_some_and(|f| !field.is_empty() && f == field)
    };
    let id = if id.is_empty() {
        format!("f-{}", label.to_lowercase().replace(' ', "-"))
    } else {
        id.to_owned()
    };
    view! {
        <label for=id.clone()>{label}</label>
        <input
            id=id
            type=kind
            required=required
            autocomplete=autocomplete
            aria-invalid=move || if invalid() { "true" } else { "false" }
            bind:value=value
        />
    }
}
