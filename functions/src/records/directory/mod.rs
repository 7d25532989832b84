//! The region directory's tables: non-personal facts of the region's
//! clinics (status, deletion schedule, key versions), the key store
//! (clinics' data keys and the region key, wrapped by the root key),
//! throttling counters, and the platform's own records (staff, their
//! sessions, access requests, support sessions). Personal fields of the
//! platform's records are sealed under the platform key
//! ([`crate::platform`]).

pub(crate) mod access_requests;
pub(crate) mod clinic_keys;
pub(crate) mod clinics;
pub(crate) mod region_keys;
pub(crate) mod staff;
pub(crate) mod support_sessions;
pub(crate) mod test_clock;
pub(crate) mod throttle;
