//! The schemas: one per clinic database, one per region directory.
//!
//! Every personal or clinical column is a BLOB of field ciphertext
//! ([`crate::crypto::field`]); search goes through blind-index terms.

use super::Migration;

/// The field-ciphertext columns of one table of a clinic database, and the
/// column each value is bound to (the row id of its associated data).
#[derive(Debug, Clone, Copy)]
pub struct SealedColumns {
    pub table: &'static str,
    pub row_key: &'static str,
    pub columns: &'static [&'static str],
}

/// Every field-ciphertext column of a clinic database that a data key
/// rotation's sweep re-seals. The audit trail's `reason` and `ip` are the
/// exception: they sit inside hash-chained, append-only rows and keep the
/// key version that sealed them for good (so old data key versions are
/// never destroyed while the clinic lives). A unit test holds this list to
/// the schema: a new BLOB column must be listed here or among the known
/// non-field blobs.
pub const SEALED: &[SealedColumns] = &[
    SealedColumns {
        table: "clinic",
        row_key: "id",
        columns: &["name"],
    },
    SealedColumns {
        table: "users",
        row_key: "id",
        columns: &["name", "email", "totp_secret", "totp_pending"],
    },
    SealedColumns {
        table: "patients",
        row_key: "id",
        columns: &[
            "name",
            "dob",
            "sex",
            "phone",
            "email",
            "address",
            "national_id",
        ],
    },
    SealedColumns {
        table: "conditions",
        row_key: "id",
        columns: &["display", "code", "onset", "status"],
    },
    SealedColumns {
        table: "prescriptions",
        row_key: "id",
        columns: &["drug", "dose", "route", "frequency", "duration", "notes"],
    },
    SealedColumns {
        table: "notes",
        row_key: "id",
        columns: &["kind", "text"],
    },
    SealedColumns {
        table: "appointments",
        row_key: "id",
        columns: &["reason"],
    },
    SealedColumns {
        table: "idempotency",
        row_key: "id",
        columns: &["reply"],
    },
];

/// The audit chain's table and its append-only triggers: the same in a
/// clinic's database and, as the platform audit stream, in the directory.
macro_rules! audit_table {
    () => {
        r#"
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    on_behalf_of TEXT,
    action TEXT NOT NULL,
    resource TEXT,
    patient_id TEXT,
    reason BLOB,
    ip BLOB,
    outcome TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
"#
    };
}

/// A clinic's own database.
pub const CLINIC: &[Migration] = &[
    Migration {
        version: 1,
        sql: concat!(
            r#"
CREATE TABLE clinic (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    name BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE users (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name BLOB NOT NULL,
    email BLOB NOT NULL,
    email_term BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('owner','doctor','nurse','receptionist')),
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    mfa_enabled INTEGER NOT NULL DEFAULT 0,
    totp_secret BLOB,
    totp_pending BLOB,
    totp_last_step INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('session','mfa')),
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE patients (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name BLOB NOT NULL,
    dob BLOB NOT NULL,
    sex BLOB,
    phone BLOB,
    email BLOB,
    address BLOB,
    national_id BLOB,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    purge_after INTEGER
);
CREATE TABLE patient_terms (
    term BLOB NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (term, patient_id)
) WITHOUT ROWID;
CREATE INDEX patient_terms_patient ON patient_terms(patient_id);
"#,
            audit_table!(),
            r#"CREATE INDEX audit_patient ON audit(patient_id, seq);
"#
        ),
    },
    Migration {
        version: 2,
        // The clinical record: every clinical column is field ciphertext.
        sql: r#"
CREATE TABLE conditions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    author_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    display BLOB NOT NULL,
    code BLOB,
    onset BLOB,
    status BLOB NOT NULL
);
CREATE INDEX conditions_patient ON conditions(patient_id, seq);
CREATE TABLE prescriptions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    author_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    drug BLOB NOT NULL,
    dose BLOB NOT NULL,
    route BLOB NOT NULL,
    frequency BLOB NOT NULL,
    duration BLOB,
    notes BLOB
);
CREATE INDEX prescriptions_patient ON prescriptions(patient_id, seq);
CREATE TABLE notes (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    author_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    kind BLOB NOT NULL,
    text BLOB NOT NULL
);
CREATE INDEX notes_patient ON notes(patient_id, seq);
"#,
    },
    Migration {
        version: 3,
        // The schedule: times and status plain for the overlap rule and the
        // listing; the reason is field ciphertext.
        sql: r#"
CREATE TABLE appointments (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    practitioner_id TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'arrived', 'completed', 'cancelled', 'no_show')),
    reason BLOB,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (end_at > start_at)
);
CREATE INDEX appointments_practitioner ON appointments(practitioner_id, start_at);
CREATE INDEX appointments_start ON appointments(start_at);
"#,
    },
    Migration {
        version: 4,
        // What the owner changed of a role's rights (see `rbac::effective`).
        sql: r#"
CREATE TABLE role_settings (
    role TEXT PRIMARY KEY CHECK (role IN ('nurse', 'receptionist')),
    permissions TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
    },
    Migration {
        version: 5,
        // Answers kept for clients' idempotency keys (`crate::idempotency`):
        // the id a blind-index term of user and key, the answer field
        // ciphertext; rows older than a day are dropped by the next write
        // that keeps one.
        sql: r#"
CREATE TABLE idempotency (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    reply BLOB NOT NULL
);
CREATE INDEX idempotency_created ON idempotency(created_at);
"#,
    },
];

/// A region's directory: non-personal facts, and the platform's own records
/// (staff, access requests, support sessions, the platform audit stream),
/// their personal fields encrypted under the platform key.
pub const DIRECTORY: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
CREATE TABLE clinics (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active','deleting','purged')),
    created_at INTEGER NOT NULL,
    purge_after INTEGER,
    key_version INTEGER NOT NULL
);
CREATE TABLE clinic_keys (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    version INTEGER NOT NULL,
    root_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, version)
);
CREATE TABLE throttle (
    key BLOB PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE test_clock (
    clinic_id TEXT PRIMARY KEY,
    offset_secs INTEGER NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        sql: concat!(
            r#"
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    email BLOB NOT NULL,
    email_term BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('support', 'superadmin')),
    password_hash TEXT NOT NULL,
    totp_secret BLOB NOT NULL,
    totp_last_step INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
CREATE TABLE staff_sessions (
    id TEXT PRIMARY KEY,
    staff_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE access_requests (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    clinic_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    ticket TEXT NOT NULL,
    reason BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'used')),
    created_at INTEGER NOT NULL,
    approved_by TEXT,
    approved_at INTEGER,
    session_id TEXT,
    session_expires_at INTEGER
);
CREATE INDEX access_requests_clinic ON access_requests(clinic_id, seq);
CREATE TABLE support_sessions (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    ticket TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
"#,
            audit_table!()
        ),
    },
    Migration {
        version: 3,
        // Key rotation: the region key (wrapped by the root key; see
        // `region_key`), and how far each clinic's sweep has re-sealed its
        // fields after a data key rotation (every field and search term is
        // under `swept_version` or newer).
        sql: r#"
CREATE TABLE region_keys (
    version INTEGER PRIMARY KEY,
    root_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE clinics ADD COLUMN swept_version INTEGER NOT NULL DEFAULT 1;
"#,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `(table, column)` of every BLOB column the clinic schema creates.
    fn blob_columns() -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut table = String::new();
        for m in CLINIC {
            for line in m.sql.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    table = rest.split_whitespace().next().unwrap_or("").to_owned();
                } else if let Some((col, ty)) = line.split_once(' ') {
                    if ty.starts_with("BLOB") {
                        out.push((table.clone(), col.to_owned()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_sealed_column_of_the_schema_is_swept_or_known() {
        let known_not_fields = [
            ("users", "email_term"),
            ("patient_terms", "term"),
            ("audit", "prev_hash"),
            ("audit", "hash"),
            // append-only: sealed once, never re-sealed (see SEALED)
            ("audit", "reason"),
            ("audit", "ip"),
        ];
        let blobs = blob_columns();
        assert!(blobs.len() > 20, "the parser found the schema's BLOBs");
        for (table, column) in &blobs {
            let swept = SEALED
                .iter()
                .any(|s| s.table == table && s.columns.contains(&column.as_str()));
            let known = known_not_fields.contains(&(table.as_str(), column.as_str()));
            assert!(
                swept ^ known,
                "{table}.{column}: list it in SEALED (or among the non-field blobs)"
            );
        }
        for s in SEALED {
            for c in s.columns {
                assert!(
                    blobs.contains(&(s.table.to_owned(), (*c).to_owned())),
                    "{}.{c} is not a BLOB of the schema",
                    s.table
                );
            }
        }
    }
}
