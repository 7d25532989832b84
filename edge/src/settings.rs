//! The Worker's configuration, from its environment: vars in `wrangler.toml`
//! (per region environment) and secrets set with `wrangler secret put`. The
//! names and their rules are [`amanah_functions::settings`]'s; a secret is
//! read only from the Worker's secrets, never from a var.

use amanah_functions::settings::{self, Kind};
use amanah_functions::App;
use worker::Env;

use crate::db::{self, EdgeHost};

/// Builds the application from the environment.
pub fn app(env: &Env) -> Result<App<EdgeHost>, String> {
    let s = settings::read(|name, kind| match kind {
        Kind::Plain => env.var(name).ok().map(|v| v.to_string()),
        Kind::Secret => env.secret(name).ok().map(|v| v.to_string()),
    })?;
    let checkpoints = crate::checkpoints::R2Checkpoints::from_env(env).ok();
    Ok(App::new(
        db::host(s.db, s.db_timeout, s.root).with_checkpoints(checkpoints),
        s.config,
    ))
}
