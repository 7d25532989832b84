//! Roles and the one permission table. Every route names one [`Permission`];
//! whether a role holds it is decided here and nowhere else.
//!
//! Owners and doctors hold fixed rights. A clinic's owner may narrow or widen
//! what nurses and receptionists hold, never beyond their [`ceiling`]: a
//! receptionist can never be given anything clinical, a nurse never
//! prescribing, and staff, audit trail and clinic management stay the
//! owner's.

use serde::{Deserialize, Serialize};

/// A clinic role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Doctor,
    Nurse,
    Receptionist,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Doctor, Role::Nurse, Role::Receptionist];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Doctor => "doctor",
            Role::Nurse => "nurse",
            Role::Receptionist => "receptionist",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Owners and doctors must use TOTP.
    pub fn requires_mfa(self) -> bool {
        matches!(self, Role::Owner | Role::Doctor)
    }
}

/// A platform role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffRole {
    Support,
    Superadmin,
}

impl StaffRole {
    pub fn parse(s: &str) -> Option<StaffRole> {
        match s {
            "support" => Some(StaffRole::Support),
            "superadmin" => Some(StaffRole::Superadmin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Support => "support",
            StaffRole::Superadmin => "superadmin",
        }
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read demographics: lists, search, one patient.
    PatientRead,
    /// Create and edit demographics.
    PatientWrite,
    /// Delete and restore patients.
    PatientDelete,
    /// Read a patient's audit timeline.
    PatientAuditRead,
    /// List, add, change and deactivate staff.
    StaffManage,
    /// Read and verify the clinic's audit trail.
    AuditRead,
    /// Read conditions, prescriptions and notes.
    ClinicalRead,
    /// Write conditions and notes.
    ClinicalWrite,
    /// Write prescriptions.
    PrescriptionWrite,
    /// See the schedule.
    ScheduleRead,
    /// Book and change appointments.
    ScheduleWrite,
    /// Clinic settings, export, deletion, support approvals.
    ClinicManage,
}

impl Permission {
    /// The permission's name in the API (role settings).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::PatientRead => "patient_read",
            Permission::PatientWrite => "patient_write",
            Permission::PatientDelete => "patient_delete",
            Permission::PatientAuditRead => "patient_audit_read",
            Permission::StaffManage => "staff_manage",
            Permission::AuditRead => "audit_read",
            Permission::ClinicalRead => "clinical_read",
            Permission::ClinicalWrite => "clinical_write",
            Permission::PrescriptionWrite => "prescription_write",
            Permission::ScheduleRead => "schedule_read",
            Permission::ScheduleWrite => "schedule_write",
            Permission::ClinicManage => "clinic_manage",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Every permission, for tests that walk the whole table.
    pub const ALL: [Permission; 12] = [
        Permission::PatientRead,
        Permission::PatientWrite,
        Permission::PatientDelete,
        Permission::PatientAuditRead,
        Permission::StaffManage,
        Permission::AuditRead,
        Permission::ClinicalRead,
        Permission::ClinicalWrite,
        Permission::PrescriptionWrite,
        Permission::ScheduleRead,
        Permission::ScheduleWrite,
        Permission::ClinicManage,
    ];
}

use Role::*;

/// The permission table.
const TABLE: &[(Permission, &[Role])] = &[
    (
        Permission::PatientRead,
        &[Owner, Doctor, Nurse, Receptionist],
    ),
    (
        Permission::PatientWrite,
        &[Owner, Doctor, Nurse, Receptionist],
    ),
    (Permission::PatientDelete, &[Owner]),
    (Permission::PatientAuditRead, &[Owner]),
    (Permission::StaffManage, &[Owner]),
    (Permission::AuditRead, &[Owner]),
    (Permission::ClinicalRead, &[Owner, Doctor, Nurse]),
    (Permission::ClinicalWrite, &[Owner, Doctor, Nurse]),
    (Permission::PrescriptionWrite, &[Owner, Doctor]),
    (
        Permission::ScheduleRead,
        &[Owner, Doctor, Nurse, Receptionist],
    ),
    (
        Permission::ScheduleWrite,
        &[Owner, Doctor, Nurse, Receptionist],
    ),
    (Permission::ClinicManage, &[Owner]),
];

/// What an owner may add to a role's defaults; roles not listed are fixed.
const WIDENABLE: &[(Role, &[Permission])] = &[
    (
        Nurse,
        &[Permission::PatientDelete, Permission::PatientAuditRead],
    ),
    (Receptionist, &[Permission::PatientDelete]),
];

/// Whether `role` holds `permission` by default (the API's tables).
pub fn allows(role: Role, permission: Permission) -> bool {
    TABLE
        .iter()
        .find(|(p, _)| *p == permission)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grants(u16);

impl Grants {
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn with(self, p: Permission) -> Grants {
        Grants(self.0 | p.bit())
    }

    /// Within `other`.
    pub fn is_subset(self, other: Grants) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// The names, in table order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// Parses names; `Err` carries the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Grants, &'a str> {
        names.into_iter().try_fold(Grants::default(), |g, n| {
            Permission::parse(n).map(|p| g.with(p)).ok_or(n)
        })
    }

    /// Stored form: names joined by commas.
    pub fn encode(self) -> String {
        self.names().join(",")
    }

    /// What both hold.
    pub fn intersect(self, other: Grants) -> Grants {
        Grants(self.0 & other.0)
    }
}

impl FromIterator<Permission> for Grants {
    fn from_iter<I: IntoIterator<Item = Permission>>(ps: I) -> Self {
        ps.into_iter().fold(Grants::default(), Grants::with)
    }
}

/// What platform support holds inside a clinic under an approved ticket:
/// reading, never changing, and nothing of the owner's management.
const SUPPORT: &[Permission] = &[
    Permission::PatientRead,
    Permission::ClinicalRead,
    Permission::ScheduleRead,
    Permission::AuditRead,
    Permission::PatientAuditRead,
];

/// The rights of a support session.
pub fn support() -> Grants {
    SUPPORT.iter().copied().collect()
}

/// A role's rights as the API's tables give them.
pub fn defaults(role: Role) -> Grants {
    Permission::ALL
        .into_iter()
        .filter(|p| allows(role, *p))
        .collect()
}

/// Whether a clinic may change what `role` holds.
pub fn adjustable(role: Role) -> bool {
    WIDENABLE.iter().any(|(r, _)| *r == role)
}

/// The most `role` can ever hold in any clinic.
pub fn ceiling(role: Role) -> Grants {
    WIDENABLE
        .iter()
        .filter(|(r, _)| *r == role)
        .flat_map(|(_, ps)| ps.iter().copied())
        .fold(defaults(role), Grants::with)
}

/// What `role` holds in a clinic whose setting for it is `setting` (the
/// stored text, if any). A setting is always cut to the ceiling, and a
/// fixed role ignores it.
pub fn effective(role: Role, setting: Option<&str>) -> Grants {
    match setting {
        Some(text) if adjustable(role) => {
            let stored: Grants = text.split(',').filter_map(Permission::parse).collect();
            stored.intersect(ceiling(role))
        }
        _ => defaults(role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_table() {
        use Permission::*;
        // The owner holds every right; every right is listed exactly once.
        assert_eq!(TABLE.len(), Permission::ALL.len());
        for p in Permission::ALL {
            assert!(allows(Owner, p), "{p:?}");
            assert_eq!(
                TABLE.iter().filter(|(q, _)| *q == p).count(),
                1,
                "{p:?} listed once"
            );
        }
        for p in [
            ClinicalRead,
            ClinicalWrite,
            PrescriptionWrite,
            StaffManage,
            AuditRead,
            PatientDelete,
            PatientAuditRead,
            ClinicManage,
        ] {
            assert!(!allows(Receptionist, p), "{p:?}");
        }
        assert!(allows(Receptionist, PatientRead) && allows(Receptionist, ScheduleWrite));
        assert!(allows(Doctor, PrescriptionWrite) && !allows(Nurse, PrescriptionWrite));
        assert!(allows(Nurse, ClinicalRead) && !allows(Nurse, StaffManage));
        assert_eq!(Role::parse("doctor"), Some(Doctor));
        assert_eq!(Role::parse("Doctor"), None);
        assert!(Owner.requires_mfa() && Doctor.requires_mfa() && !Nurse.requires_mfa());
    }

    #[test]
    fn ceilings_hold_whatever_is_stored() {
        use Permission::*;
        let everything = Grants::parse(Permission::ALL.map(Permission::as_str)).unwrap();
        let stored = everything.encode();
        // A receptionist is never given anything clinical, a nurse never
        // prescribing, and neither the owner's own rights.
        let desk = effective(Receptionist, Some(&stored));
        let nurse = effective(Nurse, Some(&stored));
        for p in [
            ClinicalRead,
            ClinicalWrite,
            PrescriptionWrite,
            StaffManage,
            AuditRead,
            ClinicManage,
        ] {
            assert!(
                !desk.contains(p) && !ceiling(Receptionist).contains(p),
                "{p:?}"
            );
        }
        for p in [PrescriptionWrite, StaffManage, AuditRead, ClinicManage] {
            assert!(!nurse.contains(p), "{p:?}");
        }
        assert!(desk.contains(PatientDelete) && nurse.contains(PatientAuditRead));
        // Narrowing works; doctors and owners are fixed.
        assert_eq!(
            effective(Nurse, Some("patient_read")).names(),
            ["patient_read"]
        );
        assert_eq!(effective(Nurse, Some("")), Grants::default());
        assert_eq!(effective(Doctor, Some("")), defaults(Doctor));
        assert_eq!(effective(Owner, Some("patient_read")), defaults(Owner));
        assert_eq!(effective(Nurse, None), defaults(Nurse));
        assert!(defaults(Nurse).is_subset(ceiling(Nurse)));
        assert_eq!(Grants::parse(["patient_read", "fly"]), Err("fly"));
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
    }
}
