//! What a route declares it will read, so that on a remote database those
//! reads ride in the request's first batch, with the session check and the
//! audit chain's head, in parallel with the directory's key lookup: one
//! round trip before the commit instead of two or three
//! ([`crate::host::Conn::prefetch`]).
//!
//! A declaration is a hint, never a grant: it only builds statements, from
//! the request as it came (path, query, body) and the signed-in user the
//! token names; nothing it reads reaches anyone unless the handler, after
//! the session and the permission were checked, asks for exactly that
//! statement. A declaration that guesses wrong (a body the handler will
//! refuse, keys rotated since they were last seen here) costs only the
//! round trip the handler then makes itself. Declarations give nothing
//! for input they cannot read: the handler answers that with its error.

use crate::records::Vault;
use crate::store::Statement;

/// What a declaration may look at.
pub(crate) struct Prefetch<'r> {
    /// The values of the path's `{id}` segments.
    pub params: &'r [String],
    pub query: Option<&'r str>,
    pub body: &'r [u8],
    /// The user the session token names (its signature checked, its
    /// session not yet).
    pub user: &'r str,
    /// The clinic's keys as this instance last saw them, where it keeps
    /// them between requests (the Worker's isolate), for reads whose
    /// statements hold blind-index terms.
    pub vault: Option<&'r Vault<'r>>,
}

/// A route's declaration of its reads (the `reads` clause of its row in
/// [`crate::routes`]).
pub(crate) type Reads = fn(&Prefetch<'_>) -> Vec<Statement>;
