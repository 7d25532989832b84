//! `patients` and their search terms (`patient_terms`). Every demographic
//! field is sealed; a patient is found through blind-index terms of their
//! name's words and prefixes, phone digits and national id. A deleted
//! patient is hidden at once (`deleted_at`) and removed by the purge after
//! `purge_after`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock;
use crate::crypto::blind::{self, BlindIndex, TermKind};
use crate::crypto::field::Field;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Row, Value};
use crate::store::Statement;
use crate::validate;

use super::table::Kind::{Sealed, Secret, Text, Time};
use super::table::{col, col_as, Reindex, Table};
use super::vault::Vault;
use crate::store::RowExt;

pub const TABLE: Table = Table {
    name: "patients",
    schema: &[(
        1,
        r#"
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
"#,
    )],
    row_key: "id",
    columns: &[
        col("id", Text),
        col("name", Sealed),
        col("dob", Sealed),
        col("sex", Sealed),
        col("phone", Sealed),
        col("email", Sealed),
        col("address", Sealed),
        col("national_id", Sealed),
        col("created_by", Text),
        col("created_at", Time),
        col("updated_at", Time),
        // A deleted patient still held (the grace period, or the region's
        // retention period) is an archived record.
        col_as("deleted_at", Time, "archived_at"),
        col("purge_after", Time),
    ],
    export: true,
    counted: true,
    patient: None,
    reindex: Some(Reindex {
        when: "name",
        statements: |ix, id, value| {
            let name =
                value("name")?.ok_or_else(|| ApiError::internal("a patient without a name"))?;
            let terms = search_terms(
                ix,
                &name,
                value("phone")?.as_deref(),
                value("national_id")?.as_deref(),
            );
            Ok(replace_terms(id, terms, false))
        },
    }),
};

/// The blind-index terms a patient is found by. Written with the patient,
/// replaced whole on every change.
pub const TERMS: Table = Table {
    name: "patient_terms",
    schema: &[(
        1,
        r#"
CREATE TABLE patient_terms (
    term BLOB NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (term, patient_id)
) WITHOUT ROWID;
CREATE INDEX patient_terms_patient ON patient_terms(patient_id);
"#,
    )],
    row_key: "patient_id",
    columns: &[col("term", Secret)],
    export: false,
    counted: true,
    patient: Some("patient_id"),
    reindex: None,
};

const NAME: Field = Field::new("patients", "name");
const DOB: Field = Field::new("patients", "dob");
const SEX: Field = Field::new("patients", "sex");
const PHONE: Field = Field::new("patients", "phone");
const EMAIL: Field = Field::new("patients", "email");
const ADDRESS: Field = Field::new("patients", "address");
const NATIONAL_ID: Field = Field::new("patients", "national_id");

const SEXES: &[&str] = &["female", "male", "other", "unknown"];

/// A patient's demographics in plaintext (memory only); also the body of
/// `POST /api/v1/patients`.
#[derive(Serialize, Deserialize, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Demographics {
    pub name: String,
    pub dob: String,
    pub sex: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub national_id: Option<String>,
}

fn optional(
    value: Option<&str>,
    check: impl Fn(&str) -> ApiResult<String>,
) -> ApiResult<Option<String>> {
    value.map(check).transpose()
}

impl Demographics {
    /// Every field checked and normalised, or 400 naming the first at fault.
    pub(crate) fn validated(self, now: i64) -> ApiResult<Self> {
        Ok(Demographics {
            name: validate::name("name", &self.name)?,
            dob: validate::dob("dob", &self.dob, now)?,
            sex: optional(self.sex.as_deref(), |s| validate::one_of("sex", s, SEXES))?,
            phone: optional(self.phone.as_deref(), |s| validate::phone("phone", s))?,
            email: optional(self.email.as_deref(), |s| validate::email("email", s))?,
            address: optional(self.address.as_deref(), |s| {
                validate::text("address", s, 500)
            })?,
            national_id: optional(self.national_id.as_deref(), |s| {
                validate::national_id("national_id", s)
            })?,
        })
    }
}

/// A patient as the API shows them.
#[derive(Serialize, ToSchema)]
pub(crate) struct PatientView {
    pub id: String,
    #[serde(flatten)]
    pub data: Demographics,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub seq: i64,
    /// `created_at` in seconds.
    #[serde(skip)]
    pub created: i64,
}

/// The view of a patient just written with `data` ([`store`]): the answer
/// of a write, built from what it wrote rather than read back.
pub(crate) fn written(id: String, data: Demographics, created: i64, now: i64) -> PatientView {
    PatientView {
        id,
        data,
        created_at: clock::rfc3339(created),
        updated_at: clock::rfc3339(now),
        seq: 0,
        created,
    }
}

const COLUMNS: &str =
    "seq, id, name, dob, sex, phone, email, address, national_id, created_at, updated_at";

fn view(v: &Vault<'_>, r: &Row) -> ApiResult<PatientView> {
    let id = r.text(1)?;
    let data = Demographics {
        name: v.open(NAME, &id, &r.blob(2)?)?,
        dob: v.open(DOB, &id, &r.blob(3)?)?,
        sex: v.open_opt(SEX, &id, r.opt_blob(4)?)?,
        phone: v.open_opt(PHONE, &id, r.opt_blob(5)?)?,
        email: v.open_opt(EMAIL, &id, r.opt_blob(6)?)?,
        address: v.open_opt(ADDRESS, &id, r.opt_blob(7)?)?,
        national_id: v.open_opt(NATIONAL_ID, &id, r.opt_blob(8)?)?,
    };
    Ok(PatientView {
        data,
        created_at: clock::rfc3339(r.int(9)?),
        updated_at: clock::rfc3339(r.int(10)?),
        seq: r.int(0)?,
        created: r.int(9)?,
        id,
    })
}

/// A live patient's name, decrypted from the column the schedule joins.
pub(crate) fn name_of(v: &Vault<'_>, patient: &str, sealed: &[u8]) -> ApiResult<String> {
    v.open(NAME, patient, sealed)
}

/// A live (not deleted) patient; not found otherwise.
pub(crate) async fn load<C: Conn>(db: &C, v: &Vault<'_>, id: &str) -> ApiResult<PatientView> {
    let (sql, params) = load_query(id);
    let rows = db.query(&sql, params).await?;
    view(v, rows.first().ok_or_else(ApiError::not_found)?)
}

/// The query of [`load`] (what a route declares it reads).
pub(crate) fn load_query(id: &str) -> Statement {
    (
        format!("SELECT {COLUMNS} FROM patients WHERE id = ?1 AND deleted_at IS NULL"),
        vec![id.into()],
    )
}

/// The statement finding a live patient (one row if so), for a check that
/// rides in a batch; see [`is_live`].
pub(crate) fn live_check(id: &str) -> Statement {
    (
        "SELECT 1 FROM patients WHERE id = ?1 AND deleted_at IS NULL".to_owned(),
        vec![id.into()],
    )
}

/// Whether a patient exists and is not deleted: how other records (the
/// clinical record, the schedule) check their patient.
pub(crate) async fn is_live<C: Conn>(db: &C, id: &str) -> ApiResult<bool> {
    let (sql, params) = live_check(id);
    Ok(!db.query(&sql, params).await?.is_empty())
}

/// Whether a patient was ever registered here (deleted ones too, until
/// purged: their audit timeline stays readable).
pub(crate) async fn exists<C: Conn>(db: &C, id: &str) -> ApiResult<bool> {
    Ok(!db
        .query("SELECT 1 FROM patients WHERE id = ?1", vec![id.into()])
        .await?
        .is_empty())
}

/// Writes every sealed column and the search terms of a patient, new or
/// changed. The writes are queued: they reach the database with the
/// request's next statement, in order, in the same transaction.
pub(crate) async fn store<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    id: &str,
    d: &Demographics,
    created_by: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    let mut params: Vec<Value> = vec![
        id.into(),
        v.seal(NAME, id, &d.name).into(),
        v.seal(DOB, id, &d.dob).into(),
        v.seal_opt(SEX, id, d.sex.as_deref()),
        v.seal_opt(PHONE, id, d.phone.as_deref()),
        v.seal_opt(EMAIL, id, d.email.as_deref()),
        v.seal_opt(ADDRESS, id, d.address.as_deref()),
        v.seal_opt(NATIONAL_ID, id, d.national_id.as_deref()),
        now.into(),
    ];
    match created_by {
        Some(by) => {
            params.push(by.into());
            db.execute_later(
                "INSERT INTO patients (id, name, dob, sex, phone, email, address, national_id, created_at, updated_at, created_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
                params,
            )
            .await?;
        }
        None => {
            db.execute_later(
                "UPDATE patients SET name = ?2, dob = ?3, sex = ?4, phone = ?5, email = ?6, address = ?7, national_id = ?8, \
                 updated_at = ?9 WHERE id = ?1",
                params,
            )
            .await?;
        }
    }
    let terms = search_terms(
        v.blind(),
        &d.name,
        d.phone.as_deref(),
        d.national_id.as_deref(),
    );
    for (sql, params) in replace_terms(id, terms, created_by.is_some()) {
        db.execute_later(&sql, params).await?;
    }
    Ok(())
}

/// Every blind-index term a patient is found by, under one key version.
pub(crate) fn search_terms(
    ix: &BlindIndex,
    name: &str,
    phone: Option<&str>,
    national_id: Option<&str>,
) -> Vec<Vec<u8>> {
    let mut terms = blind::name_tokens(ix, name);
    if let Some(p) = phone {
        terms.push(ix.token(TermKind::Phone, &blind::phone_digits(p)));
    }
    if let Some(n) = national_id {
        terms.push(ix.token(TermKind::NationalId, &blind::national_id_norm(n)));
    }
    terms.sort();
    terms.dedup();
    terms
}

/// The statements that make `terms` a patient's terms: the old ones go
/// first (unless the patient is new), then one insert of them all; none
/// when there are none (a name with no word in it, no phone, no national
/// id: nothing to find the patient by but browsing).
fn replace_terms(id: &str, terms: Vec<Vec<u8>>, new: bool) -> Vec<Statement> {
    let mut out = Vec::new();
    if !new {
        out.push((
            "DELETE FROM patient_terms WHERE patient_id = ?1".to_owned(),
            vec![id.into()],
        ));
    }
    if terms.is_empty() {
        return out;
    }
    let mut sql = String::from("INSERT INTO patient_terms (term, patient_id) VALUES ");
    let mut params: Vec<Value> = vec![id.into()];
    for (i, t) in terms.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        params.push(t.into());
        sql.push_str(&format!("(?{}, ?1)", params.len()));
    }
    out.push((sql, params));
    out
}

/// Longest search text.
pub(crate) const MAX_SEARCH: usize = 100;

/// Live patients after `after` (their `seq`), `limit` of them; with
/// `search`, only those it finds: every name word (whole, or a prefix of 3+
/// letters) must match, or the phone's digits, or the national id.
pub(crate) async fn page<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    search: Option<&str>,
    after: i64,
    limit: i64,
) -> ApiResult<Vec<PatientView>> {
    let Some((sql, params)) = page_query(v.search(), search, after, limit) else {
        return Ok(Vec::new());
    };
    let rows = db.query(&sql, params).await?;
    rows.iter().map(|r| view(v, r)).collect()
}

/// The query of [`page`] under the blind indexes `ix` (what a route
/// declares it reads); `None` when the search can find nobody.
pub(crate) fn page_query(
    ix: &[BlindIndex],
    search: Option<&str>,
    after: i64,
    limit: i64,
) -> Option<Statement> {
    let mut params: Vec<Value> = vec![after.into(), limit.into()];
    let filter = match search {
        None => String::new(),
        Some(s) => {
            // Full-width digits and letters are the same search (NFKC).
            let s = crate::validate::nfkc(s);
            let s = s.as_str();
            let mut alternatives = Vec::new();
            let mut exact = Vec::new();
            // One patient's terms are all under one key version (a write
            // stores them together), so each version is asked on its own.
            for ix in ix {
                let mut words: Vec<Vec<u8>> = blind::name_words(s)
                    .iter()
                    .map(|w| blind::query_word_token(ix, w))
                    .collect();
                words.sort();
                words.dedup();
                if !words.is_empty() {
                    let n = words.len();
                    let marks = placeholders(&mut params, words);
                    alternatives.push(format!(
                        "SELECT patient_id FROM patient_terms WHERE term IN ({marks}) GROUP BY patient_id HAVING COUNT(*) = {n}"
                    ));
                }
                let digits = blind::phone_digits(s);
                if digits.len() >= 5
                    && s.chars()
                        .all(|c| c.is_ascii_digit() || " -+().".contains(c))
                {
                    exact.push(ix.token(TermKind::Phone, &digits));
                }
                let nid = blind::national_id_norm(s);
                if nid.len() >= 4 && nid.chars().all(|c| c.is_ascii_alphanumeric()) {
                    exact.push(ix.token(TermKind::NationalId, &nid));
                }
            }
            if !exact.is_empty() {
                let marks = placeholders(&mut params, exact);
                alternatives.push(format!(
                    "SELECT patient_id FROM patient_terms WHERE term IN ({marks})"
                ));
            }
            if alternatives.is_empty() {
                return None;
            }
            format!(" AND id IN ({})", alternatives.join(" UNION "))
        }
    };
    Some((
        format!("SELECT {COLUMNS} FROM patients WHERE deleted_at IS NULL AND seq > ?1{filter} ORDER BY seq LIMIT ?2"),
        params,
    ))
}

/// Live patients with this national id (any key version's term), after
/// `after`, `limit` of them.
pub(crate) async fn by_national_id<C: Conn>(
    db: &C,
    v: &Vault<'_>,
    national_id: &str,
    after: i64,
    limit: i64,
) -> ApiResult<Vec<PatientView>> {
    let nid = blind::national_id_norm(national_id);
    let terms: Vec<Vec<u8>> = v
        .search()
        .iter()
        .map(|ix| ix.token(TermKind::NationalId, &nid))
        .collect();
    let mut params: Vec<Value> = vec![after.into(), limit.into()];
    let marks = placeholders(&mut params, terms);
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM patients WHERE deleted_at IS NULL AND seq > ?1 AND id IN \
                 (SELECT patient_id FROM patient_terms WHERE term IN ({marks})) ORDER BY seq LIMIT ?2"
            ),
            params,
        )
        .await?;
    rows.iter().map(|r| view(v, r)).collect()
}

fn placeholders(params: &mut Vec<Value>, values: Vec<Vec<u8>>) -> String {
    values
        .into_iter()
        .map(|v| {
            params.push(v.into());
            format!("?{}", params.len())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Hides a live patient until `purge_after`; `false` if there is none.
pub(crate) async fn delete<C: Conn>(
    db: &C,
    id: &str,
    now: i64,
    purge_after: i64,
) -> ApiResult<bool> {
    let n = db
        .execute(
            "UPDATE patients SET deleted_at = ?2, purge_after = ?3 WHERE id = ?1 AND deleted_at IS NULL",
            vec![id.into(), now.into(), purge_after.into()],
        )
        .await?;
    Ok(n > 0)
}

/// The patient's last clinical activity: the newest time on any row about
/// them (their record, its clinical entries, their appointments: the tables
/// [`super::naming_patients`] lists), none later than `now` (a booking
/// still to come is no activity yet). `None` if there is no such patient.
pub(crate) async fn last_activity<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<Option<i64>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let mut times = vec![
            "SELECT MIN(created_at, ?2) AS t FROM patients WHERE id = ?1".to_owned(),
            "SELECT MIN(updated_at, ?2) FROM patients WHERE id = ?1".to_owned(),
        ];
        for table in super::CLINIC {
            let Some(patient) = table.patient else {
                continue;
            };
            for c in table.columns.iter().filter(|c| c.kind == Time) {
                times.push(format!(
                    "SELECT MIN({}, ?2) FROM {} WHERE {patient} = ?1",
                    c.name, table.name
                ));
            }
        }
        format!("SELECT MAX(t) FROM ({})", times.join(" UNION ALL "))
    });
    let rows = db.query(sql, vec![id.into(), now.into()]).await?;
    match rows.first() {
        Some(r) => r.opt_int(0),
        None => Ok(None),
    }
}

/// Brings back a deleted patient whose purge time has not come; `false` if
/// there is none.
pub(crate) async fn restore<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<bool> {
    let n = db
        .execute(
            "UPDATE patients SET deleted_at = NULL, purge_after = NULL \
             WHERE id = ?1 AND deleted_at IS NOT NULL AND purge_after > ?2",
            vec![id.into(), now.into()],
        )
        .await?;
    Ok(n > 0)
}

/// Deleted patients whose purge time has come, oldest first.
pub(crate) async fn due_for_purge<C: Conn>(db: &C, now: i64) -> ApiResult<Vec<String>> {
    let rows = db
        .query(
            "SELECT id FROM patients WHERE deleted_at IS NOT NULL AND purge_after <= ?1 ORDER BY seq",
            vec![now.into()],
        )
        .await?;
    rows.iter().map(|r| r.text(0)).collect()
}

/// Removes a patient due for purge with every row that names them (the
/// tables [`super::naming_patients`] lists); `false` if they were not due
/// (restored meanwhile). The caller holds the transaction.
pub(crate) async fn remove<C: Conn>(db: &C, id: &str, now: i64) -> ApiResult<bool> {
    for (table, column) in super::naming_patients() {
        db.execute_later(
            &format!("DELETE FROM {table} WHERE {column} = ?1"),
            vec![id.into()],
        )
        .await?;
    }
    let gone = db
        .execute(
            "DELETE FROM patients WHERE id = ?1 AND deleted_at IS NOT NULL AND purge_after <= ?2",
            vec![id.into(), now.into()],
        )
        .await?;
    Ok(gone == 1)
}
