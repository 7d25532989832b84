//! What a route is: its method and path template, who may call it
//! ([`Access`]), the audit action it records, and what else the pipeline
//! must know of it ([`Flag`]). The rows themselves are [`crate::routes`]'.

use http::Method;

use crate::rbac::Permission;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler does its own checks (sign-up, sign-in).
    Public,
    /// Any signed-in clinic user.
    Session,
    /// A signed-in clinic user whose role holds the permission.
    Permission(Permission),
    /// Signed-in platform staff (support console).
    Staff,
    /// An operator's scheduler holding the deployment's internal token;
    /// anyone else finds nothing there.
    Internal,
    /// Routed only when the host runs with test hooks (loopback only).
    TestHook,
}

/// What else the pipeline and the document must know of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Answered while the clinic is scheduled for deletion (everything
    /// else is 409 until the deletion is cancelled).
    Deleting,
    /// The signed-in user's own account: refused to support sessions.
    OwnAccount,
    /// Throttled (429 with `Retry-After`).
    Throttled,
    /// Answers 401 for wrong credentials.
    Credentials,
    /// Takes a token of its own (401 for a bad one).
    Token,
    /// Names a clinic in its body: 421 for another region's.
    Regional,
    /// A search sent as `POST` so that its terms stay out of the URL: a
    /// read, so it takes no `Idempotency-Key` (a stored answer would keep
    /// other patients' data past their purge).
    Search,
    /// Writes the region directory as well as its clinic: its clinic work
    /// holds the clinic's lock from the first read and never runs twice
    /// (see [`crate::host::Conn::begin_work`]).
    Directory,
    /// Its writes depend on nothing it read (a new record under a new
    /// id): when another request commits first, only its audit entry moves
    /// onto the new head, and it does not run again.
    Append,
}

/// A route as the pipeline and the document see it (its id and handler
/// are the route table's: [`crate::routes`]).
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// Template; `{id}` matches one path segment.
    pub path: &'static str,
    pub access: Access,
    /// Audit action recorded for the request (success and refusals alike).
    pub audit: Option<&'static str>,
    pub flags: &'static [Flag],
}

impl Route {
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// Routes under `/api/v1/auth/` stay reachable before TOTP enrolment.
    pub fn mfa_exempt(&self) -> bool {
        self.path.starts_with("/api/v1/auth/")
    }

    /// Routes a clinic scheduled for deletion still answers: signing in, its
    /// own state, cancelling, taking its data out and its audit trail.
    pub fn open_while_deleting(&self) -> bool {
        self.mfa_exempt() || self.has(Flag::Deleting)
    }

    /// The signed-in user's own account (TOTP, password): never support's.
    pub fn own_account(&self) -> bool {
        self.has(Flag::OwnAccount)
    }

    /// Whether answers carry `Cache-Control: no-store` (all but liveness).
    pub fn no_store(&self) -> bool {
        !self.path.starts_with("/healthz")
    }
}
