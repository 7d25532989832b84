//! `POST /api/v1/clinics`: sign-up. The clinic's region is fixed here, for
//! good: its id carries the region and its data key is created and wrapped by
//! that region's root key.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::crypto::keys::{DataKey, KeyBytes};
use crate::crypto::password;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::{kind, ClinicId};
use crate::rbac::Role;
use crate::records::clinic::{self, ClinicSummary};
use crate::records::directory::throttle::{self, Limit};
use crate::records::directory::{clinic_keys, clinics};
use crate::records::users;
use crate::request::{Open, Reply, Resource};
use crate::store;
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUp {
    name: String,
    region: String,
    #[schema(value_type = Owner)]
    owner: crate::web::Object<Owner>,
}

/// The answer to sign-up.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignedUp {
    clinic: ClinicSummary,
    owner: OwnerView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OwnerView {
    id: String,
    email: String,
    /// `owner`.
    role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Owner {
    name: String,
    email: String,
    password: String,
}

/// `POST /api/v1/clinics`.
pub(crate) async fn sign_up<H: Host>(p: &mut Open<'_, '_, H>) -> ApiResult<Reply> {
    let req: SignUp = p.json()?;
    let name = validate::name("name", &req.name)?;
    if !p.app.config.regions.iter().any(|r| r.id == req.region) {
        return Err(ApiError::invalid(
            "region",
            "unknown region; see /api/v1/regions",
        ));
    }
    let owner_name = validate::name("owner.name", &req.owner.name)?;
    let email = validate::email("owner.email", &req.owner.email)?;
    if let Some(why) = password::policy_violation(&req.owner.password) {
        return Err(ApiError::invalid("owner.password", why));
    }
    let clinic = ClinicId::generate(&req.region, p.random());
    // A clinic of another region is that region's to create.
    p.guard_region(&clinic)?;
    // Each sign-up makes a database: from one address, and in the region,
    // only so many an hour.
    let dir = p.app.directory().await?;
    let limits = p.app.config.signups;
    let hour = 60 * 60;
    if let Some(ip) = p.ip {
        let key = throttle::key(&p.app.throttle_key(), "signup", &[&ip.to_string()]);
        let limit = Limit {
            events: limits.per_address,
            window_secs: hour,
        };
        throttle::take(&dir, &key, limit, p.now).await?;
    }
    let region = throttle::key(&p.app.throttle_key(), "signup-region", &[]);
    let limit = Limit {
        events: limits.per_region,
        window_secs: hour,
    };
    throttle::take(&dir, &region, limit, p.now).await?;

    let dek = DataKey {
        version: 1,
        key: KeyBytes::new(p.random()),
    };
    let ring = p.app.host.root_keys();
    let root = ring.current();
    let wrapped = root.wrap(clinic.as_str(), &dek, p.random());
    dir.execute("BEGIN IMMEDIATE", vec![]).await?;
    let registered = async {
        clinics::insert(&dir, &clinic, p.now).await?;
        clinic_keys::insert(&dir, &clinic, 1, root.version, wrapped, p.now).await
    }
    .await;
    store::finish(&dir, registered).await?;

    let mut s = p.create(&clinic).await?;
    let owner_id = s.new_id(kind::USER);
    let hash = password::hash(&req.owner.password, s.random());
    clinic::insert(s.db, &s.vault, &clinic, &name, s.now).await?;
    let owner = users::NewUser {
        id: &owner_id,
        name: &owner_name,
        email: &email,
        role: Role::Owner,
        password_hash: &hash,
    };
    users::insert(s.db, &s.vault, &owner, s.now).await?;
    s.audit.tried_by(&owner_id, Some(Role::Owner.as_str()));
    s.audit.about(Resource::Clinic(clinic.as_str()));
    Reply::created(SignedUp {
        clinic: ClinicSummary {
            id: clinic.as_str().to_owned(),
            name,
            region: req.region,
        },
        owner: OwnerView {
            id: owner_id,
            email,
            role: Role::Owner.as_str().to_owned(),
        },
    })
}
