//! The benchmark data set, created through the API (so every row is
//! encrypted, indexed and audited as in production): per clinic an owner, a
//! doctor and a receptionist, 1,000 patients, a month of appointments for
//! two practitioners, notes and prescriptions.

use serde_json::{json, Value};

use crate::api::{self, login_and_enrol, str_of, Api, Result, User};

pub const PASSWORD: &str = "Saffron-Tea-Window-42";

const FIRST: [&str; 20] = [
    "Ayesha", "Fatima", "Zainab", "Maryam", "Hira", "Sana", "Amna", "Bushra", "Noor", "Sadia",
    "Ahmed", "Bilal", "Hamza", "Usman", "Imran", "Faisal", "Tariq", "Kamran", "Omar", "Yusuf",
];
const LAST: [&str; 25] = [
    "Khan", "Siddiqui", "Qureshi", "Malik", "Chaudhry", "Sheikh", "Butt", "Raza", "Hussain",
    "Iqbal", "Mirza", "Abbasi", "Baig", "Javed", "Aslam", "Farooq", "Hashmi", "Rana", "Bhatti",
    "Awan", "Mansoor", "Nadeem", "Saleem", "Zaidi", "Rehman",
];

/// How much to create per clinic.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub patients: usize,
    /// Days of appointments (centred on today).
    pub days: i64,
    /// Appointments per practitioner per day (two practitioners).
    pub per_day: i64,
    pub notes: usize,
    pub prescriptions: usize,
}

/// The data set: 1,000 patients and a month of activity.
pub const CLINIC: Size = Size {
    patients: 1000,
    days: 30,
    per_day: 16,
    notes: 500,
    prescriptions: 300,
};

/// A seeded clinic: what the load generator needs.
pub struct Seeded {
    pub region: String,
    pub clinic: String,
    pub doctor: User,
    pub doctor_email: String,
    pub patients: Vec<String>,
    /// Search terms that match seeded patients (surnames, first-name
    /// prefixes, phone numbers).
    pub words: Vec<String>,
    /// Start of the seeded month (Unix seconds, midnight UTC).
    pub month_start: i64,
    pub writes: usize,
}

pub fn rfc3339(unix: i64) -> String {
    amanah_functions::clock::rfc3339(unix)
}

fn patient(i: usize) -> Value {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    let middle = LAST[(i * 7 + 3) % LAST.len()];
    json!({
        "name": format!("{first} {middle} {last}"),
        "dob": format!("{}-{:02}-{:02}", 1940 + (i % 80), 1 + i % 12, 1 + i % 28),
        "sex": if i % 2 == 0 { "female" } else { "male" },
        "phone": format!("+92 3{:02}-{:07}", i % 50, 1_000_000 + i * 37),
        "national_id": format!("35202-{:07}-{}", 1_000_000 + i, i % 10),
        "address": format!("House {}, Street {}, Lahore", 1 + i % 300, 1 + i % 40),
    })
}

/// Signs a clinic up in `region` and fills it.
pub fn clinic(base: &str, region: &str, n: usize, size: Size) -> Result<Seeded> {
    let anon = Api::new(base);
    let tag = format!("{region}{n}-{}", api::unix_now());
    let owner_email = format!("owner-{tag}@bench.example");
    let v = anon.post(
        "/api/v1/clinics",
        json!({"name": format!("Bench Clinic {region} {n}"), "region": region,
               "owner": {"name": "Dr Bench Owner", "email": owner_email, "password": PASSWORD}}),
        201,
    )?;
    let clinic = str_of(&v, &["clinic", "id"])?;
    let owner = login_and_enrol(base, &clinic, &owner_email, PASSWORD)?;
    let mut writes = 1;
    let staff = |role: &str| -> Result<String> {
        let email = format!("{role}-{tag}@bench.example");
        owner.api.post(
            "/api/v1/users",
            json!({"name": format!("Bench {role}"), "email": email, "role": role, "password": PASSWORD}),
            201,
        )?;
        Ok(email)
    };
    let doctor_email = staff("doctor")?;
    staff("receptionist")?;
    writes += 2;
    let doctor = login_and_enrol(base, &clinic, &doctor_email, PASSWORD)?;

    let mut patients = Vec::with_capacity(size.patients);
    for i in 0..size.patients {
        let v = owner.api.post("/api/v1/patients", patient(i), 201)?;
        patients.push(str_of(&v, &["id"])?);
    }
    writes += size.patients;

    let now = api::unix_now();
    let today = now - now.rem_euclid(86_400);
    let month_start = today - (size.days / 2) * 86_400;
    let mut k = 0;
    for day in 0..size.days {
        for (who, practitioner) in [(&owner, &owner.id), (&owner, &doctor.id)] {
            for slot in 0..size.per_day {
                // 09:00 onwards, 20 minutes each, 30 minutes apart.
                let start = month_start + day * 86_400 + 9 * 3600 + slot * 1800;
                let p = &patients[(k * 13) % patients.len()];
                k += 1;
                who.api.post(
                    "/api/v1/appointments",
                    json!({"patient_id": p, "practitioner_id": practitioner,
                           "start": rfc3339(start), "end": rfc3339(start + 1200), "reason": "Follow-up"}),
                    201,
                )?;
                writes += 1;
            }
        }
    }
    for i in 0..size.notes {
        let p = &patients[(i * 7) % patients.len()];
        doctor.api.post(
            &format!("/api/v1/patients/{p}/notes"),
            json!({"kind": "progress", "text": "Reviewed; blood pressure 130/85; continue current plan and review in four weeks."}),
            201,
        )?;
    }
    for i in 0..size.prescriptions {
        let p = &patients[(i * 11) % patients.len()];
        doctor.api.post(
            &format!("/api/v1/patients/{p}/prescriptions"),
            json!({"drug": "Amlodipine", "dose": "5 mg", "route": "oral", "frequency": "once daily", "duration": "30 days"}),
            201,
        )?;
    }
    writes += size.notes + size.prescriptions;
    let mut words: Vec<String> = LAST.iter().map(|s| s.to_lowercase()).collect();
    words.extend(FIRST.iter().map(|s| s[..3].to_lowercase()));
    words.extend((0..20).map(|i| {
        patient(i * 41)["phone"]
            .as_str()
            .unwrap_or_default()
            .replace([' ', '+', '-'], "")
    }));
    Ok(Seeded {
        region: region.to_owned(),
        clinic,
        doctor,
        doctor_email,
        patients,
        words,
        month_start,
        writes,
    })
}

/// `clinics` clinics in each region, each seeded by its own thread.
pub fn all(regions: &[(String, String)], clinics: usize, size: Size) -> Result<Vec<Seeded>> {
    let handles: Vec<_> = regions
        .iter()
        .flat_map(|(region, base)| {
            (0..clinics).map(move |n| {
                let (region, base) = (region.clone(), base.clone());
                std::thread::spawn(move || clinic(&base, &region, n, size))
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| "a seeding thread panicked".to_owned())?
        })
        .collect()
}
