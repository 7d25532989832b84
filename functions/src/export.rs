//! The clinic's data taken out: `GET /api/v1/export?format=csv|json`.
//!
//! [`crate::records`] says what leaves and how each column is shown (each
//! table's description: exported or not, each column's kind); the export reads
//! them a page at a time inside one read transaction (a consistent snapshot
//! however long the download takes), decrypts each sealed column with the
//! clinic's key, and hands each page's output to the client before reading
//! the next: memory stays flat whatever the clinic's size.
//!
//! - `csv`: a zip (written as a stream, with data descriptors) holding one
//!   CSV per table, with a header row.
//! - `json`: one document `{"format","clinic_id","exported_at","tables":{…}}`.
//!
//! Secrets never leave: password hashes, TOTP secrets, sessions and the
//! blind-index terms are not exported.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::body::{Chunks, StreamError};
use crate::clock;
use crate::crypto::field::{Field, FieldCipher};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Row, Value};
use crate::records::{self, Column, Kind, Table};
use crate::store::RowExt;

/// The tables that leave, in order.
fn tables() -> &'static [&'static Table] {
    static TABLES: std::sync::OnceLock<Vec<&'static Table>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| records::exported().collect())
}

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "application/zip",
            Format::Json => "application/json",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "zip",
            Format::Json => "json",
        }
    }
}

/// An export the handler accepted; it starts after the request's audit
/// entry is committed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub format: Format,
    pub clinic_id: String,
    pub exported_at: i64,
}

impl Plan {
    /// `Content-Disposition` file name: clinic id and date, nothing personal.
    pub fn file_name(&self) -> String {
        let day = clock::rfc3339(self.exported_at);
        format!(
            "amanah-export-{}-{}.{}",
            self.clinic_id,
            &day[..10.min(day.len())],
            self.format.extension()
        )
    }
}

/// Rows read per round trip: bounds the memory one page takes.
pub const PAGE_ROWS: i64 = 100;

/// One shown value.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
}

/// The columns of `table` an export shows.
fn shown(table: &Table) -> Vec<&Column> {
    table.exported_columns().collect()
}

fn select(table: &Table) -> String {
    let cols: Vec<&str> = shown(table).iter().map(|c| c.name).collect();
    format!(
        "SELECT rowid, CAST({} AS TEXT), {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        table.row_key,
        cols.join(", "),
        table.name
    )
}

/// A row as shown; `row` is `[rowid, row key, columns…]`.
fn cells(table: &Table, cipher: &FieldCipher, row: &Row) -> ApiResult<Vec<Cell>> {
    let key = row.opt_text(1)?.unwrap_or_default();
    shown(table)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let i = i + 2;
            if row.get(i) == Some(&Value::Null) {
                return Ok(Cell::Null);
            }
            Ok(match c.kind {
                Kind::Text => Cell::Text(row.text(i)?),
                Kind::Int => Cell::Int(row.int(i)?),
                Kind::Bool => Cell::Bool(row.int(i)? != 0),
                Kind::Time => Cell::Text(clock::rfc3339(row.int(i)?)),
                Kind::Hex => Cell::Text(data_encoding::HEXLOWER.encode(&row.blob(i)?)),
                Kind::Sealed | Kind::SealedOnce => {
                    let pt = cipher.open(Field::new(table.name, c.name), &key, &row.blob(i)?)?;
                    Cell::Text(String::from_utf8(pt).map_err(|_| {
                        ApiError::internal(format!("{}.{} is not UTF-8", table.name, c.name))
                    })?)
                }
                Kind::SealedSecret | Kind::Secret => {
                    return Err(ApiError::internal("a secret column in an export"))
                }
            })
        })
        .collect()
}

/// A `Write` whose bytes the export takes out after each page.
#[derive(Clone, Default)]
struct Spool(Arc<Mutex<Vec<u8>>>);

impl Spool {
    fn take(&self) -> Bytes {
        match self.0.lock() {
            Ok(mut b) => Bytes::from(std::mem::take(&mut *b)),
            Err(_) => Bytes::new(),
        }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("spool poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Zip = zip::ZipWriter<zip::write::StreamWriter<Spool>>;

/// Where rows go.
enum Sink {
    Zip(Box<Zip>),
    Json { first_row: bool },
}

/// The export's progress from one page to the next.
struct Export<C: Conn> {
    conn: C,
    cipher: FieldCipher,
    plan: Plan,
    sink: Sink,
    spool: Spool,
    table: usize,
    after: i64,
    started: bool,
}

fn io_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("export writer: {e}"))
}

/// CSV cells that a spreadsheet would run as a formula are given a leading
/// `'` (OWASP's advice): an export must not become an attack on whoever
/// opens it. The JSON document keeps every value exactly.
fn csv_safe(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

impl<C: Conn> Export<C> {
    fn new(plan: Plan, conn: C, cipher: FieldCipher) -> Self {
        let spool = Spool::default();
        let sink = match plan.format {
            Format::Csv => Sink::Zip(Box::new(zip::ZipWriter::new_stream(spool.clone()))),
            Format::Json => Sink::Json { first_row: true },
        };
        Export {
            conn,
            cipher,
            plan,
            sink,
            spool,
            table: 0,
            after: 0,
            started: false,
        }
    }

    /// The next piece of output, or `None` when everything is out.
    async fn next(&mut self) -> ApiResult<Option<Bytes>> {
        if self.table == tables().len() {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            self.conn.execute_later("BEGIN", vec![]).await?;
            self.begin_document()?;
            self.begin_table()?;
        }
        let table = tables()[self.table];
        let rows = self
            .conn
            .query(&select(table), vec![self.after.into(), PAGE_ROWS.into()])
            .await?;
        for row in &rows {
            self.after = row.int(0)?;
            let cells = cells(table, &self.cipher, row)?;
            self.write_row(table, &cells)?;
        }
        if (rows.len() as i64) < PAGE_ROWS {
            self.end_table()?;
            self.table += 1;
            self.after = 0;
            if self.table == tables().len() {
                self.end_document()?;
                // A read transaction: nothing to keep, so how it ends is moot.
                let _ = self.conn.execute("COMMIT", vec![]).await;
            } else {
                self.begin_table()?;
            }
        }
        Ok(Some(self.spool.take()))
    }

    fn begin_document(&mut self) -> ApiResult<()> {
        if let Sink::Json { .. } = self.sink {
            let head = serde_json::json!({
                "format": "amanah-export/1",
                "clinic_id": self.plan.clinic_id,
                "exported_at": clock::rfc3339(self.plan.exported_at),
            })
            .to_string();
            // `{"format":…,"exported_at":…` then `,"tables":{`.
            let open = head.strip_suffix('}').unwrap_or(&head);
            write!(self.spool, "{open},\"tables\":{{").map_err(io_err)?;
        }
        Ok(())
    }

    fn begin_table(&mut self) -> ApiResult<()> {
        let table = tables()[self.table];
        match &mut self.sink {
            Sink::Zip(zip) => {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .last_modified_time(zip_time(self.plan.exported_at));
                zip.start_file(format!("{}.csv", table.name), options)
                    .map_err(io_err)?;
                let header: Vec<&str> = shown(table).iter().map(|c| c.label()).collect();
                let line = csv_line(header.iter().map(|h| Some(*h)))?;
                zip.write_all(&line).map_err(io_err)?;
            }
            Sink::Json { first_row } => {
                *first_row = true;
                let comma = if self.table == 0 { "" } else { "," };
                write!(self.spool, "{comma}\"{}\":[", table.name).map_err(io_err)?;
            }
        }
        Ok(())
    }

    fn write_row(&mut self, table: &Table, cells: &[Cell]) -> ApiResult<()> {
        match &mut self.sink {
            Sink::Zip(zip) => {
                let texts: Vec<Option<String>> = cells
                    .iter()
                    .map(|c| match c {
                        Cell::Null => None,
                        Cell::Int(n) => Some(n.to_string()),
                        Cell::Bool(b) => Some(b.to_string()),
                        Cell::Text(s) => Some(csv_safe(s).into_owned()),
                    })
                    .collect();
                let line = csv_line(texts.iter().map(|t| t.as_deref()))?;
                zip.write_all(&line).map_err(io_err)
            }
            Sink::Json { first_row } => {
                // Written by hand to keep the table's column order.
                let sep = if *first_row { "{" } else { ",{" };
                *first_row = false;
                self.spool.write_all(sep.as_bytes()).map_err(io_err)?;
                for (i, (c, cell)) in shown(table).iter().zip(cells).enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(self.spool, "{comma}\"{}\":", c.label()).map_err(io_err)?;
                    match cell {
                        Cell::Null => self.spool.write_all(b"null").map_err(io_err)?,
                        Cell::Int(n) => write!(self.spool, "{n}").map_err(io_err)?,
                        Cell::Bool(b) => write!(self.spool, "{b}").map_err(io_err)?,
                        Cell::Text(s) => {
                            serde_json::to_writer(&mut self.spool, s).map_err(io_err)?
                        }
                    }
                }
                self.spool.write_all(b"}").map_err(io_err)
            }
        }
    }

    fn end_table(&mut self) -> ApiResult<()> {
        if let Sink::Json { .. } = self.sink {
            self.spool.write_all(b"]").map_err(io_err)?;
        }
        Ok(())
    }

    fn end_document(&mut self) -> ApiResult<()> {
        match std::mem::replace(&mut self.sink, Sink::Json { first_row: true }) {
            Sink::Zip(zip) => {
                zip.finish().map_err(io_err)?;
                Ok(())
            }
            Sink::Json { .. } => self.spool.write_all(b"}}").map_err(io_err),
        }
    }
}

/// One CSV record, `None` as an empty field.
fn csv_line<'a>(fields: impl Iterator<Item = Option<&'a str>>) -> ApiResult<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(fields.map(|f| f.unwrap_or("")))
        .map_err(io_err)?;
    w.into_inner().map_err(io_err)
}

fn zip_time(secs: i64) -> zip::DateTime {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .unwrap_or_default()
}

/// The export as a stream of pieces. A failure after the first piece ends
/// the stream with an error (the download breaks; the detail, free of
/// personal data, is in [`StreamError`]).
pub fn stream<C: Conn + 'static>(plan: Plan, conn: C, cipher: FieldCipher) -> Chunks {
    let export = Export::new(plan, conn, cipher);
    Box::pin(futures_util::stream::unfold(
        Some(export),
        |state| async move {
            let mut export = state?;
            match export.next().await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(export))),
                Ok(None) => None,
                Err(e) => Some((
                    Err(StreamError {
                        detail: e.log_text(),
                    }),
                    None,
                )),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_for_spreadsheets() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("+92 300 1234567"), "'+92 300 1234567");
        assert_eq!(csv_safe("Amina"), "Amina");
        assert_eq!(csv_safe(""), "");
    }

    #[test]
    fn csv_lines_quote_what_needs_quoting() {
        let line = csv_line(["a,b", "say \"hi\"", ""].into_iter().map(Some)).unwrap();
        assert_eq!(line, b"\"a,b\",\"say \"\"hi\"\"\",\r\n");
        let line = csv_line([Some("x"), None].into_iter()).unwrap();
        assert_eq!(line, b"x,\r\n");
    }
}
