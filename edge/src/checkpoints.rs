//! Audit checkpoints in the Worker's object store binding
//! (`AUDIT_CHECKPOINTS`, an R2 bucket per region): one object per
//! checkpoint, `<region>/<chain>/<seq>-<unix time>.json` (its text also in
//! the object's custom metadata, for listing), written only if
//! no object of that name exists (R2's `onlyIf`), so the Worker never
//! replaces one it kept. In production the bucket also carries an R2 bucket
//! lock rule, so not even a leaked API token deletes a checkpoint before
//! its retention ends. What is checked and signed is
//! [`amanah_functions::jobs::checkpoints`].

use amanah_functions::checkpoint::Checkpoint;
use amanah_functions::jobs::checkpoints::CheckpointStore;
use worker::send::{SendFuture, SendWrapper};
use worker::{Bucket, Conditional, Include};

/// The binding's name in `wrangler.toml`.
pub const BINDING: &str = "AUDIT_CHECKPOINTS";

/// The custom metadata field that repeats an object's text (a checkpoint
/// is about 400 bytes; R2 allows 2 KiB of metadata), so that listing a
/// chain's checkpoints reads them without a request per object.
const METADATA: &str = "checkpoint";

/// A region's checkpoints in its R2 bucket.
pub struct R2Checkpoints(SendWrapper<Bucket>);

impl R2Checkpoints {
    /// The Worker's `AUDIT_CHECKPOINTS` binding.
    pub fn from_env(env: &worker::Env) -> Result<Self, String> {
        env.bucket(BINDING)
            .map(|b| R2Checkpoints(SendWrapper(b)))
            .map_err(|_| format!("no {BINDING} binding"))
    }
}

fn prefix(region: &str, chain: &str) -> String {
    format!("{region}/{chain}/")
}

impl CheckpointStore for R2Checkpoints {
    fn describe(&self) -> String {
        format!("r2:{BINDING}")
    }

    fn load(
        &self,
        region: &str,
        chain: &str,
    ) -> impl std::future::Future<Output = Result<Vec<String>, String>> + Send {
        let prefix = prefix(region, chain);
        SendFuture::new(async move {
            // Each object carries its text in its custom metadata too, so a
            // list page (up to 1000 objects) reads them all in one call.
            let mut found = Vec::new();
            let mut cursor = None;
            loop {
                let mut list = self
                    .0
                     .0
                    .list()
                    .prefix(prefix.clone())
                    .include(vec![Include::CustomMetadata]);
                if let Some(c) = cursor.take() {
                    list = list.cursor(c);
                }
                let page = list.execute().await.map_err(|e| e.to_string())?;
                for o in page.objects() {
                    let text = o
                        .custom_metadata()
                        .ok()
                        .and_then(|mut m| m.remove(METADATA));
                    found.push((o.key(), text));
                }
                match (page.truncated(), page.cursor()) {
                    (true, Some(c)) => cursor = Some(c),
                    _ => break,
                }
            }
            // Oldest first: the sequence number is zero-padded, then the time.
            found.sort();
            let mut out = Vec::with_capacity(found.len());
            for (key, text) in found {
                if let Some(text) = text {
                    out.push(text);
                    continue;
                }
                // Only an object without the metadata costs a read of its own.
                let object = self.0 .0.get(&key).execute().await;
                let Some(object) = object.map_err(|e| e.to_string())? else {
                    continue;
                };
                let text = match object.body() {
                    Some(b) => b.text().await.map_err(|e| e.to_string())?,
                    None => String::new(),
                };
                out.push(text);
            }
            Ok(out)
        })
    }

    fn append(
        &self,
        region: &str,
        c: &Checkpoint,
        text: &str,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send {
        let at = amanah_functions::clock::parse_rfc3339(&c.at).unwrap_or(0);
        let key = format!("{}{:012}-{at:012}.json", prefix(region, &c.chain), c.seq);
        let text = text.to_owned();
        SendFuture::new(async move {
            let only_if_new = Conditional {
                etag_does_not_match: Some("*".into()),
                ..Conditional::default()
            };
            let put = self
                .0
                 .0
                .put(&key, text.clone().into_bytes())
                .custom_metadata([(METADATA.to_owned(), text.clone())])
                .only_if(only_if_new)
                .execute()
                .await
                .map_err(|e| e.to_string())?;
            if put.is_some() {
                return Ok(());
            }
            // The name is taken: the same checkpoint again (two runs in one
            // second sign the same head identically) is kept already;
            // anything else under the name is not replaced.
            let existing = match self.0 .0.get(&key).execute().await {
                Ok(Some(o)) => match o.body() {
                    Some(b) => b.text().await.ok(),
                    None => None,
                },
                _ => None,
            };
            if existing.as_deref() == Some(text.as_str()) {
                Ok(())
            } else {
                Err(format!("another checkpoint is kept as {key}"))
            }
        })
    }
}
