//! Micro-benchmarks of the per-request cryptography and the audit append,
//! natively (`cargo bench -p amanah-bench --bench micro`) and in wasm (the
//! same file built for `wasm32-wasip2` and run under wasmtime by `cargo
//! xtask bench`), so that the two can be compared: the wasm penalty.
//!
//! Every benchmark calls the production function (`amanah_functions`), with
//! the production parameters (Argon2id 19 MiB, 2 passes; AES-256-GCM;
//! HMAC-SHA-256 blind indexes; HS256 tokens).

use std::hint::black_box;

use amanah_functions::audit::{self, Entry, Head, Outcome};
use amanah_functions::crypto::blind::{self, BlindIndex};
use amanah_functions::crypto::field::{Field, FieldCipher};
use amanah_functions::crypto::keys::{DataKey, KeyBytes, RootKey, RootKeyring};
use amanah_functions::crypto::password;
use amanah_functions::host::{Conn, DbError, Row, Value};
use amanah_functions::token::{Subject, TokenKeys, TokenKind};
use criterion::{criterion_group, criterion_main, Criterion};

const CLINIC: &str = "pk_abcdefghijklmnopqrstuvwxyz";
const NAME: Field = Field::new("patients", "name");
const PATIENT_NAME: &str = "Ayesha Noor Siddiqui";

fn data_key() -> DataKey {
    DataKey {
        version: 1,
        key: KeyBytes::new([7; 32]),
    }
}

/// Distinct nonces for a benchmark loop (the product draws them from the
/// host's CSPRNG; a counter costs nothing and keeps the figure about AES).
fn counter_nonces() -> impl FnMut() -> [u8; 12] {
    let mut n: u64 = 0;
    move || {
        n += 1;
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&n.to_be_bytes());
        out
    }
}

fn field(c: &mut Criterion) {
    let cipher = FieldCipher::new(CLINIC, &data_key());
    let mut nonce = counter_nonces();
    let sealed = cipher.seal(NAME, "pat_1", PATIENT_NAME.as_bytes(), nonce());
    let mut g = c.benchmark_group("field");
    g.bench_function("encrypt", |b| {
        b.iter(|| {
            cipher.seal(
                NAME,
                black_box("pat_1"),
                black_box(PATIENT_NAME.as_bytes()),
                nonce(),
            )
        })
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| cipher.open(NAME, black_box("pat_1"), black_box(&sealed)))
    });
    g.finish();
}

fn blind_index(c: &mut Criterion) {
    let ix = BlindIndex::new(&data_key());
    let mut g = c.benchmark_group("blind_index");
    // What a patient write stores for its name: every word and prefix.
    g.bench_function("name_tokens", |b| {
        b.iter(|| blind::name_tokens(&ix, black_box(PATIENT_NAME)))
    });
    // What a search computes for one query word.
    g.bench_function("query_word", |b| {
        b.iter(|| blind::query_word_token(&ix, black_box("siddiqui")))
    });
    g.finish();
}

fn token(c: &mut Criterion) {
    let keys = TokenKeys::new(&RootKeyring::single(RootKey::new(
        "pk",
        1,
        KeyBytes::new([9; 32]),
    )));
    let subject = Subject {
        user: "usr_abcdefghijklmnopqrstuvwxyz".into(),
        clinic: CLINIC.into(),
        session: "ses_abcdefghijklmnopqrstuvwxyz".into(),
    };
    let now = 1_790_000_000;
    let token = keys.issue(TokenKind::Session, &subject, now, 900);
    let mut g = c.benchmark_group("token");
    g.bench_function("sign", |b| {
        b.iter(|| keys.issue(TokenKind::Session, black_box(&subject), now, 900))
    });
    g.bench_function("verify", |b| {
        b.iter(|| keys.verify(TokenKind::Session, black_box(&token), now + 1))
    });
    g.finish();
}

fn argon2(c: &mut Criterion) {
    let phc = password::hash(PASSWORD, [3; 16]);
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    // A login's password check: the dominant cost of `POST /auth/login`.
    g.bench_function("login_verify", |b| {
        b.iter(|| assert!(password::verify(black_box(PASSWORD), &phc)))
    });
    g.finish();
}

const PASSWORD: &str = "Saffron-Tea-Window-42";

/// A connection that accepts the audit INSERT and keeps nothing: isolates
/// what `audit::append` computes (two encrypted columns and the chain hash)
/// from the database, which the libSQL benchmark below and the load
/// benchmark include.
struct Discard;

impl Conn for Discard {
    async fn query(&self, _: &str, _: Vec<Value>) -> Result<Vec<Row>, DbError> {
        Ok(Vec::new())
    }
    async fn execute(&self, _: &str, _: Vec<Value>) -> Result<u64, DbError> {
        Ok(0)
    }
    async fn execute_later(&self, _: &str, params: Vec<Value>) -> Result<(), DbError> {
        black_box(params);
        Ok(())
    }
    async fn execute_script(&self, _: &str) -> Result<(), DbError> {
        Ok(())
    }
}

/// An entry as a patient read writes it.
fn entry() -> Entry {
    Entry {
        at: "2026-12-02T09:30:00Z".into(),
        actor: "usr_abcdefghijklmnopqrstuvwxyz".into(),
        role: Some("doctor".into()),
        on_behalf_of: None,
        action: "patient.read".into(),
        resource: Some("pat_abcdefghijklmnopqrstuvwxyz".into()),
        patient_id: Some("pat_abcdefghijklmnopqrstuvwxyz".into()),
        reason: None,
        ip: Some("203.0.113.7".into()),
        outcome: Outcome::Success,
    }
}

fn audit_append(c: &mut Criterion) {
    let cipher = FieldCipher::new(CLINIC, &data_key());
    let mut nonce = counter_nonces();
    let e = entry();
    let mut g = c.benchmark_group("audit");
    g.bench_function("append_compute", |b| {
        b.iter(|| {
            let head = Head::from_rows(&[]).expect("genesis");
            futures::executor::block_on(audit::append(
                &Discard,
                &cipher,
                &mut nonce,
                &e,
                Some(head),
            ))
            .expect("append")
        })
    });
    #[cfg(not(target_family = "wasm"))]
    native::append_commit(&mut g, &cipher, &e);
    g.finish();
}

#[cfg(not(target_family = "wasm"))]
mod native {
    use super::*;
    use amanah::native_host::NativeHost;
    use amanah_functions::host::Host;
    use amanah_functions::ids::ClinicId;
    use amanah_functions::store::{self, schema};
    use criterion::measurement::WallTime;
    use criterion::BenchmarkGroup;

    /// `audit::append` in its own write transaction on a clinic database
    /// file of the native host (WAL, synchronous=NORMAL): the audit cost a
    /// read request pays natively.
    pub fn append_commit(g: &mut BenchmarkGroup<'_, WallTime>, cipher: &FieldCipher, e: &Entry) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let host = NativeHost::new(
            "pk",
            dir.path().to_path_buf(),
            RootKey::new("pk", 1, KeyBytes::new([9; 32])),
        )
        .expect("host");
        let clinic = ClinicId::generate("pk", [5; 16]);
        let conn = rt.block_on(async {
            let conn = host.create_clinic(&clinic).await.expect("clinic db");
            store::migrate(&conn, schema::clinic())
                .await
                .expect("schema");
            conn
        });
        let mut nonce = counter_nonces();
        g.bench_function("append_commit_libsql_file", |b| {
            b.iter(|| {
                rt.block_on(async {
                    conn.execute("BEGIN IMMEDIATE", vec![])
                        .await
                        .expect("begin");
                    audit::append(&conn, cipher, &mut nonce, e, None)
                        .await
                        .expect("append");
                    conn.execute("COMMIT", vec![]).await.expect("commit");
                })
            })
        });
    }
}

criterion_group!(benches, field, blind_index, token, argon2, audit_append);
criterion_main!(benches);
