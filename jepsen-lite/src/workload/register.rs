//! The register workload: a few keys, each a register of (description, state, tags), read and
//! written concurrently. Written values are unique so that every read names the write it saw.
//!
//! Mix per call: 40% read, 20% UpdateKeyDescription, 10% EnableKey, 10% DisableKey, 20%
//! TagResource (tag keys `t0`..`t4`, so a key never nears the tag limit).
//!
//! Every other key (even setup index) is also *deletable*: 6% of its calls are
//! ScheduleKeyDeletion (7 days, the shortest window AWS allows, so nothing is purged during a
//! run) and 6% CancelKeyDeletion, taken from TagResource's share. While it is pending deletion,
//! writes other than CancelKeyDeletion fail with KMSInvalidStateException (a definite
//! `fail`), reads see `PendingDeletion`, and a cancel leaves it Disabled: the model, the
//! resurrection checker and the lost-writes exemption for deleted keys all get real input.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{lock, recorded_read, retry_until, Ctx};
use crate::history::{KeyMeta, Value, F};

/// ScheduleKeyDeletion's window: the shortest allowed, and far longer than any run.
const DELETION_WINDOW_DAYS: i32 = 7;

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
    let Some(index) = (0..keys.len()).collect::<Vec<_>>().choose(rng).copied() else {
        return false;
    };
    let key = keys[index].as_str();
    let kms = &ctx.client;
    let roll = rng.gen_range(0..100);
    if index % 2 == 0 {
        match roll {
            88..94 => {
                let fut = kms
                    .schedule_key_deletion()
                    .key_id(key)
                    .pending_window_in_days(DELETION_WINDOW_DAYS)
                    .send();
                return ctx
                    .call(
                        process,
                        F::ScheduleDelete,
                        Some(key),
                        Value::None,
                        fut,
                        |_| Value::None,
                    )
                    .await;
            }
            94..100 => {
                let fut = kms.cancel_key_deletion().key_id(key).send();
                return ctx
                    .call(
                        process,
                        F::CancelDelete,
                        Some(key),
                        Value::None,
                        fut,
                        |_| Value::None,
                    )
                    .await;
            }
            _ => {}
        }
    }
    match roll {
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
