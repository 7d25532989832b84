//! A clinic's day in the browser: headless Chromium drives the Leptos app
//! the host serves at `/`. Sign-up (the regions and where their data
//! lives) → TOTP enrolment from the QR page's key → login with a code →
//! staff → a patient → a booking (and its conflict message) → status
//! change → a doctor's note → the receptionist sees no clinical tab → the
//! owner's patient timeline, audit verification and export. Screenshots of
//! each main page go to `target/screenshots/<host>/`.

use std::path::{Path, PathBuf};

use amanah_e2e::browser::Browser;
use amanah_e2e::{totp_code, Client, Clinic, Deployment, HostKind, PASSWORD};
use amanah_functions::web::SESSION_COOKIE;

const OWNER: &str = "owner@day.pk";
const DOCTOR: &str = "doctor@day.pk";
const DESK: &str = "desk@day.pk";
const PATIENT: &str = "Mehwish Qureshi";
/// WebDriver's Enter key.
const ENTER: char = '\u{E007}';
const NOTE: &str = "Mild fever for two days; fluids and rest.";

fn shots(host: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("target")
        .join("screenshots")
        .join(host)
}

/// A screenshot of the page from its top.
fn shot(b: &Browser, dir: &Path, name: &str) {
    b.execute("window.scrollTo(0, 0);");
    b.screenshot(&dir.join(name));
}

/// Every input, select and textarea on the page has a label.
fn all_labelled(b: &Browser, page: &str) {
    let unlabelled = b.execute(
        "return [...document.querySelectorAll('input,select,textarea')]
            .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
            .map(e => e.id || e.name || e.outerHTML.slice(0, 60));",
    );
    assert_eq!(
        unlabelled,
        serde_json::json!([]),
        "{page}: unlabelled inputs"
    );
}

/// Logs in; `enrolling`: the user has no TOTP yet and gets the enrolment
/// page instead of the app.
fn log_in(b: &Browser, clinic: &Clinic, email: &str, code: Option<String>, enrolling: bool) {
    b.wait_text_css("h2#login-title", "Log in");
    b.fill("#f-clinic-id", &clinic.id);
    b.fill("#f-email", email);
    // By keyboard: Enter in the last field submits each step.
    b.fill("#f-password", &format!("{PASSWORD}{ENTER}"));
    if let Some(code) = code {
        b.fill("#f-code", &format!("{code}{ENTER}"));
    }
    if !enrolling {
        b.wait_for("header nav");
    }
}

/// The owner's login with a code of a fresh 30-second step (codes are
/// single-use).
fn owner_logs_in(b: &Browser, clinic: &Clinic, secret: &str) {
    clinic.advance(31);
    log_in(
        b,
        clinic,
        OWNER,
        Some(totp_code(secret, clinic.now())),
        false,
    );
}

fn log_out(b: &Browser) {
    b.click_button("Log out");
    b.wait_for("h2#login-title");
}

/// Enrols TOTP on the page that demands it; returns the key shown.
fn enrol(b: &Browser, clinic: &Clinic) -> String {
    b.wait_text_css("h1", "Set up two-factor authentication");
    b.fill("#f-your-password", PASSWORD);
    b.click_button("Show my QR code");
    b.wait_for(".qr svg");
    let secret = b.wait_text_css("#totp-secret", "");
    assert!(secret.len() >= 16, "{secret:?}");
    b.fill("#f-code", &totp_code(&secret, clinic.now()));
    b.click_button("Confirm");
    b.wait_for("header nav");
    secret
}

#[test]
fn a_clinics_day_in_the_browser() {
    let d = Deployment::start();
    if d.host == HostKind::Spin {
        eprintln!(
            "skipped: the Spin deployment serves the API only (see README: Spin and the front end)"
        );
        return;
    }
    let app = d.url("pk").trim_end_matches('/').to_owned();
    // The page and its files come with the API's security headers.
    let index = Client::new(&app).get("/");
    assert_eq!(index.status, 200, "no front end at {app}/");
    let csp = index.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let dir = shots(d.host.as_str());
    let b = Browser::start(1280, 900);

    // Sign-up shows each region, where its data lives ...
    b.goto(&format!("{app}/?signup"));
    b.wait_text_css("form", "Singapore");
    let regions = b.wait_text_css("fieldset", "UAE");
    assert!(regions.contains("Pakistan"), "{regions}");
    // ... and how long each keeps a deleted record (regions.toml).
    assert!(
        regions.contains("kept 25 years after the last visit")
            && regions.contains("purged 30 days after deletion"),
        "{regions}"
    );
    b.fill("#su-clinic", "Day Clinic");
    b.fill("#su-name", "Sana Malik");
    b.fill("#su-email", OWNER);
    b.fill("#su-password", PASSWORD);
    all_labelled(&b, "sign-up");
    shot(&b, &dir, "1-sign-up.png");
    b.click_button("Create the clinic");
    let notice = b.wait_text_css(".notice", "clinic id is");
    let id = notice
        .split_whitespace()
        .find(|w| w.starts_with("pk_"))
        .expect("clinic id in the notice")
        .trim_end_matches(':')
        .to_owned();
    let clinic = Clinic {
        id: id.clone(),
        region: "pk".into(),
        base: app.clone(),
        owner_id: String::new(),
        owner_email: OWNER.into(),
    };

    // First login: enrolment is demanded, with a QR code drawn in the page.
    log_in(&b, &clinic, OWNER, None, true);
    shot(&b, &dir, "2-enrolment.png");
    let owner_secret = enrol(&b, &clinic);
    // The next login asks for a code.
    log_out(&b);
    owner_logs_in(&b, &clinic, &owner_secret);

    // Staff.
    b.click_button("Staff");
    for (name, email, role) in [
        ("Dr Imran Haider", DOCTOR, "doctor"),
        ("Hina Baig", DESK, "receptionist"),
    ] {
        b.fill("#s-name", name);
        b.fill("#s-email", email);
        b.select("#s-role", role);
        b.fill("#s-password", PASSWORD);
        b.click_button("Add");
        b.wait_text_css("table", email);
    }
    all_labelled(&b, "staff");
    shot(&b, &dir, "3-staff.png");

    // A patient; a wrong date is refused next to the form, then fixed.
    b.click_button("Patients");
    b.click_button("New patient");
    b.fill("#p-name", PATIENT);
    b.set_value("#p-dob", "2999-01-01");
    b.fill("#p-phone", "0321 5550101");
    b.click_button("Register patient");
    let error = b.wait_text_css("form .error", "");
    assert!(error.to_lowercase().contains("dob"), "{error}");
    b.set_value("#p-dob", "1988-06-15");
    b.click_button("Register patient");
    b.wait_text_css("h1#record-title", PATIENT);
    all_labelled(&b, "new patient");
    shot(&b, &dir, "4-patient.png");

    // Booking today at 09:00 with the doctor; a second booking of the same
    // slot gets the conflict message.
    b.click_button("Schedule");
    for round in 0..2 {
        b.fill("#book-patient", "Mehw");
        b.click_button(&format!("{PATIENT} · 1988-06-15"));
        b.select_label("#book-who", "Dr Imran Haider (doctor)");
        b.set_value("#book-start", "09:00");
        b.click_button("Book");
        if round == 0 {
            b.wait_text_css(".notice", "Booked");
        } else {
            let e = b.wait_text_css("form .error", "");
            assert!(!e.is_empty(), "no conflict message");
        }
    }
    b.wait_text_css("table", PATIENT);
    b.click_button("Arrived");
    b.wait_text_css("td.status", "arrived");
    b.click_button("Completed");
    b.wait_text_css("td.status", "completed");
    all_labelled(&b, "schedule");
    shot(&b, &dir, "5-schedule.png");
    b.resize(390, 844);
    shot(&b, &dir, "5-schedule-phone.png");
    b.resize(1280, 900);
    log_out(&b);

    // The doctor enrols, finds the patient and writes a note.
    log_in(&b, &clinic, DOCTOR, None, true);
    enrol(&b, &clinic);
    b.click_button("Patients");
    b.fill("#patient-search", "qureshi");
    b.click_button(PATIENT);
    b.wait_text_css("h1#record-title", PATIENT);
    b.click_button("Notes");
    b.fill("#c-notes-text", NOTE);
    b.click_button("Save");
    b.wait_text_css("ul.entries", NOTE);
    all_labelled(&b, "notes");
    shot(&b, &dir, "6-notes.png");
    log_out(&b);

    // The receptionist sees the patient but no clinical tab at all.
    log_in(&b, &clinic, DESK, None, false);
    b.click_button("Patients");
    b.fill("#patient-search", "0321 5550101");
    b.click_button(PATIENT);
    b.wait_text_css("h1#record-title", PATIENT);
    let tabs = b.wait_text_css(".tabs", "Details");
    for clinical in ["Conditions", "Prescriptions", "Notes", "Timeline"] {
        assert!(
            !tabs.contains(clinical),
            "the receptionist sees {clinical}: {tabs}"
        );
    }
    assert!(!b.body_text().contains(NOTE));
    log_out(&b);

    // The receptionist forgot the password: the owner resets it (a wrong
    // code first, which the owner is told of on signing in), the
    // receptionist signs in with the temporary one and must choose another.
    clinic.advance(31);
    b.wait_text_css("h2#login-title", "Log in");
    b.fill("#f-clinic-id", &clinic.id);
    b.fill("#f-email", OWNER);
    b.fill("#f-password", &format!("{PASSWORD}{ENTER}"));
    let wrong = format!(
        "{:06}",
        (totp_code(&owner_secret, clinic.now())
            .parse::<u32>()
            .unwrap_or(0)
            + 1)
            % 1_000_000
    );
    b.fill("#f-code", &format!("{wrong}{ENTER}"));
    b.wait_text_css("form .error", "");
    b.fill(
        "#f-code",
        &format!("{}{ENTER}", totp_code(&owner_secret, clinic.now())),
    );
    b.wait_for("header nav");
    b.wait_text_css(".banner.notice", "1 wrong two-factor code");
    b.click_button("Dismiss");
    b.wait_gone(".banner.notice");
    b.click_button("Staff");
    b.click("button[aria-label='Reset the password of Hina Baig']");
    let issued = b.wait_text_css(".notice", "Temporary password for Hina Baig");
    let temporary = b.wait_text_css(".notice code", "");
    assert!(
        temporary.len() >= 12 && issued.contains(&temporary),
        "{issued}"
    );
    all_labelled(&b, "staff after a reset");
    log_out(&b);
    b.fill("#f-clinic-id", &clinic.id);
    b.fill("#f-email", DESK);
    b.fill("#f-password", &format!("{temporary}{ENTER}"));
    b.wait_text_css("h1", "Choose a new password");
    all_labelled(&b, "new password");
    b.fill("#f-temporary-password", &temporary);
    b.fill("#f-new-password", &format!("{PASSWORD}-new"));
    b.click_button("Save password");
    b.wait_for("header nav");
    log_out(&b);

    // The owner: the patient's timeline shows the doctor's note; the audit
    // chain verifies; the export holds the record.
    owner_logs_in(&b, &clinic, &owner_secret);
    b.click_button("Patients");
    b.fill("#patient-search", "mehwish");
    b.click_button(PATIENT);
    b.click_button("Timeline");
    b.wait_text_css("[role=tabpanel] table", "note.create");
    shot(&b, &dir, "7-timeline.png");
    b.click_button("Audit");
    b.wait_text_css("#chain-status", "Chain verified");
    shot(&b, &dir, "8-audit.png");
    b.click_button("Clinic");
    b.wait_for("#export-json");
    let export = b.execute_async(
        "const done = arguments[arguments.length - 1];
         fetch(document.getElementById('export-json').getAttribute('href'))
           .then(r => r.text().then(t => done([r.status, t])))
           .catch(e => done([0, String(e)]));",
    );
    assert_eq!(export[0], 200, "{export}");
    let text = export[1].as_str().unwrap_or("");
    assert!(
        text.contains(PATIENT) && text.contains(NOTE),
        "the export lacks the day's records"
    );
    // The clinic page: role settings, support access, deletion and cancel.
    let (_, staff_secret) = d.add_platform_staff("pk", "support", "agent@day.example");
    let staff = Client::new(&app);
    let r = staff.post(
        "/api/v1/support/login",
        serde_json::json!({"email": "agent@day.example", "password": PASSWORD, "code": totp_code(&staff_secret, amanah_e2e::unix_now())}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let staff = staff.with_bearer(r.body["token"].as_str().expect("staff token"));
    let r = staff.post(
        "/api/v1/support/access-requests",
        serde_json::json!({"clinic": clinic.id, "ticket": "T-4711", "reason": "printer settings"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let request = r.body["id"].as_str().expect("request id").to_owned();
    b.click_button("Schedule");
    b.click_button("Clinic");
    b.wait_text_css("table[aria-label='Support access requests']", "T-4711");
    b.click_button("Approve");
    b.wait_text_css("table[aria-label='Support access requests']", "approved");
    // A receptionist loses "patient write" and gets it back.
    b.wait_for("fieldset.card input[type=checkbox]");
    let before =
        b.execute("return document.querySelectorAll('fieldset.card input:checked').length;");
    b.click_button("Restore the defaults");
    b.wait_text_css(".notice", "Saved");
    let after =
        b.execute("return document.querySelectorAll('fieldset.card input:checked').length;");
    assert_eq!(before, after, "defaults were already in place");
    all_labelled(&b, "clinic");
    shot(&b, &dir, "9-clinic.png");
    b.fill("#delete-password", PASSWORD);
    b.click_button("Delete the clinic");
    let status = b.wait_text_css("#deletion-status", "erased for good after");
    assert!(status.contains("scheduled for deletion"), "{status}");
    shot(&b, &dir, "10-deletion.png");
    b.click_button("Cancel the deletion");
    b.wait_for("#delete-password");

    // Support, under the approved ticket: the yellow banner on every page,
    // and the app states the ticket as the purpose of every request.
    let r = staff.post_empty(&format!(
        "/api/v1/support/access-requests/{request}/session"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("support session cookie");
    log_out(&b);
    b.add_set_cookie(&cookie);
    b.goto(&format!("{app}/"));
    let banner = b.wait_text_css(".banner.support", "T-4711");
    assert!(banner.contains("minutes left"), "{banner}");
    b.click_button("Patients");
    b.wait_text_css("table", PATIENT);
    b.wait_text_css(".banner.support", "T-4711");
    shot(&b, &dir, "11-support.png");

    // Idle: the page's clock is moved 14 minutes on; the warning comes
    // before the 15-minute logout, and "Stay logged in" clears it.
    b.execute("const real = Date.now; Date.now = () => real() + 14 * 60000;");
    b.wait_text_css(".banner.idle", "logged out");
    shot(&b, &dir, "12-idle-warning.png");
    b.click_button("Stay logged in");
    b.wait_gone(".banner.idle");
    eprintln!("screenshots in {}", dir.display());
}
