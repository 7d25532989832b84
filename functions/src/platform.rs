//! The platform's own records in a region's directory: staff accounts
//! (support, superadmin), and the platform audit stream, a hash chain of the
//! same shape as a clinic's ([`crate::audit`]) in the directory's `audit`
//! table. Personal fields (a staff member's email, TOTP secret, a request's
//! reason) are encrypted under a platform key derived from the region key
//! ([`crate::region_key`]), which outlives root key rotations.
//!
//! Staff are created by an operator (`amanah staff add`), never over the API.

use crate::app::App;
use crate::crypto::{password, totp};
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::kind;
use crate::rbac::StaffRole;
use crate::records::audit::{self, Entry};
use crate::records::directory::staff;
use crate::store;
use crate::validate;

/// A new staff account: its TOTP secret is shown once, to the operator.
#[derive(Debug)]
pub struct NewStaff {
    pub id: String,
    pub totp_secret: String,
    pub otpauth_uri: String,
}

impl<H: Host> App<H> {
    /// Creates a staff account (TOTP always on).
    pub async fn add_staff(
        &self,
        role: &str,
        email: &str,
        password_text: &str,
    ) -> ApiResult<NewStaff> {
        let role = StaffRole::parse(role)
            .ok_or_else(|| ApiError::invalid("role", "must be support or superadmin"))?;
        let email = validate::email("email", email)?;
        if let Some(why) = password::policy_violation(password_text) {
            return Err(ApiError::invalid("password", why));
        }
        let id = crate::ids::new_id(kind::STAFF, self.random());
        let secret: [u8; totp::SECRET_LEN] = self.random();
        let region_key = self.region_key().await?;
        let hash = password::hash(password_text, self.random());
        let dir = self.directory().await?;
        let new = staff::NewStaff {
            id: &id,
            email: &email,
            role,
            password_hash: &hash,
            totp_secret: &secret,
        };
        staff::insert(
            &dir,
            &region_key.platform,
            &new,
            [self.random(), self.random()],
            self.host.now(),
        )
        .await?;
        Ok(NewStaff {
            id,
            totp_secret: totp::secret_base32(&secret),
            otpauth_uri: totp::otpauth_uri(&secret, &email),
        })
    }

    /// Appends an entry to the region's platform audit stream.
    pub(crate) async fn platform_audit(&self, entry: &Entry) -> ApiResult<()> {
        // Before the transaction: making the region key takes a statement
        // of its own.
        let region_key = self.region_key().await?;
        let dir = self.directory().await?;
        dir.execute("BEGIN IMMEDIATE", vec![]).await?;
        let appended = self
            .append_audit(&dir, &region_key.platform.cipher, entry, None)
            .await;
        store::finish(&dir, appended).await.map(|_| ())
    }

    /// Walks the platform audit stream.
    pub async fn verify_platform_audit(&self) -> ApiResult<audit::Verification> {
        audit::verify(&self.directory().await?).await
    }
}
