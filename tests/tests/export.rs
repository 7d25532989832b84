//! `GET /api/v1/export`: a seeded clinic comes out whole and decrypted, as a
//! streamed zip of CSVs and as one JSON document; only the owner may take
//! it; taking it is audited; bad input is refused and changes nothing.

use std::collections::HashMap;
use std::io::Read;

use amanah_e2e::{Client, Deployment, PASSWORD};
use serde_json::{json, Value};

/// More patients than one export page holds, so paging is exercised.
const PATIENTS: usize = 230;

struct Seeded {
    patients: HashMap<String, Value>,
    deleted: String,
    condition: String,
    drug: String,
    note: String,
    reason: String,
}

fn seed(owner: &Client, doctor: &Client, practitioner: &str) -> Seeded {
    let mut patients = HashMap::new();
    for i in 0..PATIENTS {
        let body = if i == 0 {
            // Quotes, commas, Urdu script and a leading `+`: the CSV must
            // quote, keep UTF-8 and defuse what a spreadsheet would run.
            json!({"name": "عائشہ \"Ayesha\" Khan, Jr", "dob": "1990-01-02", "sex": "female",
                   "phone": "+92 300 1234567", "address": "House 5, Street \"9\", F-7/2 Islamabad",
                   "national_id": "61101-1234567-1", "email": "ayesha@example.pk"})
        } else {
            json!({"name": format!("Export Person {i:03}"), "dob": "1985-06-07"})
        };
        let id = owner.create_patient(body.clone());
        patients.insert(id, body);
    }
    let mut ids: Vec<&String> = patients.keys().collect();
    ids.sort();
    let (first, deleted) = (ids[0].clone(), ids[1].clone());
    let condition = "Hypertension, stage \"2\"".to_owned();
    let drug = "Amlodipine besylate".to_owned();
    let note = "Multi-line note\nsecond line, with a comma".to_owned();
    // A formula, as an attacker at the front desk might type it.
    let reason = "=HYPERLINK(\"http://evil.example\",\"BP review\")".to_owned();
    let base = format!("/api/v1/patients/{first}");
    let r = doctor.post(
        &format!("{base}/conditions"),
        json!({"display": condition, "status": "active"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = doctor.post(
        &format!("{base}/prescriptions"),
        json!({"drug": drug, "dose": "5 mg", "route": "oral", "frequency": "once daily"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = doctor.post(
        &format!("{base}/notes"),
        json!({"kind": "progress", "text": note}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = owner.post(
        "/api/v1/appointments",
        json!({"patient_id": first, "practitioner_id": practitioner,
               "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T09:20:00Z", "reason": reason}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        owner.delete(&format!("/api/v1/patients/{deleted}")).status,
        202
    );
    Seeded {
        patients,
        deleted,
        condition,
        drug,
        note,
        reason,
    }
}

fn unzip(raw: &[u8]) -> HashMap<String, Vec<HashMap<String, String>>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(raw)).expect("a zip");
    let mut out = HashMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let name = f.name().expect("entry name").to_string();
        let mut text = String::new();
        f.read_to_string(&mut text).expect("UTF-8 CSV");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().expect("header row").clone();
        let rows = reader
            .records()
            .map(|r| {
                let r = r.expect("record");
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect();
        out.insert(name, rows);
    }
    out
}

#[test]
fn an_export_holds_every_record_decrypted() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Export Clinic", "owner@export.pk");
    let doctor_id = clinic.add_staff(&owner, "doctor", "doc@export.pk");
    clinic.add_staff(&owner, "nurse", "nurse@export.pk");
    clinic.add_staff(&owner, "receptionist", "desk@export.pk");
    let mut doctor = clinic.login("doc@export.pk", PASSWORD);
    doctor.enrol_totp(&clinic, PASSWORD);
    let seeded = seed(&owner, &doctor, &doctor_id);

    // JSON: one document, every table, every value decrypted.
    let r = owner.get("/api/v1/export?format=json");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("content-length").is_none(), "streamed, not sized");
    let disposition = r.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with(&format!(
            "attachment; filename=\"amanah-export-{}-",
            clinic.id
        )),
        "{disposition}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let doc = &r.body;
    assert_eq!(doc["clinic_id"], clinic.id.as_str());
    let t = &doc["tables"];
    assert_eq!(t["clinic"][0]["name"], "Export Clinic");
    let patients = t["patients"].as_array().expect("patients");
    assert_eq!(patients.len(), PATIENTS, "deleted ones included");
    for p in patients {
        let id = p["id"].as_str().unwrap();
        let seeded_p = &seeded.patients[id];
        for (k, v) in seeded_p.as_object().unwrap() {
            assert_eq!(&p[k], v, "patient {id} field {k}");
        }
        assert_eq!(p["archived_at"].is_string(), id == seeded.deleted, "{p}");
    }
    assert_eq!(t["conditions"][0]["display"], seeded.condition.as_str());
    assert_eq!(t["prescriptions"][0]["drug"], seeded.drug.as_str());
    assert_eq!(t["notes"][0]["text"], seeded.note.as_str());
    assert_eq!(t["appointments"][0]["reason"], seeded.reason.as_str());
    let users = t["users"].as_array().unwrap();
    assert_eq!(users.len(), 4);
    assert!(users.iter().any(|u| u["email"] == "doc@export.pk"));
    for u in users {
        let keys: Vec<&String> = u.as_object().unwrap().keys().collect();
        assert!(
            !keys
                .iter()
                .any(|k| k.contains("password") || k.contains("totp")),
            "secrets never leave: {keys:?}"
        );
    }
    // The export is itself in the trail it exports, with the owner's name on it.
    let audit = t["audit"].as_array().unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last["action"], "clinic.export");
    assert_eq!(last["actor"], clinic.owner_id.as_str());
    assert_eq!(
        last["resource"],
        format!("clinic/{}/export.json", clinic.id)
    );
    assert!(audit.len() > PATIENTS, "every patient.create is there");
    assert_eq!(owner.audit_entries() as usize, audit.len());

    // CSV: a zip of one CSV per table, the same rows.
    let r = owner.get("/api/v1/export?format=csv");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert!(r.header("content-length").is_none(), "streamed, not sized");
    let files = unzip(&r.raw);
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "allergies.csv",
            "appointments.csv",
            "audit.csv",
            "clinic.csv",
            "conditions.csv",
            "notes.csv",
            "patients.csv",
            "prescriptions.csv",
            "role_settings.csv",
            "users.csv",
            "vitals.csv"
        ]
    );
    let rows = &files["patients.csv"];
    assert_eq!(rows.len(), PATIENTS);
    for row in rows {
        let seeded_p = &seeded.patients[&row["id"]];
        for (k, v) in seeded_p.as_object().unwrap() {
            let v = v.as_str().unwrap();
            let shown = if v.starts_with('+') {
                format!("'{v}")
            } else {
                v.to_owned()
            };
            assert_eq!(row[k], shown, "patient {} field {k}", row["id"]);
        }
    }
    assert_eq!(files["notes.csv"][0]["text"], seeded.note);
    assert_eq!(files["conditions.csv"][0]["display"], seeded.condition);
    assert_eq!(
        files["appointments.csv"][0]["reason"],
        format!("'{}", seeded.reason)
    );
    let csv_audit = &files["audit.csv"];
    assert_eq!(
        csv_audit.len(),
        audit.len() + 2,
        "{:?}",
        &csv_audit[csv_audit.len() - 3..]
    );
    assert_eq!(
        files["audit.csv"].last().unwrap()["resource"],
        format!("clinic/{}/export.csv", clinic.id)
    );

    // No plaintext of what was exported reached the server's logs.
    for log in &d.logs {
        let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
        assert!(!text.contains("Ayesha"), "a name in {log:?}");
        assert!(!text.contains("Amlodipine"), "a drug in {log:?}");
    }
}

#[test]
fn only_the_owner_exports_and_bad_input_changes_nothing() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Export Rights", "owner@rights.pk");
    clinic.add_staff(&owner, "nurse", "nurse@rights.pk");
    clinic.add_staff(&owner, "receptionist", "desk@rights.pk");
    let nurse = clinic.login("nurse@rights.pk", PASSWORD);
    let desk = clinic.login("desk@rights.pk", PASSWORD);
    let pid = owner.create_patient(json!({"name": "Rights Person", "dob": "1970-01-01"}));

    // Another clinic's owner takes out their own clinic, and nothing of this
    // one; an owner of another region's clinic is sent to that region.
    let (other, other_owner, _) = d.ready_clinic("pk", "Export Elsewhere", "owner@else.pk");
    let r = other_owner.get("/api/v1/export?format=json");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["clinic_id"], other.id.as_str());
    assert_eq!(r.body["tables"]["patients"], json!([]));
    let text = String::from_utf8_lossy(&r.raw);
    for leak in [
        clinic.id.as_str(),
        pid.as_str(),
        "Rights Person",
        "owner@rights.pk",
    ] {
        assert!(
            !text.contains(leak),
            "another clinic's {leak} in the export"
        );
    }
    let (_, far_owner, _) = d.ready_clinic("ae", "Export Far", "owner@far.ae");
    Client::new(d.url("pk"))
        .with_bearer(far_owner.token.as_deref().unwrap())
        .get("/api/v1/export?format=json")
        .assert_error(421, "wrong_region");

    for who in [&nurse, &desk] {
        who.get("/api/v1/export?format=json")
            .assert_error(403, "forbidden");
    }
    d.client("pk")
        .get("/api/v1/export?format=json")
        .assert_error(401, "unauthenticated");

    let before = owner.audit_entries();
    for q in [
        "",
        "?format=xml",
        "?format=csv&format=json",
        "?format=json&x=1",
    ] {
        let r = owner.get(&format!("/api/v1/export{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{q}: {}", r.body);
    }
    // Bad input wrote nothing: only the first count's own entry is new.
    assert_eq!(owner.audit_entries(), before + 1);
    let r = owner.get("/api/v1/audit?action=clinic.export");
    let denied: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        denied,
        ["denied", "denied"],
        "nurse and receptionist refused"
    );
}
