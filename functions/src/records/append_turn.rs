//! `append_turn`: whose turn it is to append to the clinic's audit chain,
//! when appends on a remote database keep meeting each other.
//!
//! Every audited request appends one entry on the chain's head, and on a
//! remote database it does so optimistically: its write batch fails when
//! the head moved since it read it, and it tries again on the new head
//! ([`crate::host::Conn::commit_appending`]). Under many writers at once
//! one batch wins each time and the others go again, so one unlucky
//! request could lose many times in a row. A request that has lost a few
//! times claims the turn: while a live turn is someone else's, every other
//! append batch fails at once (and goes again), so the holder's next batch
//! wins. The holder ends its turn in the batch that commits.
//!
//! A lease, never a lock: a turn ends by itself [`LEASE_MS`] after it was
//! claimed, measured by the database's own clock, so an instance that dies
//! holding one holds the clinic's appends back for half a second at most,
//! and no transaction is ever left open for it. The holder is a random
//! value of the request, nothing personal.

use super::table::Kind::Secret;
use super::table::{col, Table};
use crate::host::AppendTurn;

pub const TABLE: Table = Table {
    name: "append_turn",
    schema: &[(
        8,
        r#"
CREATE TABLE append_turn (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder BLOB NOT NULL,
    until_ms INTEGER NOT NULL
);
"#,
    )],
    row_key: "id",
    columns: &[col("holder", Secret)],
    export: false,
    counted: false,
    patient: None,
    reindex: None,
};

/// How long a turn lasts unless its holder ends it first.
pub const LEASE_MS: i64 = 500;

/// A step that fails (SQLite's "integer overflow", as the schema guard)
/// while a live turn is another request's (`?1`: this request's holder).
const GUARD: &str = "SELECT abs(-9223372036854775807 - 1) WHERE EXISTS (SELECT 1 FROM append_turn \
     WHERE holder IS NOT ?1 AND until_ms > CAST(unixepoch('subsec') * 1000 AS INTEGER))";

/// Takes the turn for `?2` ms unless another request holds a live one (its
/// own is renewed).
const CLAIM: &str = "INSERT INTO append_turn (id, holder, until_ms) \
     VALUES (1, ?1, CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?2) \
     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
     WHERE append_turn.holder = excluded.holder \
        OR append_turn.until_ms <= CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// Ends this request's turn, if it holds one.
const RELEASE: &str = "DELETE FROM append_turn WHERE holder = ?1";

/// The turn's statements for a request whose random holder value is
/// `holder`.
pub(crate) fn turn(holder: [u8; 16]) -> AppendTurn {
    AppendTurn {
        holder: holder.to_vec(),
        guard: GUARD,
        claim: CLAIM,
        release: RELEASE,
        lease_ms: LEASE_MS,
    }
}
