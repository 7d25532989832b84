//! The schemas: one per clinic database, one per region directory, each a
//! list of versioned migrations assembled from the tables' own schema steps
//! ([`crate::records`]): version N of a database is every table's step N,
//! in the order the database lists its tables.
//!
//! Every personal or clinical column is a BLOB of field ciphertext
//! ([`crate::crypto::field`]); search goes through blind-index terms.

use std::sync::OnceLock;

use super::Migration;
use crate::records::{self, Table};

fn assemble(tables: &[&Table]) -> Vec<Migration> {
    let mut versions: Vec<i64> = tables
        .iter()
        .flat_map(|t| t.schema.iter().map(|(v, _)| *v))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
        .into_iter()
        .map(|version| Migration {
            version,
            sql: tables
                .iter()
                .flat_map(|t| t.schema.iter())
                .filter(|(v, _)| *v == version)
                .map(|(_, sql)| *sql)
                .collect(),
        })
        .collect()
}

/// A clinic's own database.
pub fn clinic() -> &'static [Migration] {
    static STEPS: OnceLock<Vec<Migration>> = OnceLock::new();
    STEPS.get_or_init(|| assemble(records::CLINIC))
}

/// A region's directory: non-personal facts, and the platform's own records
/// (staff, access requests, support sessions, the platform audit stream),
/// their personal fields encrypted under the platform key.
pub fn directory() -> &'static [Migration] {
    static STEPS: OnceLock<Vec<Migration>> = OnceLock::new();
    STEPS.get_or_init(|| assemble(records::DIRECTORY))
}

/// The field-ciphertext columns of one table of a clinic database, and the
/// column each value is bound to (the row id of its associated data).
#[derive(Debug, Clone)]
pub struct SealedColumns {
    pub table: &'static str,
    pub row_key: &'static str,
    pub columns: Vec<&'static str>,
}

/// Every field-ciphertext column of a clinic database that a data key
/// rotation's sweep re-seals. The audit trail's `reason` and `ip` are the
/// exception: they sit inside hash-chained, append-only rows and keep the
/// key version that sealed them for good (so old data key versions are
/// never destroyed while the clinic lives).
pub fn sealed() -> Vec<SealedColumns> {
    records::sealed()
        .map(|t| SealedColumns {
            table: t.name,
            row_key: t.row_key,
            columns: t.swept_columns().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_each_other_and_hold_their_tables() {
        for (steps, newest) in [(clinic(), 8), (directory(), 4)] {
            let versions: Vec<i64> = steps.iter().map(|m| m.version).collect();
            assert_eq!(versions, (1..=newest).collect::<Vec<_>>());
        }
        let v1 = &clinic()[0].sql;
        let order: Vec<usize> = [
            "CREATE TABLE clinic ",
            "CREATE TABLE users ",
            "CREATE TABLE sessions ",
            "CREATE TABLE patients ",
            "CREATE TABLE patient_terms ",
            "CREATE TABLE audit ",
        ]
        .iter()
        .map(|t| v1.find(t).unwrap_or_else(|| panic!("{t} in v1")))
        .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "v1 creates its tables in order"
        );
        assert!(directory()[2]
            .sql
            .contains("ALTER TABLE clinics ADD COLUMN swept_version"));
    }
}
