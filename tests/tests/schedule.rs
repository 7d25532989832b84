//! The schedule: booking with overlap detection per practitioner (409),
//! status changes, day and week listings with patient names decrypted.

use amanah_e2e::{Client, Deployment, PASSWORD};
use serde_json::{json, Value};

fn at(hm: &str) -> String {
    format!("2030-03-04T{hm}:00Z")
}

fn book(c: &Client, patient: &str, practitioner: &str, from: &str, to: &str) -> amanah_e2e::Resp {
    c.post(
        "/api/v1/appointments",
        json!({"patient_id": patient, "practitioner_id": practitioner,
               "start": at(from), "end": at(to), "reason": "Follow-up visit"}),
    )
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn booking_overlaps_status_and_listing() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Schedule Clinic", "owner@sched.pk");
    let doctor = clinic.add_staff(&owner, "doctor", "doc@sched.pk");
    let nurse = clinic.add_staff(&owner, "nurse", "nurse@sched.pk");
    let desk_id = clinic.add_staff(&owner, "receptionist", "desk@sched.pk");
    let desk = clinic.login("desk@sched.pk", PASSWORD);
    let amna = desk.create_patient(json!({"name": "Amna Siddiqui", "dob": "1985-01-01"}));
    let omar = desk.create_patient(json!({"name": "Omar Farooq", "dob": "1979-02-02"}));

    // The receptionist books; names come back decrypted.
    let first = book(&desk, &amna, &doctor, "09:00", "09:30");
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["patient_name"], "Amna Siddiqui");
    assert_eq!(first.body["status"], "booked");
    assert_eq!(first.body["reason"], "Follow-up visit");
    let first_id = first.body["id"].as_str().expect("id").to_owned();

    // Overlap with the same practitioner: 409, and nothing booked.
    book(&desk, &omar, &doctor, "09:15", "09:45").assert_error(409, "conflict");
    book(&desk, &omar, &doctor, "08:45", "10:00").assert_error(409, "conflict");
    // Back to back, or another practitioner at the same time: fine.
    let second = book(&desk, &omar, &doctor, "09:30", "10:00");
    assert_eq!(second.status, 201, "{}", second.body);
    let second_id = second.body["id"].as_str().expect("id").to_owned();
    assert_eq!(book(&desk, &omar, &nurse, "09:00", "09:30").status, 201);

    // Moving one onto the other: 409; a cancelled booking frees the time.
    desk.patch(
        &format!("/api/v1/appointments/{second_id}"),
        json!({"start": at("09:20")}),
    )
    .assert_error(409, "conflict");
    let cancelled = desk.patch(
        &format!("/api/v1/appointments/{first_id}"),
        json!({"status": "cancelled"}),
    );
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(book(&desk, &omar, &doctor, "09:00", "09:30").status, 201);
    let arrived = desk.patch(
        &format!("/api/v1/appointments/{second_id}"),
        json!({"status": "arrived"}),
    );
    assert_eq!(arrived.body["status"], "arrived");

    // Bad input: 400 naming the field, nothing changed.
    for (body, field) in [
        (json!({"status": "finished"}), "status"),
        (json!({"end": at("09:00")}), "end"),
        (json!({"start": "tomorrow"}), "start"),
        (json!({"status": null}), "status"),
    ] {
        let r = desk.patch(&format!("/api/v1/appointments/{second_id}"), body);
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["field"], field);
    }
    let r = book(&desk, &amna, &desk_id, "11:00", "11:30");
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["field"], "practitioner_id");
    let r = book(
        &desk,
        "pat_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        &doctor,
        "11:00",
        "11:30",
    );
    assert_eq!(r.body["error"]["field"], "patient_id");
    book(&desk, &amna, &doctor, "12:00", "11:00").assert_error(400, "invalid_request");

    // The day, for one practitioner and for all; ordered by start.
    let day = format!("from={}&to={}", at("00:00"), "2030-03-05T00:00:00Z");
    let all = desk.get(&format!("/api/v1/appointments?{day}"));
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(ids(&all.body).len(), 4);
    let starts: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let doc_day = desk.get(&format!("/api/v1/appointments?{day}&practitioner={doctor}"));
    assert_eq!(ids(&doc_day.body).len(), 3);
    assert!(doc_day.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["practitioner_id"] == doctor.as_str()));
    let week = desk.get("/api/v1/appointments?from=2030-03-02T00:00:00Z&to=2030-03-09T00:00:00Z");
    assert_eq!(ids(&week.body).len(), 4);
    let other_day =
        desk.get("/api/v1/appointments?from=2030-03-05T00:00:00Z&to=2030-03-06T00:00:00Z");
    assert_eq!(ids(&other_day.body).len(), 0);
    desk.get("/api/v1/appointments?from=2030-01-01T00:00:00Z&to=2030-03-01T00:00:00Z")
        .assert_error(400, "invalid_request");
    desk.get("/api/v1/appointments?to=2030-03-01T00:00:00Z")
        .assert_error(400, "invalid_request");

    // A deleted patient's bookings leave the listing.
    assert_eq!(
        owner.delete(&format!("/api/v1/patients/{amna}")).status,
        202
    );
    let after = desk.get(&format!("/api/v1/appointments?{day}"));
    assert!(after.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["patient_id"] != amna.as_str()));
}

#[test]
fn the_longest_booking_blocks_to_its_last_minute() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Long Clinic", "owner@long.pk");
    let nurse = clinic.add_staff(&owner, "nurse", "nurse@long.pk");
    let p = owner.create_patient(json!({"name": "Sana Malik", "dob": "1990-03-03"}));
    let q = owner.create_patient(json!({"name": "Bilal Raza", "dob": "1991-04-04"}));
    let on = |hm: &str| format!("2030-03-09T{hm}:00Z");
    let book = |patient: &str, from: &str, to: &str| {
        owner.post(
            "/api/v1/appointments",
            json!({"patient_id": patient, "practitioner_id": nurse, "start": on(from), "end": on(to)}),
        )
    };
    // 12 hours is the longest a booking may last; the overlap check looks
    // back exactly that far, so the booking's last half hour is still taken
    // and the minute it ends is free.
    assert_eq!(book(&p, "08:00", "20:00").status, 201);
    book(&q, "19:30", "20:30").assert_error(409, "conflict");
    book(&q, "07:30", "08:30").assert_error(409, "conflict");
    assert_eq!(book(&q, "20:00", "20:30").status, 201);
}

#[test]
fn parallel_bookings_of_one_slot_give_exactly_one() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("ae", "Busy Desk", "owner@desk.ae");
    let doctor = clinic.add_staff(&owner, "doctor", "doc@desk.ae");
    let pid = owner.create_patient(json!({"name": "Rush Patient", "dob": "1990-01-01"}));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (owner, pid, doctor) = (owner.clone(), pid.clone(), doctor.clone());
            std::thread::spawn(move || book(&owner, &pid, &doctor, "14:00", "14:30").status)
        })
        .collect();
    let mut statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses[0], 201);
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
}

/// `GET /api/v1/practitioners` (an addition to the API for booking: the
/// staff list is the owner's alone): every role that reads the schedule gets
/// the active owners, doctors and nurses by name and role, nothing more.
#[test]
fn practitioners_are_listed_for_booking_without_account_details() {
    let d = Deployment::start();
    let (clinic, owner, _) = d.ready_clinic("pk", "Booking Clinic", "owner@book.pk");
    let doctor = clinic.add_staff(&owner, "doctor", "doc@book.pk");
    let nurse = clinic.add_staff(&owner, "nurse", "nurse@book.pk");
    let desk_id = clinic.add_staff(&owner, "receptionist", "desk@book.pk");
    let gone = clinic.add_staff(&owner, "doctor", "gone@book.pk");
    let r = owner.patch(&format!("/api/v1/users/{gone}"), json!({"active": false}));
    assert_eq!(r.status, 200, "{}", r.body);
    let desk = clinic.login("desk@book.pk", PASSWORD);
    let r = desk.get("/api/v1/practitioners");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut listed = ids(&r.body);
    listed.sort();
    let mut want = vec![clinic.owner_id.clone(), doctor, nurse];
    want.sort();
    assert_eq!(listed, want, "{}", r.body);
    assert!(!listed.contains(&desk_id) && !listed.contains(&gone));
    for p in r.body["items"].as_array().expect("items") {
        let keys: Vec<&str> = p
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["id", "name", "role"], "{p}");
    }
    // Bad input changes nothing and says so.
    desk.get("/api/v1/practitioners?limit=x")
        .assert_error(400, "invalid_request");
}
