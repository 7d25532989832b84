//! `POST /api/v1/clinics`: sign-up. The clinic's region is fixed here, for
//! good: its id carries the region and its data key is created and wrapped by
//! that region's root key.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Ctx, Reply};
use crate::crypto::blind::TermKind;
use crate::crypto::keys::{DataKey, KeyBytes};
use crate::crypto::password;
use crate::error::{ApiError, ApiResult};
use crate::host::{Conn, Host};
use crate::ids::{kind, ClinicId};
use crate::rbac::Role;
use crate::store;
use crate::validate;

use super::auth::ClinicSummary;
use super::users::{USER_EMAIL, USER_NAME};

pub(crate) const CLINIC_NAME: crate::crypto::field::Field =
    crate::crypto::field::Field::new("clinic", "name");

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

pub(crate) async fn sign_up<H: Host>(ctx: &mut Ctx<'_, H>) -> ApiResult<Reply> {
    let req: SignUp = ctx.json()?;
    let name = validate::name("name", &req.name)?;
    if !ctx.app.config().regions.iter().any(|r| r.id == req.region) {
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
    let clinic = ClinicId::generate(&req.region, ctx.random());
    // A clinic of another region is that region's to create.
    ctx.guard_region(&clinic)?;

    let dek = DataKey {
        version: 1,
        key: KeyBytes::new(ctx.random()),
    };
    let ring = ctx.app.host().root_keys();
    let root = ring.current();
    let wrapped = root.wrap(clinic.as_str(), &dek, ctx.random());
    let dir = ctx.app.directory().await?;
    dir.execute("BEGIN IMMEDIATE", vec![]).await?;
    let registered = async {
        dir.execute(
            "INSERT INTO clinics (id, status, created_at, key_version) VALUES (?1, 'active', ?2, 1)",
            vec![clinic.as_str().into(), ctx.now.into()],
        )
        .await?;
        dir.execute(
            "INSERT INTO clinic_keys (clinic_id, version, root_version, wrapped, created_at) VALUES (?1, 1, ?2, ?3, ?4)",
            vec![clinic.as_str().into(), (root.version as i64).into(), wrapped.into(), ctx.now.into()],
        )
        .await?;
        Ok::<(), ApiError>(())
    }
    .await;
    store::finish(&dir, registered).await?;

    ctx.enter_clinic(&clinic, true).await?;
    let owner_id = ctx.new_id(kind::USER);
    let hash = password::hash(&req.owner.password, ctx.random());
    let db = ctx.db()?;
    db.execute(
        "INSERT INTO clinic (id, region, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        vec![
            clinic.as_str().into(),
            req.region.clone().into(),
            ctx.seal(CLINIC_NAME, clinic.as_str(), &name)?.into(),
            ctx.now.into(),
        ],
    )
    .await?;
    db.execute(
        "INSERT INTO users (id, name, email, email_term, role, password_hash, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'owner', ?5, ?6, ?6)",
        vec![
            owner_id.clone().into(),
            ctx.seal(USER_NAME, &owner_id, &owner_name)?.into(),
            ctx.seal(USER_EMAIL, &owner_id, &email)?.into(),
            ctx.term(TermKind::Email, &email)?.into(),
            hash.into(),
            ctx.now.into(),
        ],
    )
    .await?;
    ctx.audit.actor = Some((owner_id.clone(), Some(Role::Owner)));
    ctx.audit.resource = Some(format!("clinic/{clinic}"));
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
