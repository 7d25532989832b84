//! The schedule: a day or a week per practitioner, booking (with the
//! server's conflict message when a practitioner is already booked), and
//! status changes as the day goes (arrived, completed, no-show).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use crate::api::{self, ApiError, Appointment, List, Patient, Practitioner};
use crate::time;
use crate::ui::{state, ErrorLine, View};

#[component]
pub fn Schedule() -> impl IntoView {
    let app = state();
    let day = RwSignal::new(time::today());
    let week = RwSignal::new(false);
    let who = RwSignal::new(String::new());
    let practitioners = RwSignal::new(Vec::<Practitioner>::new());
    let items = RwSignal::new(Vec::<Appointment>::new());
    let error = RwSignal::new(None::<ApiError>);
    let reload = RwSignal::new(0u32);
    spawn_local(async move {
        match api::get::<List<Practitioner>>("/api/v1/practitioners").await {
            Ok(l) => practitioners.set(l.items),
            Err(e) => app.fail(&e, error),
        }
    });
    Effect::new(move |_| {
        reload.get();
        let (d, span, p) = (day.get(), if week.get() { 7 } else { 1 }, who.get());
        let Some((from, _)) = time::day_range_utc(&d) else {
            return;
        };
        let Some((to, _)) = time::day_range_utc(&time::add_days(&d, span)) else {
            return;
        };
        let mut path = format!(
            "/api/v1/appointments?from={}&to={}",
            api::q(&from),
            api::q(&to)
        );
        if !p.is_empty() {
            path.push_str(&format!("&practitioner={}", api::q(&p)));
        }
        spawn_local(async move {
            match api::get::<List<Appointment>>(&path).await {
                Ok(mut l) => {
                    l.items.sort_by(|a, b| a.start.cmp(&b.start));
                    error.set(None);
                    items.set(l.items)
                }
                Err(e) => app.fail(&e, error),
            }
        });
    });
    let name_of = move |id: &str| {
        practitioners
            .get()
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.name)
            .unwrap_or_else(|| id.to_owned())
    };
    let set_status = move |id: String, status: &'static str| {
        spawn_local(async move {
            match api::patch::<Appointment>(
                &format!("/api/v1/appointments/{id}"),
                json!({ "status": status }),
            )
            .await
            {
                Ok(_) => reload.update(|n| *n += 1),
                Err(e) => app.fail(&e, error),
            }
        });
    };
    view! {
        <section aria-labelledby="schedule-title">
            <h1 id="schedule-title">"Schedule"</h1>
            <div class="toolbar">
                <button on:click=move |_| day.update(|d| *d = time::add_days(d, if week.get_untracked() { -7 } else { -1 }))>"← Earlier"</button>
                <label for="day">"Day"</label>
                <input id="day" type="date" bind:value=day />
                <button on:click=move |_| day.update(|d| *d = time::add_days(d, if week.get_untracked() { 7 } else { 1 }))>"Later →"</button>
                <button on:click=move |_| day.set(time::today())>"Today"</button>
                <label><input type="checkbox" bind:checked=week />" Week"</label>
                <label for="who">"Practitioner"</label>
                <select id="who" bind:value=who>
                    <option value="">"Everyone"</option>
                    {move || practitioners.get().into_iter().map(|p| view! {
                        <option value=p.id.clone()>{format!("{} ({})", p.name, p.role)}</option>
                    }).collect_view()}
                </select>
            </div>
            <ErrorLine error=error />
            <table class="list" aria-label="Appointments">
                <thead><tr><th>"When"</th><th>"Patient"</th><th>"With"</th><th>"Status"</th><th>"Change"</th></tr></thead>
                <tbody>
                    {move || items.get().into_iter().map(|a| {
                        let when = if week.get() {
                            format!("{}–{}", time::local_datetime(&a.start), time::local_hm(&a.end))
                        } else {
                            format!("{}–{}", time::local_hm(&a.start), time::local_hm(&a.end))
                        };
                        let pid = a.patient_id.clone();
                        let (booked, arrived) = (a.status == "booked", a.status == "arrived");
                        let (i1, i2, i3) = (a.id.clone(), a.id.clone(), a.id.clone());
                        view! {
                            <tr>
                                <td>{when}</td>
                                <td><button class="link" on:click=move |_| app.view.set(View::Patient(pid.clone()))>{a.patient_name.clone()}</button></td>
                                <td>{name_of(&a.practitioner_id)}</td>
                                <td class=format!("status {}", a.status)>{a.status.replace('_', "-")}</td>
                                <td>
                                    {booked.then(|| view! {
                                        <button on:click=move |_| set_status(i1.clone(), "arrived")>"Arrived"</button>
                                        <button on:click=move |_| set_status(i3.clone(), "no_show")>"No-show"</button>
                                    })}
                                    {arrived.then(|| view! {
                                        <button on:click=move |_| set_status(i2.clone(), "completed")>"Completed"</button>
                                    })}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {move || items.get().is_empty().then(|| view! { <p class="muted">"No appointments."</p> })}
            <Book practitioners=practitioners day=day booked=move || reload.update(|n| *n += 1) />
        </section>
    }
}

#[component]
fn Book(
    practitioners: RwSignal<Vec<Practitioner>>,
    day: RwSignal<String>,
    booked: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let app = state();
    let search = RwSignal::new(String::new());
    let matches = RwSignal::new(Vec::<Patient>::new());
    let patient = RwSignal::new(None::<Patient>);
    let practitioner = RwSignal::new(String::new());
    let start = RwSignal::new("09:00".to_owned());
    let minutes = RwSignal::new("30".to_owned());
    let reason = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let done = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let q = search.get();
        if q.trim().chars().count() < 3 {
            matches.set(Vec::new());
            return;
        }
        spawn_local(async move {
            if let Ok(l) = api::search_patients(&q).await {
                matches.set(l.items);
            }
        });
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        done.set(None);
        let Some(p) = patient.get_untracked() else {
            error.set(Some(ApiError {
                status: 0,
                code: "input".into(),
                message: "Choose a patient first.".into(),
                field: Some("patient_id".into()),
            }));
            return;
        };
        let d = day.get_untracked();
        let mins: i64 = minutes.get_untracked().parse().unwrap_or(30);
        let (Some(from), Some(until)) = (
            time::local_to_utc(&d, &start.get_untracked()),
            time::local_to_utc(&d, &start.get_untracked()).map(|s| {
                let t = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&s));
                t.set_time(t.get_time() + (mins as f64) * 60_000.0);
                let iso: String = t.to_iso_string().into();
                iso.split_once('.')
                    .map(|(h, _)| format!("{h}Z"))
                    .unwrap_or(iso)
            }),
        ) else {
            error.set(Some(ApiError {
                status: 0,
                code: "input".into(),
                message: "The day or time is not valid.".into(),
                field: Some("start".into()),
            }));
            return;
        };
        let mut body = json!({
            "patient_id": p.id, "practitioner_id": practitioner.get_untracked(),
            "start": from, "end": until,
        });
        if !reason.get_untracked().trim().is_empty() {
            body["reason"] = json!(reason.get_untracked().trim());
        }
        let booked = booked.clone();
        spawn_local(async move {
            match api::post::<Appointment>("/api/v1/appointments", body).await {
                Ok(_) => {
                    error.set(None);
                    done.set(Some(format!(
                        "Booked {} at {}.",
                        p.name,
                        start.get_untracked()
                    )));
                    patient.set(None);
                    search.set(String::new());
                    reason.set(String::new());
                    booked();
                }
                Err(e) => app.fail(&e, error),
            }
        });
    };
    view! {
        <form class="card" on:submit=submit aria-labelledby="book-title">
            <h2 id="book-title">"Book an appointment"</h2>
            <label for="book-patient">"Patient (type 3 letters of the name, or the phone)"</label>
            <input id="book-patient" type="search" autocomplete="off" bind:value=search />
            {move || patient.get().map(|p| view! { <p class="chosen">"Patient: " <strong>{p.name}</strong> " (" {p.dob} ")"</p> })}
            <ul class="choices">
                {move || matches.get().into_iter().map(|p| {
                    let chosen = p.clone();
                    view! {
                        <li><button type="button" class="link" on:click=move |_| {
                            patient.set(Some(chosen.clone()));
                            matches.set(Vec::new());
                        }>{format!("{} · {}", p.name, p.dob)}</button></li>
                    }
                }).collect_view()}
            </ul>
            <label for="book-who">"With"</label>
            <select id="book-who" bind:value=practitioner required>
                <option value="">"Choose…"</option>
                {move || practitioners.get().into_iter().map(|p| view! {
                    <option value=p.id.clone()>{format!("{} ({})", p.name, p.role)}</option>
                }).collect_view()}
            </select>
            <label for="book-day">"Day"</label>
            <input id="book-day" type="date" bind:value=day />
            <label for="book-start">"Start"</label>
            <input id="book-start" type="time" bind:value=start />
            <label for="book-minutes">"Minutes"</label>
            <input id="book-minutes" type="number" min="5" max="480" step="5" bind:value=minutes />
            <label for="book-reason">"Reason (optional)"</label>
            <input id="book-reason" type="text" bind:value=reason />
            <ErrorLine error=error />
            {move || done.get().map(|d| view! { <p class="notice" role="status">{d}</p> })}
            <button type="submit">"Book"</button>
        </form>
    }
}
