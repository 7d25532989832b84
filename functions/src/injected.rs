//! A deliberately injected tenancy bug, compiled only into the attack
//! suite's test build (feature `inject-forgot-clinic`; never in a host
//! build).
//!
//! In a shared database the classic "forgot the clinic" bug is a query
//! without `WHERE clinic_id = ?`. Amanah's queries name no clinic at all, so
//! the place the same mistake can live is the one that picks the database:
//! here, a handler-side connection pool keyed by region instead of by clinic.
//! Authentication still happens in the clinic's own database (that is where
//! its sessions live), but every handler then works on the first clinic
//! database a request of the process entered in that region, for reads and
//! writes alike, while the request still holds only its own clinic's keys.
//!
//! `tests/tests/forgot_clinic.rs` runs this build and shows what the design
//! promises: another clinic's rows are found, but blind-index terms do not
//! match across keys and another clinic's ciphertext does not open, so
//! nothing of the first clinic reaches anyone else.

use crate::ids::ClinicId;
use std::collections::HashMap;
use std::sync::Mutex;

/// The buggy pool: remembers the first clinic it saw in each region.
#[derive(Default)]
pub struct ForgotClinic {
    first: Mutex<HashMap<String, ClinicId>>,
}

impl ForgotClinic {
    /// Notes a clinic database a request entered.
    pub(crate) fn entered(&self, clinic: &ClinicId) {
        if let Ok(mut first) = self.first.lock() {
            first
                .entry(clinic.region().to_owned())
                .or_insert_with(|| clinic.clone());
        }
    }

    /// The database the buggy pool hands a handler of `clinic`: the first
    /// clinic a request entered in its region, when that is another clinic.
    pub(crate) fn pool_pick(&self, clinic: &ClinicId) -> Option<ClinicId> {
        let first = self.first.lock().ok()?;
        first.get(clinic.region()).filter(|f| *f != clinic).cloned()
    }
}
