//! The clinical record: `conditions`, `prescriptions`, `notes`, `allergies`
//! and `vitals`. The tables share one shape (a row per entry about a patient: author and time
//! plain, every clinical column sealed), so one [`Clinical`] describes each
//! and one piece of SQL serves them all.

use serde_json::{Map, Value as Json};

use crate::clock;
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Row, Value};
use crate::ids::kind;

use super::table::Kind::{Sealed, Text, Time};
use super::table::{col, Table};
use super::vault::Vault;
use crate::store::RowExt;

/// One kind of clinical entry.
pub(crate) struct Clinical {
    pub table: Table,
    /// Id prefix of its entries.
    pub id_prefix: &'static str,
    /// Audit action prefix and resource name (`condition` → `condition.list`, `condition/<id>`).
    pub noun: &'static str,
    /// Sealed columns shown as numbers (a measurement), the rest as text.
    pub numeric: &'static [&'static str],
}

pub(crate) const CONDITIONS: Clinical = Clinical {
    table: Table {
        name: "conditions",
        schema: &[(
            2,
            r#"
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
"#,
        )],
        row_key: "id",
        columns: &[
            col("id", Text),
            col("patient_id", Text),
            col("display", Sealed),
            col("code", Sealed),
            col("onset", Sealed),
            col("status", Sealed),
            col("author_id", Text),
            col("created_at", Time),
        ],
        export: true,
        counted: true,
        patient: Some("patient_id"),
        reindex: None,
    },
    id_prefix: kind::CONDITION,
    noun: "condition",
    numeric: &[],
};

pub(crate) const PRESCRIPTIONS: Clinical = Clinical {
    table: Table {
        name: "prescriptions",
        schema: &[(
            2,
            r#"
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
"#,
        )],
        row_key: "id",
        columns: &[
            col("id", Text),
            col("patient_id", Text),
            col("drug", Sealed),
            col("dose", Sealed),
            col("route", Sealed),
            col("frequency", Sealed),
            col("duration", Sealed),
            col("notes", Sealed),
            col("author_id", Text),
            col("created_at", Time),
        ],
        export: true,
        counted: true,
        patient: Some("patient_id"),
        reindex: None,
    },
    id_prefix: kind::PRESCRIPTION,
    noun: "prescription",
    numeric: &[],
};

pub(crate) const NOTES: Clinical = Clinical {
    table: Table {
        name: "notes",
        schema: &[(
            2,
            r#"
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
        )],
        row_key: "id",
        columns: &[
            col("id", Text),
            col("patient_id", Text),
            col("kind", Sealed),
            col("text", Sealed),
            col("author_id", Text),
            col("created_at", Time),
        ],
        export: true,
        counted: true,
        patient: Some("patient_id"),
        reindex: None,
    },
    id_prefix: kind::NOTE,
    noun: "note",
    numeric: &[],
};

pub(crate) const ALLERGIES: Clinical = Clinical {
    table: Table {
        name: "allergies",
        schema: &[(
            7,
            r#"
CREATE TABLE allergies (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    author_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    substance BLOB NOT NULL,
    code BLOB,
    reaction BLOB,
    severity BLOB
);
CREATE INDEX allergies_patient ON allergies(patient_id, seq);
"#,
        )],
        row_key: "id",
        columns: &[
            col("id", Text),
            col("patient_id", Text),
            col("substance", Sealed),
            col("code", Sealed),
            col("reaction", Sealed),
            col("severity", Sealed),
            col("author_id", Text),
            col("created_at", Time),
        ],
        export: true,
        counted: true,
        patient: Some("patient_id"),
        reindex: None,
    },
    id_prefix: kind::ALLERGY,
    noun: "allergy",
    numeric: &[],
};

/// The measurements of a set of vital signs, as stored and shown.
pub(crate) const VITAL_MEASURES: &[&str] = &[
    "systolic",
    "diastolic",
    "pulse",
    "temperature_c",
    "weight_kg",
    "height_cm",
    "spo2",
];

pub(crate) const VITALS: Clinical = Clinical {
    table: Table {
        name: "vitals",
        schema: &[(
            7,
            r#"
CREATE TABLE vitals (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    patient_id TEXT NOT NULL,
    author_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    at BLOB NOT NULL,
    systolic BLOB,
    diastolic BLOB,
    pulse BLOB,
    temperature_c BLOB,
    weight_kg BLOB,
    height_cm BLOB,
    spo2 BLOB
);
CREATE INDEX vitals_patient ON vitals(patient_id, seq);
"#,
        )],
        row_key: "id",
        columns: &[
            col("id", Text),
            col("patient_id", Text),
            col("at", Sealed),
            col("systolic", Sealed),
            col("diastolic", Sealed),
            col("pulse", Sealed),
            col("temperature_c", Sealed),
            col("weight_kg", Sealed),
            col("height_cm", Sealed),
            col("spo2", Sealed),
            col("author_id", Text),
            col("created_at", Time),
        ],
        export: true,
        counted: true,
        patient: Some("patient_id"),
        reindex: None,
    },
    id_prefix: kind::VITALS,
    noun: "vitals",
    numeric: VITAL_MEASURES,
};

/// Rows of `e` whose patient is live (not deleted).
const LIVE_PATIENT: &str =
    "EXISTS (SELECT 1 FROM patients p WHERE p.id = e.patient_id AND p.deleted_at IS NULL)";

/// Who wrote a new entry, about whom, when.
pub(crate) struct NewEntry<'a> {
    pub id: &'a str,
    pub patient: &'a str,
    pub author: &'a str,
    pub now: i64,
}

impl Clinical {
    /// The sealed columns, in order.
    fn sealed(&self) -> Vec<&'static str> {
        self.table.swept_columns().collect()
    }

    fn select(&self) -> String {
        format!(
            "SELECT seq, id, author_id, created_at, {} FROM {}",
            self.sealed().join(", "),
            self.table.name
        )
    }

    /// An entry as the API shows it, with its `seq` (the list's cursor).
    fn view(&self, v: &Vault<'_>, patient: &str, r: &Row) -> ApiResult<(i64, Json)> {
        let id = r.text(1)?;
        let mut out = Map::new();
        out.insert("id".into(), id.clone().into());
        out.insert("patient_id".into(), patient.into());
        for (i, col) in self.sealed().into_iter().enumerate() {
            let value = v.open_opt(Field::new(self.table.name, col), &id, r.opt_blob(4 + i)?)?;
            let shown = match value {
                None => Json::Null,
                Some(n) if self.numeric.contains(&col) => n
                    .parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Json::Number))
                    .unwrap_or(Json::String(n)),
                Some(t) => Json::String(t),
            };
            out.insert(col.into(), shown);
        }
        out.insert("author_id".into(), r.text(2)?.into());
        out.insert("created_at".into(), clock::rfc3339(r.int(3)?).into());
        Ok((r.int(0)?, Json::Object(out)))
    }

    /// A patient's entries after `after` (their `seq`), `limit` of them.
    pub(crate) async fn page<C: Conn>(
        &self,
        db: &C,
        v: &Vault<'_>,
        patient: &str,
        after: i64,
        limit: i64,
    ) -> ApiResult<Vec<(i64, Json)>> {
        let rows = db
            .query(
                &format!(
                    "{} WHERE patient_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    self.select()
                ),
                vec![patient.into(), after.into(), limit.into()],
            )
            .await?;
        rows.iter().map(|r| self.view(v, patient, r)).collect()
    }

    /// One entry of a live patient, with its patient; `None` if there is none.
    pub(crate) async fn get<C: Conn>(
        &self,
        db: &C,
        v: &Vault<'_>,
        id: &str,
    ) -> ApiResult<Option<(String, Json)>> {
        let rows = db
            .query(
                &format!(
                    "{}, patient_id FROM {} e WHERE e.id = ?1 AND {}",
                    self.select_all(),
                    self.table.name,
                    LIVE_PATIENT
                ),
                vec![id.into()],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let patient = r.text(4 + self.sealed().len())?;
        Ok(Some((patient.clone(), self.view(v, &patient, r)?.1)))
    }

    /// Entries of live patients after `after` (their `seq`), of one patient
    /// or of all, `limit` of them.
    pub(crate) async fn page_all<C: Conn>(
        &self,
        db: &C,
        v: &Vault<'_>,
        patient: Option<&str>,
        after: i64,
        limit: i64,
    ) -> ApiResult<Vec<(i64, Json)>> {
        let mut params: Vec<Value> = vec![after.into(), limit.into()];
        let mut sql = format!(
            "{}, patient_id FROM {} e WHERE e.seq > ?1 AND {}",
            self.select_all(),
            self.table.name,
            LIVE_PATIENT
        );
        if let Some(p) = patient {
            sql.push_str(" AND e.patient_id = ?3");
            params.push(p.into());
        }
        sql.push_str(" ORDER BY e.seq LIMIT ?2");
        let rows = db.query(&sql, params).await?;
        let n = 4 + self.sealed().len();
        rows.iter()
            .map(|r| {
                let patient = r.text(n)?;
                self.view(v, &patient, r)
            })
            .collect()
    }

    /// The columns of [`Self::select`] on the alias `e`.
    fn select_all(&self) -> String {
        let sealed: Vec<String> = self.sealed().iter().map(|c| format!("e.{c}")).collect();
        format!(
            "SELECT e.seq, e.id, e.author_id, e.created_at, {}",
            sealed.join(", ")
        )
    }

    /// Writes a new entry (`values` in the order of the sealed columns) and
    /// reads it back as shown.
    pub(crate) async fn insert<C: Conn>(
        &self,
        db: &C,
        v: &Vault<'_>,
        entry: NewEntry<'_>,
        values: &[Option<String>],
    ) -> ApiResult<Json> {
        let NewEntry {
            id,
            patient,
            author,
            now,
        } = entry;
        let sealed = self.sealed();
        let mut params: Vec<Value> = vec![id.into(), patient.into(), author.into(), now.into()];
        for (col, value) in sealed.iter().zip(values) {
            params.push(v.seal_opt(Field::new(self.table.name, col), id, value.as_deref()));
        }
        let marks: Vec<String> = (1..=params.len()).map(|i| format!("?{i}")).collect();
        db.execute_later(
            &format!(
                "INSERT INTO {} (id, patient_id, author_id, created_at, {}) VALUES ({})",
                self.table.name,
                sealed.join(", "),
                marks.join(", ")
            ),
            params,
        )
        .await?;
        let rows = db
            .query(&format!("{} WHERE id = ?1", self.select()), vec![id.into()])
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::internal("new clinical entry not found"))?;
        Ok(self.view(v, patient, row)?.1)
    }
}
