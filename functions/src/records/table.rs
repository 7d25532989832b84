//! What a table is, for the rules that read tables: [`Table`] (its schema
//! steps, the columns they must know about and each one's [`Kind`], whether
//! it is exported, counted, about a patient) and the statements every table
//! answers alike (its count, a page of its sealed columns, a re-seal).

use crate::host::Value;
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
    /// A blind-index term, a password hash or a random holder value:
    /// never exported.
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
    /// Its name in an export, where that differs from the column's.
    pub exported_as: Option<&'static str>,
}

pub const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        exported_as: None,
    }
}

/// A column an export names `label`.
pub const fn col_as(name: &'static str, kind: Kind, label: &'static str) -> Column {
    Column {
        name,
        kind,
        exported_as: Some(label),
    }
}

impl Column {
    /// Its name in an export.
    pub fn label(&self) -> &'static str {
        self.exported_as.unwrap_or(self.name)
    }
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
    /// in their header, or predate padding (format 1).
    pub fn sealed_under_other(&self, target: u32) -> Statement {
        let stale = self
            .swept_columns()
            .map(|c| {
                format!(
                    "({c} IS NOT NULL AND (substr({c}, 2, 4) <> ?1 OR substr({c}, 1, 1) = X'01'))"
                )
            })
            .collect::<Vec<_>>()
            .join(" + ");
        (
            format!("SELECT COALESCE(SUM({stale}), 0) FROM {}", self.name),
            vec![Value::Blob(target.to_be_bytes().to_vec())],
        )
    }
}
