//! `audit`: the audit trail, one append-only, hash-chained sequence per
//! clinic (and, of the same shape, the region's platform audit stream in
//! the directory).
//!
//! Each entry's hash covers the previous entry's hash and every stored column,
//! so an edited, deleted, reordered or inserted row breaks the chain at that
//! row. Free text (the purpose of use) and the client address are stored as
//! field ciphertext; entries hold ids, never names. Triggers refuse every
//! UPDATE and DELETE of an entry.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crypto::field::{Field, FieldCipher};
use crate::error::ApiResult;
use crate::host::{Conn, Row, Value};
use crate::store::RowExt;

use super::table::Kind::{Hex, Int, SealedOnce, Text};
use super::table::{col, Table};

/// The chain's table and its append-only triggers: the same in a clinic's
/// database and, as the platform audit stream, in the directory.
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

const COLUMNS_DESCRIBED: &[super::Column] = &[
    col("seq", Int),
    col("at", Text),
    col("actor", Text),
    col("role", Text),
    col("on_behalf_of", Text),
    col("action", Text),
    col("resource", Text),
    col("patient_id", Text),
    col("reason", SealedOnce),
    col("ip", SealedOnce),
    col("outcome", Text),
    col("prev_hash", Hex),
    col("hash", Hex),
];

/// A clinic's audit trail (the purge keeps a purged patient's entries: they
/// hold only the opaque id).
pub const TABLE: Table = Table {
    name: "audit",
    schema: &[(
        1,
        concat!(
            audit_table!(),
            "CREATE INDEX audit_patient ON audit(patient_id, seq);\n"
        ),
    )],
    row_key: "seq",
    columns: COLUMNS_DESCRIBED,
    export: true,
    counted: true,
    patient: None,
    reindex: None,
};

/// The region's platform audit stream, in the directory.
pub const PLATFORM: Table = Table {
    name: "audit",
    schema: &[(2, audit_table!())],
    row_key: "seq",
    columns: COLUMNS_DESCRIBED,
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

pub const REASON: Field = Field::new("audit", "reason");
pub const IP: Field = Field::new("audit", "ip");

/// Outcome of the audited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Denied,
    NotFound,
    Failure,
    /// A write's stored answer sent again for its idempotency key
    /// ([`crate::idempotency`]): nothing was written again.
    Replayed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::NotFound => "not_found",
            Outcome::Failure => "failure",
            Outcome::Replayed => "replayed",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Success,
            Outcome::Denied,
            Outcome::NotFound,
            Outcome::Failure,
            Outcome::Replayed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// An audit entry, in plaintext (the encrypted columns decrypted).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub at: String,
    pub actor: String,
    pub role: Option<String>,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub patient_id: Option<String>,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub outcome: Outcome,
}

/// The stored columns an entry's hash covers.
struct Stored<'a> {
    seq: i64,
    at: &'a str,
    actor: &'a str,
    role: Option<&'a str>,
    on_behalf_of: Option<&'a str>,
    action: &'a str,
    resource: Option<&'a str>,
    patient_id: Option<&'a str>,
    reason: Option<&'a [u8]>,
    ip: Option<&'a [u8]>,
    outcome: &'a str,
}

fn chain_hash(prev: &[u8], s: &Stored<'_>) -> [u8; 32] {
    fn put(h: &mut Sha256, v: Option<&[u8]>) {
        match v {
            None => h.update([0u8]),
            Some(b) => {
                h.update([1u8]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    let mut h = Sha256::new();
    h.update(b"amanah.audit.v1");
    h.update(prev);
    h.update(s.seq.to_be_bytes());
    for v in [
        Some(s.at.as_bytes()),
        Some(s.actor.as_bytes()),
        s.role.map(str::as_bytes),
        s.on_behalf_of.map(str::as_bytes),
        Some(s.action.as_bytes()),
        s.resource.map(str::as_bytes),
        s.patient_id.map(str::as_bytes),
        s.reason,
        s.ip,
        Some(s.outcome.as_bytes()),
    ] {
        put(&mut h, v);
    }
    h.finalize().into()
}

const GENESIS: [u8; 32] = [0; 32];

/// The query for the chain's head (last sequence number and hash).
/// The clinic's version for optimistic work ([`crate::host::Conn::begin_work`]):
/// every request that changes anything appends an entry, so the chain's
/// length moves with every commit.
pub const VERSION_SQL: &str = "SELECT COALESCE(MAX(seq), 0) FROM audit";

pub const HEAD_SQL: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";

/// The chain's last entry as read inside the write transaction that will
/// append after it (so nothing can come between).
#[derive(Debug, Clone)]
pub struct Head {
    seq: i64,
    hash: Vec<u8>,
}

impl Head {
    /// From the rows of [`HEAD_SQL`]; an empty chain starts at the genesis.
    pub fn from_rows(rows: &[Row]) -> ApiResult<Head> {
        Ok(match rows.first() {
            Some(row) => Head {
                seq: row.int(0)?,
                hash: row.blob(1)?,
            },
            None => Head {
                seq: 0,
                hash: GENESIS.to_vec(),
            },
        })
    }
}

/// Appends an entry; the caller holds the write transaction of the work it
/// records. `head` is the chain's head if the caller read it within this
/// transaction (it is read here otherwise). `nonce` gives fresh nonces for
/// the encrypted columns.
pub async fn append<C: Conn>(
    conn: &C,
    cipher: &FieldCipher,
    nonce: impl FnMut() -> [u8; 12],
    e: &Entry,
    head: Option<Head>,
) -> ApiResult<i64> {
    let head = match head {
        Some(h) => h,
        None => Head::from_rows(&conn.query(HEAD_SQL, vec![]).await?)?,
    };
    let ((sql, params), seq) = insert(cipher, nonce, e, head);
    // Sent with the request's COMMIT: the entry and the work land together.
    conn.execute_later(&sql, params).await?;
    Ok(seq)
}

/// The statement appending `e` after `head`, and its sequence number.
pub fn insert(
    cipher: &FieldCipher,
    mut nonce: impl FnMut() -> [u8; 12],
    e: &Entry,
    head: Head,
) -> (crate::store::Statement, i64) {
    let (seq, prev) = (head.seq + 1, head.hash);
    let row_id = seq.to_string();
    let reason = e
        .reason
        .as_ref()
        .map(|r| cipher.seal(REASON, &row_id, r.as_bytes(), nonce()));
    let ip =
        e.ip.as_ref()
            .map(|r| cipher.seal(IP, &row_id, r.as_bytes(), nonce()));
    let stored = Stored {
        seq,
        at: &e.at,
        actor: &e.actor,
        role: e.role.as_deref(),
        on_behalf_of: e.on_behalf_of.as_deref(),
        action: &e.action,
        resource: e.resource.as_deref(),
        patient_id: e.patient_id.as_deref(),
        reason: reason.as_deref(),
        ip: ip.as_deref(),
        outcome: e.outcome.as_str(),
    };
    let hash = chain_hash(&prev, &stored);
    (
        (
            "INSERT INTO audit (seq, at, actor, role, on_behalf_of, action, resource, patient_id, reason, ip, outcome, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                .to_owned(),
        vec![
            seq.into(),
            e.at.clone().into(),
            e.actor.clone().into(),
            e.role.clone().into(),
            e.on_behalf_of.clone().into(),
            e.action.clone().into(),
            e.resource.clone().into(),
            e.patient_id.clone().into(),
            reason.into(),
            ip.into(),
            e.outcome.as_str().into(),
            prev.into(),
            hash.to_vec().into(),
        ],
        ),
        seq,
    )
}

const COLUMNS: &str =
    "seq, at, actor, role, on_behalf_of, action, resource, patient_id, reason, ip, outcome, prev_hash, hash";

/// Result of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Ok { entries: i64, head: String },
    Broken { first_bad_seq: i64 },
}

/// Walks the whole chain in pages; reports the first entry that does not fit.
pub async fn verify<C: Conn>(conn: &C) -> ApiResult<Verification> {
    Ok(verify_marked(conn, &[]).await?.0)
}

/// [`verify`], also returning the hash of each entry whose sequence number
/// is in `marks` (where the chain reaches it): what a checkpoint recorded
/// there must match.
pub async fn verify_marked<C: Conn>(
    conn: &C,
    marks: &[i64],
) -> ApiResult<(Verification, BTreeMap<i64, Vec<u8>>)> {
    walk(conn, 1, GENESIS.to_vec(), marks).await
}

/// [`verify`] from a checkpoint: entry `seq` must still hash to `head` (the
/// chain's head a signed checkpoint saw), and every entry after it must
/// link up; the entries before are the checkpoint's word. A chain cut
/// below `seq` is broken at the first missing entry.
pub async fn verify_since<C: Conn>(conn: &C, seq: i64, head: &[u8]) -> ApiResult<Verification> {
    if seq == 0 {
        return Ok(walk(conn, 1, GENESIS.to_vec(), &[]).await?.0);
    }
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM audit WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"),
            vec![seq.into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Verification::Broken { first_bad_seq: 1 });
    };
    let found = row.int(0)?;
    if found != seq {
        return Ok(Verification::Broken {
            first_bad_seq: found + 1,
        });
    }
    let prev = row.opt_blob(11)?.unwrap_or_default();
    let hash = chain_hash_owned(&prev, &stored_of(row)?);
    if hash.as_slice() != head || row.opt_blob(12)?.as_deref() != Some(head) {
        return Ok(Verification::Broken { first_bad_seq: seq });
    }
    Ok(walk(conn, seq + 1, head.to_vec(), &[]).await?.0)
}

/// The stored columns of an entry's row (of [`COLUMNS`]).
fn stored_of(row: &Row) -> ApiResult<Owned> {
    let texts: Vec<Option<String>> = [1, 2, 3, 4, 5, 6, 7, 10]
        .iter()
        .map(|&i| row.opt_text(i))
        .collect::<ApiResult<_>>()?;
    Ok(Owned {
        seq: row.int(0)?,
        texts,
        reason: row.opt_blob(8)?,
        ip: row.opt_blob(9)?,
    })
}

/// A row's stored columns, owned.
struct Owned {
    seq: i64,
    /// at, actor, role, on_behalf_of, action, resource, patient_id, outcome
    texts: Vec<Option<String>>,
    reason: Option<Vec<u8>>,
    ip: Option<Vec<u8>>,
}

impl Owned {
    fn stored(&self) -> Stored<'_> {
        let t = |i: usize| self.texts[i].as_deref();
        Stored {
            seq: self.seq,
            at: t(0).unwrap_or(""),
            actor: t(1).unwrap_or(""),
            role: t(2),
            on_behalf_of: t(3),
            action: t(4).unwrap_or(""),
            resource: t(5),
            patient_id: t(6),
            reason: self.reason.as_deref(),
            ip: self.ip.as_deref(),
            outcome: t(7).unwrap_or(""),
        }
    }
}

fn chain_hash_owned(prev: &[u8], o: &Owned) -> [u8; 32] {
    chain_hash(prev, &o.stored())
}

/// Walks the chain from entry `from`, which must follow `prev`; the hashes
/// at `marks` noted.
async fn walk<C: Conn>(
    conn: &C,
    from: i64,
    mut prev: Vec<u8>,
    marks: &[i64],
) -> ApiResult<(Verification, BTreeMap<i64, Vec<u8>>)> {
    let mut at_marks = BTreeMap::new();
    let mut expected_seq = from;
    loop {
        let rows = conn
            .query(
                &format!("SELECT {COLUMNS} FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT 1000"),
                vec![expected_seq.into()],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq = row.int(0)?;
            if seq != expected_seq {
                return Ok((
                    Verification::Broken {
                        first_bad_seq: expected_seq,
                    },
                    at_marks,
                ));
            }
            let stored = stored_of(row)?;
            let (stored_prev, stored_hash) = (row.opt_blob(11)?, row.opt_blob(12)?);
            let hash = chain_hash_owned(&prev, &stored);
            if stored_prev.as_deref() != Some(prev.as_slice())
                || stored_hash.as_deref() != Some(hash.as_slice())
            {
                return Ok((Verification::Broken { first_bad_seq: seq }, at_marks));
            }
            if marks.contains(&seq) {
                at_marks.insert(seq, hash.to_vec());
            }
            prev = hash.to_vec();
            expected_seq += 1;
        }
    }
    Ok((
        Verification::Ok {
            entries: expected_seq - 1,
            head: data_encoding::HEXLOWER.encode(&prev),
        },
        at_marks,
    ))
}

/// An entry as the API shows it: the entry and its place in the chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: Entry,
}

/// Filters of `GET /audit`.
#[derive(Debug, Default)]
pub struct Filter {
    pub patient: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Only entries with `seq` below this (pagination, newest first).
    pub before: Option<i64>,
}

/// Entries newest first.
pub async fn list<C: Conn>(
    conn: &C,
    cipher: &FieldCipher,
    f: &Filter,
    limit: i64,
) -> ApiResult<Vec<EntryView>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE 1=1");
    let mut params: Vec<Value> = Vec::new();
    let mut add = |clause: &str, v: Value| {
        params.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    };
    if let Some(p) = &f.patient {
        add("patient_id =", p.clone().into());
    }
    if let Some(a) = &f.actor {
        add("actor =", a.clone().into());
    }
    if let Some(a) = &f.action {
        add("action =", a.clone().into());
    }
    if let Some(t) = &f.from {
        add("at >=", t.clone().into());
    }
    if let Some(t) = &f.to {
        add("at <", t.clone().into());
    }
    if let Some(b) = f.before {
        add("seq <", b.into());
    }
    params.push(limit.into());
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", params.len()));
    let rows = conn.query(&sql, params).await?;
    rows.iter()
        .map(|row| {
            let seq = row.int(0)?;
            let id = seq.to_string();
            let open = |i: usize, field: Field| -> ApiResult<Option<String>> {
                row.opt_blob(i)?
                    .map(|ct| {
                        let pt = cipher.open(field, &id, &ct)?;
                        Ok(String::from_utf8_lossy(&pt).into_owned())
                    })
                    .transpose()
            };
            Ok(EntryView {
                seq,
                entry: Entry {
                    at: row.text(1)?,
                    actor: row.text(2)?,
                    role: row.opt_text(3)?,
                    on_behalf_of: row.opt_text(4)?,
                    action: row.text(5)?,
                    resource: row.opt_text(6)?,
                    patient_id: row.opt_text(7)?,
                    reason: open(8, REASON)?,
                    ip: open(9, IP)?,
                    outcome: Outcome::parse(&row.text(10)?)
                        .ok_or_else(|| crate::error::ApiError::internal("unknown audit outcome"))?,
                },
            })
        })
        .collect()
}
