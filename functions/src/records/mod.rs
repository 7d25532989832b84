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

pub(crate) mod appointments;
pub mod audit;
pub(crate) mod clinic;
pub(crate) mod clinical;
pub(crate) mod directory;
pub(crate) mod idempotency;
pub(crate) mod patients;
pub(crate) mod role_settings;
pub(crate) mod sessions;
pub(crate) mod users;
mod vault;

pub(crate) use vault::Vault;

use crate::host::Value;
pub use crate::store::RowExt;
use crate::store::Statement;

/// How a column is kept and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain text.
    Text,
    /// A plain number.
    Int,
    /// 0 or 1.
    Bool,
    /// Seconds since the epoch, shown as RFC 3339.
    Time,
    /// Field ciphertext, exported decrypted, re-sealed by a key sweep.
    Sealed,
    /// Field ciphertext that never leaves in an export (TOTP secrets, stored
    /// answers), re-sealed by a key sweep.
    SealedSecret,
    /// Field ciphertext inside an append-only row: exported decrypted,
    /// never re-sealed (the audit trail's reason and address).
    SealedOnce,
    /// Bytes shown as hex (the audit chain's hashes).
    Hex,
    /// A blind-index term or a password hash: never exported.
    Secret,
}

impl Kind {
    /// Whether a key sweep re-seals the column.
    pub fn swept(self) -> bool {
        matches!(self, Kind::Sealed | Kind::SealedSecret)
    }

    /// Whether an export shows the column.
    pub fn exported(self) -> bool {
        !matches!(self, Kind::SealedSecret | Kind::Secret)
    }
}

/// One column a rule needs to know about.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

pub(crate) const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

/// A row's decrypted value by column name (what [`Reindex`] reads).
pub type Plaintext<'a> = &'a dyn Fn(&str) -> crate::error::ApiResult<Option<String>>;

/// What a key sweep rebuilds besides re-sealing: the blind-index terms of a
/// row, which all derive from its sealed values.
#[derive(Clone, Copy)]
pub struct Reindex {
    /// The terms are rebuilt when this column was re-sealed (every value of
    /// a row is sealed under one version, so it stands for the row).
    pub when: &'static str,
    /// The statements that replace the row's terms, given the row id and a
    /// look-up of its decrypted values by column.
    pub statements: fn(
        ix: &crate::crypto::blind::BlindIndex,
        id: &str,
        value: Plaintext<'_>,
    ) -> crate::error::ApiResult<Vec<Statement>>,
}

/// A table of a clinic database or of the region directory.
pub struct Table {
    pub name: &'static str,
    /// Schema steps: (migration version, SQL). A version's SQL of every
    /// table is applied together, in the order of [`CLINIC`] / [`DIRECTORY`].
    pub schema: &'static [(i64, &'static str)],
    /// The column a sealed value is bound to (its row id in the AAD).
    pub row_key: &'static str,
    /// The columns rules need: every sealed, secret and exported column,
    /// in export order.
    pub columns: &'static [Column],
    /// Whether an export takes the table out.
    pub export: bool,
    /// Whether a backup records (and a restore checks) its row count.
    pub counted: bool,
    /// The column naming the patient a row is about: the purge of a patient
    /// removes those rows.
    pub patient: Option<&'static str>,
    /// Terms a key sweep rebuilds.
    pub reindex: Option<Reindex>,
}

impl Table {
    /// The columns a key sweep re-seals.
    pub fn swept_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .filter(|c| c.kind.swept())
            .map(|c| c.name)
    }

    /// The columns an export shows, in order.
    pub fn exported_columns(&self) -> impl Iterator<Item = &Column> + '_ {
        self.columns.iter().filter(|c| c.kind.exported())
    }

    /// How many rows the table holds.
    pub fn count(&self) -> Statement {
        (format!("SELECT COUNT(*) FROM {}", self.name), vec![])
    }

    /// A page of rows after `rowid` `after`: `rowid`, the row key, then the
    /// swept columns (a key sweep's read).
    pub fn sealed_page(&self, after: i64, limit: i64) -> Statement {
        (
            format!(
                "SELECT rowid, {}, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                self.row_key,
                self.swept_columns().collect::<Vec<_>>().join(", "),
                self.name
            ),
            vec![after.into(), limit.into()],
        )
    }

    /// Replaces some sealed values of the row at `rowid`: `(column, value)`.
    pub fn reseal(&self, rowid: i64, values: Vec<(&str, Vec<u8>)>) -> Statement {
        let mut params: Vec<Value> = vec![rowid.into()];
        let mut sets = Vec::with_capacity(values.len());
        for (column, value) in values {
            params.push(value.into());
            sets.push(format!("{column} = ?{}", params.len()));
        }
        (
            format!(
                "UPDATE {} SET {} WHERE rowid = ?1",
                self.name,
                sets.join(", ")
            ),
            params,
        )
    }

    /// How many sealed values name another data key version than `target`
    /// in their header.
    pub fn sealed_under_other(&self, target: u32) -> Statement {
        let stale = self
            .swept_columns()
            .map(|c| format!("({c} IS NOT NULL AND substr({c}, 2, 4) <> ?1)"))
            .collect::<Vec<_>>()
            .join(" + ");
        (
            format!("SELECT COALESCE(SUM({stale}), 0) FROM {}", self.name),
            vec![Value::Blob(target.to_be_bytes().to_vec())],
        )
    }
}

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
    &appointments::TABLE,
    &idempotency::TABLE,
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
                "appointments",
                "idempotency"
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
