//! Roles and the one permission table. Every route names one [`Permission`];
//! whether a role holds it is decided here and nowhere else.

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

/// Whether `role` holds `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    TABLE
        .iter()
        .find(|(p, _)| *p == permission)
        .is_some_and(|(_, roles)| roles.contains(&role))
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
}
