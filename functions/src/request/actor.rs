//! [`Actor`]: who a request acts as, once authenticated. A clinic's own
//! user; platform support inside a clinic on behalf of an owner's approval;
//! or platform staff at the support console. Each holds what the pipeline
//! checks (rights, TOTP enrolment) and what the audit entry records of it
//! (id, role, on behalf of whom).

use crate::clock;
use crate::rbac::StaffRole;
use crate::rbac::{self, Grants, Role};

/// A signed-in clinic user's session.
#[derive(Debug, Clone)]
pub(crate) struct UserSession {
    pub user_id: String,
    pub role: Role,
    pub session_id: String,
    pub expires_at: i64,
    /// TOTP enrolled, as of this request.
    pub mfa_enabled: bool,
    /// What the role holds in this clinic, as of this request.
    pub grants: Grants,
    /// An owner reset the password: it must be changed first.
    pub password_change_required: bool,
    pub token: String,
}

/// Platform support inside a clinic under an owner's approval.
#[derive(Debug, Clone)]
pub(crate) struct SupportSession {
    pub staff_id: String,
    pub session_id: String,
    pub ticket: String,
    /// The owner who approved the request.
    pub approved_by: String,
    /// 30 minutes from its start, whatever the activity.
    pub expires_at: i64,
    pub token: String,
}

impl SupportSession {
    /// The audit trail's `on_behalf_of`: ticket and approving owner.
    pub fn on_behalf_of(&self) -> String {
        format!("ticket:{} approved_by:{}", self.ticket, self.approved_by)
    }

    /// `X-Impersonation` of every answer.
    pub fn header(&self) -> String {
        format!(
            "ticket={}; expires={}",
            self.ticket,
            clock::rfc3339(self.expires_at)
        )
    }
}

/// A signed-in member of the platform's staff (support console).
#[derive(Debug, Clone)]
pub(crate) struct Staff {
    pub id: String,
    pub role: StaffRole,
}

/// Who a request acts as.
#[derive(Debug, Clone)]
pub(crate) enum Actor {
    User(UserSession),
    Support(SupportSession),
    Staff(Staff),
}

impl Actor {
    /// The id the audit trail records.
    pub fn id(&self) -> &str {
        match self {
            Actor::User(u) => &u.user_id,
            Actor::Support(s) => &s.staff_id,
            Actor::Staff(s) => &s.id,
        }
    }

    /// The role the audit trail records.
    pub fn audit_role(&self) -> &'static str {
        match self {
            Actor::User(u) => u.role.as_str(),
            Actor::Support(_) => "support",
            Actor::Staff(s) => s.role.as_str(),
        }
    }

    /// What the actor may do inside the clinic.
    pub fn grants(&self) -> Grants {
        match self {
            Actor::User(u) => u.grants,
            Actor::Support(_) => rbac::support(),
            Actor::Staff(_) => Grants::default(),
        }
    }

    /// A user whose password an owner reset, who has not changed it yet.
    pub fn password_change_due(&self) -> bool {
        matches!(self, Actor::User(u) if u.password_change_required)
    }

    /// An owner or doctor who has not enrolled TOTP yet.
    pub fn enrolment_due(&self) -> bool {
        matches!(self, Actor::User(u) if u.role.requires_mfa() && !u.mfa_enabled)
    }

    /// The support session, when support acts in the clinic.
    pub fn support(&self) -> Option<&SupportSession> {
        match self {
            Actor::Support(s) => Some(s),
            _ => None,
        }
    }

    /// Also recorded in the platform audit stream.
    pub fn platform(&self) -> bool {
        !matches!(self, Actor::User(_))
    }
}
