//! The per-key register model: the sequential specification the linearizability search
//! replays operations against.
//!
//! State is `Option<KeyMeta>`: `None` before CreateKey and after the key is purged at the end
//! of its deletion window. Transitions follow AWS: while `PendingDeletion` only reads and
//! CancelKeyDeletion succeed, and CancelKeyDeletion leaves the key `Disabled`. The purge is
//! done by the cluster, not by a client, so it has no operation of its own: a read that finds
//! nothing while the key is pending deletion is where it becomes visible.

use crate::history::{KeyMeta, KeyStatus, Value, F};

/// Register state of one key.
pub type State = Option<KeyMeta>;

/// Result of applying one operation to a state `S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<S = State> {
    /// The operation cannot have happened (with this output) in this state.
    Illegal,
    /// Legal, and the state stays as it is.
    Unchanged,
    /// Legal, and the state becomes this.
    To(S),
}

/// Applies `f` with `input` to `state`. `output` is the acknowledged result (`None` for a
/// call of unknown outcome, which is only ever a write).
pub fn step(state: &State, f: F, input: &Value, output: Option<&Value>) -> Step {
    let live = |m: &KeyMeta| m.status != KeyStatus::PendingDeletion;
    match (f, state) {
        (F::CreateKey, None) => {
            let mut meta = match input {
                Value::Meta(Some(m)) => m.clone(),
                _ => KeyMeta::new(""),
            };
            meta.status = KeyStatus::Enabled;
            Step::To(Some(meta))
        }
        (F::CreateKey, Some(_)) => Step::Illegal,
        (F::Describe, _) => match output {
            None => Step::Unchanged,
            Some(Value::Meta(seen)) if seen == state => Step::Unchanged,
            Some(Value::Meta(None))
                if state
                    .as_ref()
                    .is_some_and(|m| m.status == KeyStatus::PendingDeletion) =>
            {
                Step::To(None)
            }
            Some(_) => Step::Illegal,
        },
        (F::UpdateDescription, Some(m)) if live(m) => match input {
            Value::Description(d) if *d == m.description => Step::Unchanged,
            Value::Description(d) => Step::To(Some(KeyMeta {
                description: d.clone(),
                ..m.clone()
            })),
            _ => Step::Illegal,
        },
        (F::Enable, Some(m)) if live(m) => set_status(m, KeyStatus::Enabled),
        (F::Disable, Some(m)) if live(m) => set_status(m, KeyStatus::Disabled),
        (F::ScheduleDelete, Some(m)) if live(m) => set_status(m, KeyStatus::PendingDeletion),
        (F::CancelDelete, Some(m)) if !live(m) => set_status(m, KeyStatus::Disabled),
        (F::Tag, Some(m)) if live(m) => match input {
            Value::Tags(tags) => {
                if tags.iter().all(|(k, v)| m.tags.get(k) == Some(v)) {
                    Step::Unchanged
                } else {
                    let mut next = m.clone();
                    next.tags
                        .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Step::To(Some(next))
                }
            }
            _ => Step::Illegal,
        },
        _ => Step::Illegal,
    }
}

fn set_status(m: &KeyMeta, status: KeyStatus) -> Step {
    if m.status == status {
        Step::Unchanged
    } else {
        Step::To(Some(KeyMeta {
            status,
            ..m.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(desc: &str, status: KeyStatus) -> State {
        Some(KeyMeta {
            description: desc.into(),
            status,
            tags: Default::default(),
        })
    }

    #[test]
    fn transitions_follow_aws_key_states() {
        use KeyStatus::*;
        let table: Vec<(State, F, Value, Option<Value>, Step)> = vec![
            (
                None,
                F::CreateKey,
                Value::Meta(meta("d", Disabled)),
                None,
                Step::To(meta("d", Enabled)),
            ),
            (
                meta("d", Enabled),
                F::CreateKey,
                Value::None,
                None,
                Step::Illegal,
            ),
            (
                meta("d", Enabled),
                F::Disable,
                Value::None,
                None,
                Step::To(meta("d", Disabled)),
            ),
            (
                meta("d", Disabled),
                F::Disable,
                Value::None,
                None,
                Step::Unchanged,
            ),
            (
                meta("d", PendingDeletion),
                F::Enable,
                Value::None,
                None,
                Step::Illegal,
            ),
            (
                meta("d", PendingDeletion),
                F::UpdateDescription,
                Value::Description("x".into()),
                None,
                Step::Illegal,
            ),
            (
                meta("d", Enabled),
                F::UpdateDescription,
                Value::Description("x".into()),
                None,
                Step::To(meta("x", Enabled)),
            ),
            (
                meta("d", Disabled),
                F::ScheduleDelete,
                Value::None,
                None,
                Step::To(meta("d", PendingDeletion)),
            ),
            (
                meta("d", PendingDeletion),
                F::ScheduleDelete,
                Value::None,
                None,
                Step::Illegal,
            ),
            (
                meta("d", PendingDeletion),
                F::CancelDelete,
                Value::None,
                None,
                Step::To(meta("d", Disabled)),
            ),
            (
                meta("d", Enabled),
                F::CancelDelete,
                Value::None,
                None,
                Step::Illegal,
            ),
            (None, F::Enable, Value::None, None, Step::Illegal),
            // reads
            (
                meta("d", Enabled),
                F::Describe,
                Value::None,
                Some(Value::Meta(meta("d", Enabled))),
                Step::Unchanged,
            ),
            (
                meta("d", Enabled),
                F::Describe,
                Value::None,
                Some(Value::Meta(meta("x", Enabled))),
                Step::Illegal,
            ),
            (
                meta("d", Enabled),
                F::Describe,
                Value::None,
                Some(Value::Meta(None)),
                Step::Illegal,
            ),
            (
                meta("d", PendingDeletion),
                F::Describe,
                Value::None,
                Some(Value::Meta(None)),
                Step::To(None),
            ),
            (
                None,
                F::Describe,
                Value::None,
                Some(Value::Meta(None)),
                Step::Unchanged,
            ),
        ];
        for (i, (state, f, input, output, want)) in table.into_iter().enumerate() {
            assert_eq!(
                step(&state, f, &input, output.as_ref()),
                want,
                "row {i}: {f:?}"
            );
        }
    }

    #[test]
    fn tags_merge_and_repeat_is_unchanged() {
        let s = meta("d", KeyStatus::Enabled);
        let tags: std::collections::BTreeMap<_, _> = [("a".to_string(), "1".to_string())].into();
        let Step::To(next) = step(&s, F::Tag, &Value::Tags(tags.clone()), None) else {
            panic!("tagging a live key changes it");
        };
        assert_eq!(next.as_ref().unwrap().tags, tags);
        assert_eq!(
            step(&next, F::Tag, &Value::Tags(tags), None),
            Step::Unchanged
        );
    }
}
