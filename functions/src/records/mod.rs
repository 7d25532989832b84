//! The tables, one file each: a table's schema steps, its columns and what
//! kind each is (sealed, a blind-index term, plain), its SQL, and the
//! conversion between its rows and the structs handlers use. Nothing outside
//! `records/` (and the operator's `ops/`, which copies whole databases)
//! writes SQL on a clinic's tables.
//!
//! Every table is described once by a [`Table`]; what several rules need
//! to know about all tables is derived from those descriptions here:
//! the migrations of each database ([`crate::store::schema`]), the columns
//! a data key rotation re-seals ([`sealed`]), what an export takes out
//! ([`exported`]), which rows name a patient ([`naming_patients`]) and what
//! a backup counts ([`counted`]). Adding an encrypted table is one file
//! here and one line in [`CLINIC`] (or [`DIRECTORY`]).
//!
//! [`Vault`] is a clinic's keys at work (seal, open, blind-index terms), the
//! one way records touch ciphertext.

pub(crate) mod append_turn;
pub(crate) mod appointments;
pub mod audit;
pub(crate) mod bulk_exports;
pub(crate) mod clinic;
pub(crate) mod clinical;
pub(crate) mod directory;
pub(crate) mod idempotency;
pub(crate) mod known_addresses;
pub(crate) mod patients;
pub(crate) mod role_settings;
pub(crate) mod sessions;
mod table;
pub(crate) mod users;
mod vault;

pub use table::{Column, Kind, Table};
pub(crate) use vault::Vault;

pub use crate::store::RowExt;

/// A clinic's own database, in dependency order (the export's order too).
pub const CLINIC: &[&Table] = &[
    &clinic::TABLE,
    &users::TABLE,
    &role_settings::TABLE,
    &sessions::TABLE,
    &patients::TABLE,
    &patients::TERMS,
    &clinical::CONDITIONS.table,
    &clinical::PRESCRIPTIONS.table,
    &clinical::NOTES.table,
    &clinical::ALLERGIES.table,
    &clinical::VITALS.table,
    &appointments::TABLE,
    &idempotency::TABLE,
    &known_addresses::TABLE,
    &bulk_exports::TABLE,
    &bulk_exports::FILES,
    &append_turn::TABLE,
    &audit::TABLE,
];

/// A region's directory: non-personal facts and the platform's own records.
pub const DIRECTORY: &[&Table] = &[
    &directory::clinics::TABLE,
    &directory::clinic_keys::TABLE,
    &directory::throttle::TABLE,
    &directory::test_clock::TABLE,
    &directory::staff::TABLE,
    &directory::staff::SESSIONS,
    &directory::access_requests::TABLE,
    &directory::support_sessions::TABLE,
    &audit::PLATFORM,
    &directory::region_keys::TABLE,
];

/// Tables with field ciphertext a data key rotation's sweep re-seals.
pub fn sealed() -> impl Iterator<Item = &'static Table> {
    CLINIC
        .iter()
        .copied()
        .filter(|t| t.swept_columns().next().is_some())
}

/// Tables an export takes out, in order.
pub fn exported() -> impl Iterator<Item = &'static Table> {
    CLINIC.iter().copied().filter(|t| t.export)
}

/// Tables whose rows name a patient, with that column.
pub fn naming_patients() -> impl Iterator<Item = (&'static str, &'static str)> {
    CLINIC.iter().filter_map(|t| t.patient.map(|c| (t.name, c)))
}

/// Tables whose row counts a backup records and a restore must match.
pub fn counted() -> impl Iterator<Item = &'static str> {
    CLINIC.iter().filter(|t| t.counted).map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(column, type)` of each column a table's schema creates or adds.
    fn schema_columns(t: &Table) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (_, sql) in t.schema {
            let mut inside = false;
            for line in sql.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    inside = rest.split_whitespace().next() == Some(t.name);
                    continue;
                }
                if let Some(rest) =
                    line.strip_prefix(&format!("ALTER TABLE {} ADD COLUMN ", t.name))
                {
                    let mut w = rest.split_whitespace();
                    if let (Some(c), Some(ty)) = (w.next(), w.next()) {
                        out.push((c.to_owned(), ty.trim_end_matches(';').to_owned()));
                    }
                    continue;
                }
                if line.starts_with(')') {
                    inside = false;
                }
                if inside {
                    if let Some((c, ty)) = line.split_once(' ') {
                        if !matches!(c, "PRIMARY" | "CHECK" | "UNIQUE" | "FOREIGN") {
                            out.push((c.to_owned(), ty.to_owned()));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_blob_column_is_described_and_every_sealed_column_is_a_blob() {
        let mut blobs = 0;
        for t in CLINIC.iter().chain(DIRECTORY) {
            let cols = schema_columns(t);
            assert!(
                !cols.is_empty(),
                "{}: the schema parser found its columns",
                t.name
            );
            for (c, ty) in &cols {
                if ty.starts_with("BLOB") {
                    blobs += 1;
                    let described = t.columns.iter().find(|d| d.name == c);
                    assert!(
                        described.is_some_and(|d| matches!(
                            d.kind,
                            Kind::Sealed
                                | Kind::SealedSecret
                                | Kind::SealedOnce
                                | Kind::Hex
                                | Kind::Secret
                        )),
                        "{}.{c}: a BLOB must be described as sealed, a hash or a secret",
                        t.name
                    );
                }
            }
            for d in t.columns {
                let found = cols.iter().find(|(c, _)| c == d.name);
                assert!(
                    found.is_some(),
                    "{}.{} is not a column of its schema",
                    t.name,
                    d.name
                );
                if matches!(d.kind, Kind::Sealed | Kind::SealedSecret | Kind::SealedOnce) {
                    assert!(
                        found.is_some_and(|(_, ty)| ty.starts_with("BLOB")),
                        "{}.{} is sealed but not a BLOB",
                        t.name,
                        d.name
                    );
                }
            }
            assert!(
                t.columns.iter().any(|c| c.name == t.row_key) || !t.export,
                "{}: an exported table shows its row key",
                t.name
            );
            for (i, a) in t.columns.iter().enumerate() {
                assert!(
                    t.columns[i + 1..].iter().all(|b| b.name != a.name),
                    "{}.{}",
                    t.name,
                    a.name
                );
            }
        }
        assert!(blobs > 25, "the parser found the schemas' BLOBs");
    }

    #[test]
    fn derived_lists_are_the_ones_the_rules_rely_on() {
        let sealed: Vec<&str> = sealed().map(|t| t.name).collect();
        assert_eq!(
            sealed,
            [
                "clinic",
                "users",
                "patients",
                "conditions",
                "prescriptions",
                "notes",
                "allergies",
                "vitals",
                "appointments",
                "idempotency",
                "bulk_export_files"
            ]
        );
        let exported: Vec<&str> = exported().map(|t| t.name).collect();
        assert_eq!(
            exported,
            [
                "clinic",
                "users",
                "role_settings",
                "patients",
                "conditions",
                "prescriptions",
                "notes",
                "allergies",
                "vitals",
                "appointments",
                "audit"
            ]
        );
        let counted: Vec<&str> = counted().collect();
        assert_eq!(
            counted,
            [
                "users",
                "patients",
                "patient_terms",
                "conditions",
                "prescriptions",
                "notes",
                "allergies",
                "vitals",
                "appointments",
                "audit"
            ]
        );
        for db in [CLINIC, DIRECTORY] {
            for (i, t) in db.iter().enumerate() {
                assert!(
                    db[i + 1..].iter().all(|o| o.name != t.name),
                    "{} twice",
                    t.name
                );
            }
        }
    }
}
