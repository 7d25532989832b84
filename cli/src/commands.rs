//! The operator commands' command-line side: arguments to calls of
//! `amanah::ops`, results to text or (`--json`) one JSON document.

use std::path::Path;

use amanah::native_host::NativeHost;
use amanah::ops::{self, backup, checkpoints, drill, keys, manifest, publish, restore};
use amanah::root_key;
use amanah_functions::clock::parse_rfc3339;
use amanah_functions::ids::ClinicId;
use amanah_functions::{App, Config, RegionInfo};
use amanah_region_config::{Region, Regions};
use serde::Serialize;

use crate::args::{
    AuditArgs, BackupArgs, DrillArgs, KeysStatusArgs, MaintainArgs, Remote, RestoreArgs,
    RetireRootArgs, RotateClinicArgs, RotateRootArgs, StaffAddArgs,
};

pub(crate) fn info(r: &Region, url: Option<String>) -> RegionInfo {
    amanah::ops::region_info(r, url)
}

/// The regions named on the command line, or every default one.
pub(crate) fn chosen_regions(names: &[String]) -> Result<Vec<Region>, String> {
    let all = Regions::builtin();
    if names.is_empty() {
        Ok(all.default_enabled())
    } else {
        all.select(names).map_err(|e| e.to_string())
    }
}

/// One region's host on the data directory, with its root key (created on
/// first use).
pub(crate) fn region_host(
    data_dir: &Path,
    key_dir: &Path,
    region: &Region,
) -> Result<NativeHost, String> {
    let (ring, created) = root_key::load_or_create(key_dir, &region.id)?;
    let key_path = root_key::path(key_dir, &region.id);
    if created {
        tracing::info!(region = region.id, path = %key_path.display(), "created region root key (0600)");
    } else {
        tracing::info!(region = region.id, path = %key_path.display(), versions = ?ring.versions(), "using region root keys");
    }
    let keys = root_key::KeyFile::follow(key_dir, &region.id)?;
    NativeHost::with_keys(&region.id, data_dir.to_path_buf(), keys)
        .map_err(|e| format!("cannot create the data directory for {}: {e}", region.id))
}

/// `amanah maintain`: the region's scheduled work, once per region.
pub async fn maintain(args: MaintainArgs) -> Result<(), String> {
    let key_dir = args
        .key_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys"));
    let mut problems = 0;
    for region in chosen_regions(&args.regions)? {
        let host = region_host(&args.data_dir, &key_dir, &region)?
            .with_checkpoint_dir(args.checkpoint_dir.clone());
        let mut config = Config::new(info(&region, None), vec![info(&region, None)]);
        config.test_hooks = args.insecure_test_hooks;
        let app = App::new(host, config);
        let r = amanah_functions::jobs::maintain(&app)
            .await
            .map_err(|e| format!("maintain of {} failed: {}", region.id, e.log_text()))?;
        match &r.purge {
            Ok(p) => println!(
                "purged region={} clinics={} patients={} failed={} unscrubbed={}",
                region.id, p.clinics, p.patients, p.failed, p.unscrubbed
            ),
            Err(e) => println!("purge region={} error={e}", region.id),
        }
        match &r.sweep {
            Ok(s) => println!(
                "key sweep region={} swept={} resealed_rows={} failed={}",
                region.id, s.swept, s.resealed_rows, s.failed
            ),
            Err(e) => println!("key sweep region={} error={e}", region.id),
        }
        match &r.checkpoints {
            None => {}
            Some(Ok(c)) => println!(
                "audit checkpoint region={} chains={} signed={} failed={}",
                region.id,
                c.chains,
                c.signed,
                c.failed.len()
            ),
            Some(Err(e)) => println!("audit checkpoint region={} error={e}", region.id),
        }
        problems += usize::from(!r.ok());
    }
    if problems > 0 {
        return Err(format!(
            "{problems} region(s) had problems (a clinic not purged, a sweep or a chain failed); see above"
        ));
    }
    Ok(())
}

pub async fn staff_add(args: StaffAddArgs) -> Result<(), String> {
    let region = chosen_regions(std::slice::from_ref(&args.region))?
        .pop()
        .ok_or("no such region")?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let key_dir = args
        .key_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("keys"));
    let host = region_host(&args.data_dir, &key_dir, &region)?;
    let app = App::new(
        host,
        Config::new(info(&region, None), vec![info(&region, None)]),
    );
    let staff = app
        .add_staff(&args.role, &args.email, password)
        .await
        .map_err(|e| match e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.log_text(),
        })?;
    println!("id={}", staff.id);
    println!("totp_secret={}", staff.totp_secret);
    println!("otpauth_uri={}", staff.otpauth_uri);
    Ok(())
}

/// Prints `value` as JSON, or as the text `human` makes of it.
fn emit<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<(), String> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", human(value));
    }
    Ok(())
}

fn one_region(name: &str) -> Result<Region, String> {
    chosen_regions(std::slice::from_ref(&name.to_owned()))?
        .pop()
        .ok_or_else(|| "no such region".to_owned())
}

fn clinic_id(text: &str) -> Result<ClinicId, String> {
    ClinicId::parse(text).ok_or_else(|| format!("{text:?} is not a clinic id"))
}

/// The regions asked for that have data here (all default ones if none
/// was named; a named one without data is an error).
fn regions_with_data(names: &[String], data_dir: &Path) -> Result<Vec<Region>, String> {
    let regions = chosen_regions(names)?;
    if !names.is_empty() {
        return Ok(regions);
    }
    let present: Vec<Region> = regions
        .into_iter()
        .filter(|r| data_dir.join(&r.id).join("directory.db").exists())
        .collect();
    if present.is_empty() {
        return Err(format!("no region has data under {}", data_dir.display()));
    }
    Ok(present)
}

/// Binds `$app` to the application over `$region`: on its sqld with
/// `--sqld`, else on the files of `--data-dir`; then evaluates `$body`.
macro_rules! on_region {
    ($remote:expr, $place:expr, $region:expr, |$app:ident| $body:expr) => {
        match &$remote.sqld {
            Some(url) => {
                let $app = amanah::sqld::open(url, &$place.key_dir(), $region).await?;
                $body
            }
            None => {
                let $app = ops::open_region(&$place.data_dir, &$place.key_dir(), $region)?;
                $body
            }
        }
    };
}

/// The regions a command covers: with `--sqld`, the one region named;
/// else those of [`regions_with_data`].
fn regions_of(names: &[String], remote: &Remote, data_dir: &Path) -> Result<Vec<Region>, String> {
    if remote.sqld.is_none() {
        return regions_with_data(names, data_dir);
    }
    match chosen_regions(names)?.as_slice() {
        [one] if names.len() == 1 => Ok(vec![one.clone()]),
        _ => Err("--sqld is one region's server: name that region (--regions pk)".into()),
    }
}

pub async fn keys_status(args: KeysStatusArgs) -> Result<(), String> {
    let p = &args.place;
    let mut all = Vec::new();
    for region in regions_of(&args.regions, &args.remote, &p.data_dir)? {
        let status = on_region!(args.remote, p, &region, |app| {
            keys::status(&app, &p.key_dir()).await?
        });
        all.push(status);
    }
    emit(p.json, &all, |all| {
        let mut out = String::new();
        for s in all {
            let wraps: Vec<String> = s
                .wrapped_by_root
                .iter()
                .map(|(v, n)| format!("{v} wraps {n}"))
                .collect();
            out.push_str(&format!(
                "region {}: root key v{} ({}, mode {}); versions held {:?}; {}{}\n  region key v{}, checkpoint public key {}\n  clinics: {} ({} wrapped by an older root version)\n",
                s.region,
                s.root_key_version,
                s.root_key_file.display(),
                s.root_key_mode,
                s.root_key_versions,
                wraps.join(", "),
                if s.rotation_unfinished {
                    " (rotation unfinished: run keys rotate-root again)"
                } else {
                    ""
                },
                s.region_key_version,
                s.checkpoint_public_key,
                s.clinics.len(),
                s.wrapped_by_other_root,
            ));
            for c in &s.clinics {
                match (c.key_version, c.wrapped_by_root_version) {
                    (Some(v), Some(r)) => out.push_str(&format!(
                        "  {} {}: data key v{v} ({} older), wrapped by root v{r}{}\n",
                        c.clinic,
                        c.status,
                        c.older_versions,
                        if c.sweep_unfinished {
                            ", sweep unfinished"
                        } else {
                            ""
                        }
                    )),
                    _ => out.push_str(&format!(
                        "  {} {}: no data key (destroyed)\n",
                        c.clinic, c.status
                    )),
                }
            }
        }
        out
    })
}

pub async fn rotate_root(args: RotateRootArgs) -> Result<(), String> {
    let p = &args.place;
    let region = one_region(&args.region)?;
    let r = match &args.remote.sqld {
        Some(url) => {
            let app = amanah::sqld::open(url, &p.key_dir(), &region).await?;
            keys::rotate_root_remote(
                &app,
                &p.key_dir(),
                &args.host_urls,
                &amanah::sqld::host_root_versions,
                args.batch,
                p.json,
            )
            .await?
        }
        None => {
            if !args.host_urls.is_empty() {
                return Err(
                    "--host-url goes with --sqld (a native region's hosts follow the key file)"
                        .into(),
                );
            }
            let app = ops::open_region(&p.data_dir, &p.key_dir(), &region)?;
            keys::rotate_root(&app, &p.key_dir(), args.batch, p.json).await?
        }
    };
    emit(p.json, &r, |r| {
        if args.remote.sqld.is_some() && r.added {
            return format!(
                "region {}: root key v{} added to {}; nothing is wrapped by it yet.\n  Redeploy the region's hosts so that their ROOT_KEY holds it, then run this command again to re-wrap.\n",
                r.region,
                r.version,
                amanah::root_key::path(&p.key_dir(), &r.region).display()
            );
        }
        format!(
            "region {}: every key is wrapped by root key v{} ({} re-wrapped now{}){}\n",
            r.region,
            r.version,
            r.rewrapped,
            if r.added {
                ", version added"
            } else {
                ", an unfinished rotation resumed"
            },
            if r.retirable.is_empty() {
                String::new()
            } else {
                format!(
                    "; older versions {:?} wrap nothing and can be retired: amanah keys retire-root --region {} --version N",
                    r.retirable, r.region
                )
            }
        )
    })
}

pub async fn retire_root(args: RetireRootArgs) -> Result<(), String> {
    let p = &args.place;
    let region = one_region(&args.region)?;
    let r = on_region!(args.remote, p, &region, |app| {
        keys::retire_root(&app, &p.key_dir(), args.version).await?
    });
    emit(p.json, &r, |r| {
        format!(
            "region {}: root key v{} retired; the key file holds {:?}{}\n",
            r.region,
            r.retired,
            r.held,
            if args.remote.sqld.is_some() {
                "; redeploy the region's hosts so that their ROOT_KEY drops it"
            } else {
                ""
            }
        )
    })
}

pub async fn rotate_clinic(args: RotateClinicArgs) -> Result<(), String> {
    let p = &args.place;
    let clinic = clinic_id(&args.clinic)?;
    let region = one_region(clinic.region())?;
    let r = on_region!(args.remote, p, &region, |app| {
        keys::rotate_clinic(&app, &clinic, !args.no_sweep, args.batch, p.json).await?
    });
    let result = emit(p.json, &r, |r| {
        let mut out = format!(
            "clinic {}: data key v{}{}",
            r.clinic,
            r.version,
            if r.resumed {
                " (an unfinished rotation resumed)"
            } else {
                " (new)"
            }
        );
        if r.swept {
            out.push_str(&format!(
                "; {} row(s) re-sealed, {} search index(es) rebuilt, {} value(s) left under older versions\n",
                r.resealed_rows, r.rebuilt_terms, r.left
            ));
        } else {
            out.push_str("; not swept now: the region's host re-seals the rest in the background (`amanah serve` every --purge-interval, the Worker on its cron, Spin on its purge call)\n");
        }
        out
    });
    if r.swept && r.left > 0 {
        return Err(format!(
            "{} value(s) were written under an older key version during the sweep; run rotate-clinic again to finish",
            r.left
        ));
    }
    result
}

pub async fn backup(args: BackupArgs) -> Result<(), String> {
    let p = &args.place;
    let region = one_region(&args.region)?;
    let (_, report) = on_region!(args.remote, p, &region, |app| {
        backup::run(&app, &args.out, args.since.as_deref(), p.json).await?
    });
    emit(p.json, &report, |r| {
        let mut out = format!(
            "backup {} of region {} in {}: {} clinic(s), {} carried over, {} bytes, {:.1} s\n",
            r.id,
            r.region,
            r.dir.display(),
            r.clinics,
            r.carried_over,
            r.bytes,
            r.seconds
        );
        for c in &r.without_database {
            out.push_str(&format!(
                "  warning: clinic {c} is in the directory but has no database (a sign-up in flight or one that failed; if it is older, its database is lost)\n"
            ));
        }
        out
    })
}

pub async fn restore(args: RestoreArgs) -> Result<(), String> {
    let at = match &args.at {
        Some(t) => Some(
            parse_rfc3339(t).ok_or("--at must be an RFC 3339 time, e.g. 2026-12-02T09:00:00Z")?,
        ),
        None => None,
    };
    let from = manifest::choose(&args.from, at)?;
    let claimed = manifest::claimed_region(&from)?;
    if let Some(asked) = &args.region {
        if asked != &claimed {
            return Err(ops::region_refusal(&claimed, asked));
        }
    }
    let only = args.clinic.as_deref().map(clinic_id).transpose()?;
    if let Some(c) = &only {
        if c.region() != claimed {
            return Err(ops::region_refusal(c.region(), &claimed));
        }
    }
    let region = one_region(&claimed)?;
    if args.remote.sqld.is_some() && args.keys_from.is_some() {
        return Err(
            "--keys-from names a data dir; with --sqld the server's directory is the key store"
                .into(),
        );
    }
    let keys_from = args.keys_from.clone().unwrap_or_else(|| "data".into());
    let key_dir = match (&args.key_dir, &args.remote.sqld) {
        (Some(k), _) => k.clone(),
        (None, None) => keys_from.join("keys"),
        (None, Some(_)) => {
            return Err(
                "--key-dir: with --sqld, name the directory of the region's root key file".into(),
            )
        }
    };
    // The destination server, checked fresh before anything is written.
    let into = match (&args.into_sqld, &args.into_admin) {
        (Some(url), Some(admin)) => {
            let app = amanah::sqld::open_fresh(url, admin, &key_dir, &region)?;
            publish::check_fresh(&app, url).await?;
            Some((url, app))
        }
        _ => None,
    };
    let mut report = match &args.remote.sqld {
        // The key store is the region's directory on its libSQL server.
        Some(url) => {
            let keys = amanah::sqld::open(url, &key_dir, &region).await?;
            restore::run(&from, &args.data_dir, &keys, only.as_ref(), args.json).await?
        }
        None => {
            let keys = ops::open_region(&keys_from, &key_dir, &region)?;
            restore::run(&from, &args.data_dir, &keys, only.as_ref(), args.json).await?
        }
    };
    if let Some((url, into)) = &into {
        let staged = ops::open_region(&args.data_dir, &key_dir, &region)?;
        let clinics = report
            .restored
            .iter()
            .map(|c| clinic_id(&c.id))
            .collect::<Result<Vec<_>, _>>()?;
        report.published = Some(publish::run(&staged, into, url, &clinics, args.json).await?);
    }
    emit(args.json, &report, |r| {
        let mut out = format!(
            "restored backup {} (taken {}) of region {} into {} in {:.1} s: {} clinic(s), platform audit {} entries; all verified\n",
            r.backup_id,
            r.started_at,
            r.region,
            r.data_dir.display(),
            r.seconds,
            r.restored.len(),
            r.platform_audit_entries
        );
        for c in &r.restored {
            out.push_str(&format!(
                "  {} {}: {} audit entries, chain verified\n",
                c.id, c.status, c.audit_entries
            ));
        }
        for u in &r.unreadable {
            out.push_str(&format!("  {} not restored: {}\n", u.id, u.why));
        }
        for c in &r.without_database {
            out.push_str(&format!(
                "  {c} not restored: it had no database when the backup was taken\n"
            ));
        }
        match &r.published {
            Some(p) => out.push_str(&format!(
                "copied into the libSQL server at {}: {} namespaces, {} rows, verified there; \
                 point the region's hosts at it (the root key of {} is unchanged)\n",
                p.url,
                p.namespaces,
                p.rows,
                key_dir.display()
            )),
            None => out.push_str(&format!(
                "serve it with: amanah serve --data-dir {} --key-dir {}\n",
                r.data_dir.display(),
                key_dir.display()
            )),
        }
        out
    })
}

pub async fn drill(args: DrillArgs) -> Result<(), String> {
    let p = &args.place;
    let region = one_region(&args.region)?;
    let only = args.clinic.as_deref().map(clinic_id).transpose()?;
    if let Some(c) = &only {
        if c.region() != region.id {
            return Err(ops::region_refusal(c.region(), &region.id));
        }
    }
    let report = on_region!(args.remote, p, &region, |app| {
        drill::run(&app, &args.scratch, only.as_ref(), p.json).await?
    });
    let file = args
        .report
        .clone()
        .unwrap_or_else(|| args.scratch.join("drill.json"));
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    emit(p.json, &report, |r| {
        format!(
            "drill of region {}: {} clinic(s), {} rows, {} audit entries restored and verified\n  backup {:.1} s ({} bytes), restore + verification {:.1} s\n  RPO {:.0} s (target {:.0} s): {}\n  RTO {:.1} s (target {:.0} s): {}\n  result written to {}\n",
            r.region,
            r.clinics,
            r.rows,
            r.audit_entries,
            r.backup_seconds,
            r.backup_bytes,
            r.restore_seconds,
            r.rpo_seconds,
            r.rpo_target_seconds,
            if r.rpo_met { "met" } else { "MISSED" },
            r.rto_seconds,
            r.rto_target_seconds,
            if r.rto_met { "met" } else { "MISSED" },
            file.display()
        )
    })?;
    if !report.ok {
        return Err("the drill missed its RPO or RTO target".into());
    }
    Ok(())
}

pub async fn audit(args: AuditArgs, sign: bool) -> Result<(), String> {
    let p = &args.place;
    let dir = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| p.data_dir.join("checkpoints"));
    let only = args.clinic.as_deref().map(clinic_id).transpose()?;
    if sign && only.is_some() {
        return Err(
            "audit checkpoint covers every chain of a region; --clinic is for verify".into(),
        );
    }
    let names = match (&only, args.regions.is_empty()) {
        (Some(c), true) => vec![c.region().to_owned()],
        _ => args.regions.clone(),
    };
    let mut reports = Vec::new();
    for region in regions_of(&names, &args.remote, &p.data_dir)? {
        let report = on_region!(args.remote, p, &region, |app| {
            if sign {
                checkpoints::checkpoint(&app, &dir, p.json).await?
            } else {
                checkpoints::verify(&app, &dir, only.as_ref(), p.json).await?
            }
        });
        reports.push(report);
    }
    emit(p.json, &reports, |reports| {
        let mut out = String::new();
        for r in reports {
            for c in &r.chains {
                let mark = match (c.status, c.signed) {
                    (_, true) => format!("checkpointed at {} entries", c.entries),
                    ("ok", _) => format!(
                        "ok, {} entries, matches {} checkpoint(s)",
                        c.entries, c.checkpoints
                    ),
                    ("no_checkpoint", _) => format!("{} entries, no checkpoint yet", c.entries),
                    ("purged", _) => "purged (its chain is gone by design)".to_owned(),
                    _ => "FAILED".to_owned(),
                };
                out.push_str(&format!("{} {}: {mark}\n", r.region, c.chain));
                for problem in &c.problems {
                    out.push_str(&format!("  {problem}\n"));
                }
            }
        }
        out
    })?;
    let failed: usize = reports
        .iter()
        .flat_map(|r| &r.chains)
        .filter(|c| !c.problems.is_empty())
        .count();
    if failed > 0 {
        return Err(format!(
            "{failed} audit chain(s) failed verification{}",
            if sign {
                " and were not checkpointed"
            } else {
                ""
            }
        ));
    }
    Ok(())
}
