//! The register workload: a few keys, each a register of (description, state, tags), read and
//! written concurrently. Written values are unique so that every read names the write it saw.
//!
//! Mix per call: 40% read, 20% UpdateKeyDescription, 10% EnableKey, 10% DisableKey, 20%
//! TagResource (tag keys `t0`..`t4`, so a key never nears the tag limit).

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{lock, recorded_read, retry_until, Ctx};
use crate::history::{KeyMeta, Value, F};

/// Creates `n` register keys, each recorded as an acknowledged CreateKey (the register's
/// first write). Fails if the cluster cannot create them within `within`.
pub async fn setup(ctx: &Ctx, n: usize, within: Duration) -> anyhow::Result<()> {
    for i in 0..n {
        let description = format!("reg-{i}");
        let created = retry_until(within, |_| async {
            let meta = KeyMeta::new(description.clone());
            let pending = ctx.recorder.invoke(
                ctx.new_process(),
                F::CreateKey,
                None,
                Value::Meta(Some(meta.clone())),
            );
            match ctx
                .client
                .create_key()
                .description(description.clone())
                .send()
                .await
            {
                Ok(out) => {
                    let id = out.key_metadata.unwrap_or_default().key_id;
                    ctx.recorder
                        .ok_created(pending, &id, Value::Meta(Some(meta)));
                    Some(id)
                }
                Err(e) => {
                    // A setup create of unknown outcome leaves at most an unused key behind.
                    match super::classify(&e) {
                        super::Outcome::Fail(m) => ctx.recorder.fail(pending, m),
                        super::Outcome::Info(m) => ctx.recorder.info(pending, m),
                    };
                    None
                }
            }
        })
        .await;
        match created {
            Some(id) => lock(&ctx.register_keys).push(id),
            None => anyhow::bail!("could not create register key {i} within {within:?}"),
        }
    }
    Ok(())
}

/// One call by `process`. Returns true when the process crashed (`info`).
pub async fn step(ctx: &Ctx, process: u64, rng: &mut (impl Rng + Send)) -> bool {
    let keys = ctx.register_keys();
    let Some(key) = keys.choose(rng) else {
        return false;
    };
    let key = key.as_str();
    let kms = &ctx.client;
    match rng.gen_range(0..100) {
        0..40 => recorded_read(ctx, process, key).await,
        40..60 => {
            let d = format!("d{}", ctx.unique());
            let fut = kms
                .update_key_description()
                .key_id(key)
                .description(d.clone())
                .send();
            ctx.call(
                process,
                F::UpdateDescription,
                Some(key),
                Value::Description(d),
                fut,
                |_| Value::None,
            )
            .await
        }
        60..70 => {
            let fut = kms.enable_key().key_id(key).send();
            ctx.call(process, F::Enable, Some(key), Value::None, fut, |_| {
                Value::None
            })
            .await
        }
        70..80 => {
            let fut = kms.disable_key().key_id(key).send();
            ctx.call(process, F::Disable, Some(key), Value::None, fut, |_| {
                Value::None
            })
            .await
        }
        _ => {
            let (k, v) = (
                format!("t{}", rng.gen_range(0..5)),
                format!("v{}", ctx.unique()),
            );
            let fut = kms
                .tag_resource()
                .key_id(key)
                .tag(k.clone(), v.clone())
                .send();
            let tags = [(k, v)].into_iter().collect();
            ctx.call(process, F::Tag, Some(key), Value::Tags(tags), fut, |_| {
                Value::None
            })
            .await
        }
    }
}
