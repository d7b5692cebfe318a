//! Key rotation: what a key records about it, and the pure rules `apply` and the leader's
//! scheduler follow (design: `docs/rotation.md`).
//!
//! Storage nodes never hold the domain key, so they cannot make material. A front therefore
//! stores the *next* version's wrapped material with the key ahead of time
//! ([`KeyRotation::prepared`]); a rotation — automatic (decided by the Raft leader from
//! replicated state) or on demand — only *activates* it with [`Command::RotateKey`], an
//! idempotent command keyed by `(key, to_version)`. After an activation a front prepares the
//! following version.
//!
//! # Layout
//!
//! ```text
//!  EnableKeyRotation / StartOnDemandRotation / PrepareNextMaterial   (fronts; carry wrapped material)
//!        |                                  |
//!        v                                  v
//!  KeyRotation { period, next date, prepared, on-demand start, history }
//!        ^
//!        |  due_rotations(state, now) -> [RotateKey { key, to_version, type }]   (leader)
//! ```

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::command::{Change, Command, CommandOutput};
use crate::error::DomainError;
use crate::model::{EpochMillis, KeyRecord, KeySpec, KeyState, MaterialVersion, Origin, State};
use crate::state::state_phrase;

/// Allowed automatic rotation periods, in days (AWS's `RotationPeriodInDays`).
pub const ROTATION_PERIOD_DAYS: RangeInclusive<u32> = 90..=2560;
/// The period EnableKeyRotation uses when none is given.
pub const DEFAULT_ROTATION_PERIOD_DAYS: u32 = 365;
/// Most on-demand rotations one key may ever have (AWS quota).
pub const MAX_ON_DEMAND_ROTATIONS: usize = 10;
/// An on-demand rotation is refused this close to a due automatic rotation, as in AWS.
pub const CONFLICT_WINDOW_MS: u64 = 20 * 60 * 1000;
const DAY_MILLIS: u64 = 86_400_000;

/// `RotationType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RotationType {
    /// Scheduled by the rotation period.
    Automatic,
    /// Requested with RotateKeyOnDemand.
    OnDemand,
}

impl RotationType {
    /// The AWS wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationType::Automatic => "AUTOMATIC",
            RotationType::OnDemand => "ON_DEMAND",
        }
    }
}

/// One completed rotation (a `ListKeyRotations` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRecord {
    /// The material version that became current.
    pub version: u32,
    /// When it became current.
    pub rotation_date: EpochMillis,
    /// Automatic or on demand.
    pub rotation_type: RotationType,
}

/// Everything a key records about rotation. The default is "never rotated, automatic
/// rotation off", which is also what records written before rotation existed read as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRotation {
    /// Automatic rotation period in days; `None` while automatic rotation is disabled.
    pub period_days: Option<u32>,
    /// When the next automatic rotation is due (set while automatic rotation is enabled).
    pub next_rotation_date: Option<EpochMillis>,
    /// The next version's material, wrapped by a front ahead of time. Its version is always
    /// [`next_version`] of the key; activation moves it into `materials`.
    pub prepared: Option<MaterialVersion>,
    /// Set while an on-demand rotation is requested but not yet activated.
    pub on_demand_start_date: Option<EpochMillis>,
    /// Completed rotations, oldest first.
    pub history: Vec<RotationRecord>,
}

/// The version the next rotation makes current.
pub fn next_version(key: &KeyRecord) -> u32 {
    key.materials
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
        .max(key.current_material_version)
        .saturating_add(1)
}

/// Rotation exists only for symmetric encryption keys whose material keyraft generated.
pub fn check_rotatable(key: &KeyRecord) -> Result<(), DomainError> {
    if key.key_spec != KeySpec::SymmetricDefault {
        return Err(DomainError::UnsupportedOperation(format!(
            "{} key rotation is not supported for asymmetric or HMAC KMS keys.",
            key.arn
        )));
    }
    if key.origin != Origin::AwsKms {
        return Err(DomainError::UnsupportedOperation(format!(
            "{} key rotation is not supported for KMS keys with imported key material.",
            key.arn
        )));
    }
    Ok(())
}

/// EnableKeyRotation, DisableKeyRotation and RotateKeyOnDemand need an enabled key: a
/// disabled one is `DisabledException`, any other state `KMSInvalidStateException`.
pub fn check_rotation_state(key: &KeyRecord) -> Result<(), DomainError> {
    match key.state {
        KeyState::Enabled | KeyState::Updating => Ok(()),
        KeyState::Disabled => Err(DomainError::Disabled(format!("{} is disabled.", key.arn))),
        other => Err(DomainError::InvalidState(format!(
            "{} is {}.",
            key.arn,
            state_phrase(other)
        ))),
    }
}

/// AWS's validation message for a period outside 90..=2560.
pub fn check_period(days: u32) -> Result<(), DomainError> {
    if ROTATION_PERIOD_DAYS.contains(&days) {
        return Ok(());
    }
    let bound = if days < *ROTATION_PERIOD_DAYS.start() {
        format!("greater than or equal to {}", ROTATION_PERIOD_DAYS.start())
    } else {
        format!("less than or equal to {}", ROTATION_PERIOD_DAYS.end())
    };
    Err(DomainError::Validation(format!(
        "1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to \
         satisfy constraint: Member must have value {bound}"
    )))
}

/// Whether the key wants a front to prepare its next material: automatic rotation is on or
/// an on-demand rotation waits, and nothing is prepared yet.
pub fn needs_material(key: &KeyRecord) -> bool {
    let r = &key.rotation;
    r.prepared.is_none()
        && !crate::multi_region::is_replica(key)
        && (r.period_days.is_some() || r.on_demand_start_date.is_some())
        && check_rotatable(key).is_ok()
        && !matches!(
            key.state,
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
        )
}

/// Ids of the keys that [`needs_material`].
pub fn awaiting_material(state: &State) -> Vec<String> {
    state
        .keys
        .values()
        .filter(|k| needs_material(k))
        .map(|k| k.key_id.clone())
        .collect()
}

/// The rotations the leader should propose now: an on-demand request first, else an
/// automatic rotation whose date has come. Only enabled keys with prepared material rotate;
/// each command names the version it activates, so proposing it twice (two leaders, a retry)
/// rotates once.
pub fn due_rotations(state: &State, now: EpochMillis) -> Vec<Command> {
    state
        .keys
        .values()
        .filter(|k| {
            k.state == KeyState::Enabled
                && check_rotatable(k).is_ok()
                && !crate::multi_region::is_replica(k)
        })
        .filter_map(|k| {
            // Only what `apply` will accept, so the leader never proposes a no-op every tick.
            let prepared = k
                .rotation
                .prepared
                .as_ref()
                .filter(|p| p.version == next_version(k))?;
            let rotation_type = if k.rotation.on_demand_start_date.is_some() {
                RotationType::OnDemand
            } else if k.rotation.period_days.is_some()
                && k.rotation.next_rotation_date.is_some_and(|d| d <= now)
            {
                RotationType::Automatic
            } else {
                return None;
            };
            Some(Command::RotateKey {
                key_id: k.key_id.clone(),
                to_version: prepared.version,
                rotation_type,
            })
        })
        .collect()
}

/// The automatic rotation date after one that happened at `now`: one period after the date
/// that was due, or — when the key was overdue by a whole period (disabled for a while, all
/// fronts down) — one period from now, so a backlog rotates once, not once per missed period.
pub fn following_rotation_date(
    due: EpochMillis,
    period_days: u32,
    now: EpochMillis,
) -> EpochMillis {
    let period = u64::from(period_days) * DAY_MILLIS;
    let next = due.saturating_add(period);
    if next > now {
        next
    } else {
        now.saturating_add(period)
    }
}

fn key_mut<'a>(state: &'a mut State, key_id: &str) -> Result<&'a mut KeyRecord, DomainError> {
    state
        .keys
        .get_mut(key_id)
        .ok_or_else(|| DomainError::NotFound(format!("Key '{key_id}' does not exist")))
}

/// Stores `m` as the prepared next material unless something is prepared already or `m` is
/// not for the next version (another front won the race, or a rotation happened meanwhile).
fn install_prepared(key: &mut KeyRecord, m: &MaterialVersion) -> bool {
    if key.rotation.prepared.is_some() || m.version != next_version(key) {
        return false;
    }
    key.rotation.prepared = Some(m.clone());
    true
}

/// `apply` for the rotation commands; any other command is a programming error.
pub(crate) fn apply_rotation(
    state: &mut State,
    now: EpochMillis,
    command: &Command,
    changes: &mut Vec<Change>,
) -> Result<CommandOutput, DomainError> {
    match command {
        Command::EnableKeyRotation {
            key_id,
            rotation_period_days,
            prepared,
        } => {
            check_period(*rotation_period_days)?;
            let key = key_mut(state, key_id)?;
            check_rotatable(key)?;
            check_rotation_state(key)?;
            let r = &mut key.rotation;
            // Enabling again with the same period keeps the schedule; a new period restarts it.
            if r.period_days != Some(*rotation_period_days) || r.next_rotation_date.is_none() {
                r.period_days = Some(*rotation_period_days);
                r.next_rotation_date =
                    Some(now.saturating_add(u64::from(*rotation_period_days) * DAY_MILLIS));
            }
            if let Some(m) = prepared {
                install_prepared(key, m);
            }
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::DisableKeyRotation { key_id } => {
            let key = key_mut(state, key_id)?;
            check_rotatable(key)?;
            check_rotation_state(key)?;
            // Prepared material stays: the next on-demand rotation or re-enable uses it.
            key.rotation.period_days = None;
            key.rotation.next_rotation_date = None;
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::PrepareNextMaterial { key_id, material } => {
            let key = key_mut(state, key_id)?;
            check_rotatable(key)?;
            if install_prepared(key, material) {
                changes.push(Change::Key(key_id.clone()));
            }
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::StartOnDemandRotation { key_id, prepared } => {
            let key = key_mut(state, key_id)?;
            check_rotatable(key)?;
            check_rotation_state(key)?;
            let r = &key.rotation;
            if r.on_demand_start_date.is_some() {
                return Err(DomainError::Conflict(format!(
                    "An on-demand rotation of {} is already in progress.",
                    key.arn
                )));
            }
            let done = r
                .history
                .iter()
                .filter(|h| h.rotation_type == RotationType::OnDemand)
                .count();
            if done >= MAX_ON_DEMAND_ROTATIONS {
                return Err(DomainError::LimitExceeded(format!(
                    "{} has reached the maximum of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations.",
                    key.arn
                )));
            }
            if r.period_days.is_some()
                && r.next_rotation_date
                    .is_some_and(|d| d <= now.saturating_add(CONFLICT_WINDOW_MS))
            {
                return Err(DomainError::Conflict(format!(
                    "An automatic rotation of {} is in progress or scheduled to begin within \
                     the next 20 minutes.",
                    key.arn
                )));
            }
            if let Some(m) = prepared {
                install_prepared(key, m);
            }
            key.rotation.on_demand_start_date = Some(now);
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        Command::RotateKey {
            key_id,
            to_version,
            rotation_type,
        } => {
            // Idempotent: anything but "this exact rotation is due now" is a no-op, so a
            // repeated or stale proposal (leader change, retry) never rotates twice.
            let Some(key) = state.keys.get_mut(key_id) else {
                return Ok(CommandOutput::Done);
            };
            let r = &key.rotation;
            let due = match rotation_type {
                RotationType::OnDemand => r.on_demand_start_date.is_some(),
                RotationType::Automatic => {
                    r.period_days.is_some() && r.next_rotation_date.is_some_and(|d| d <= now)
                }
            };
            let ready = r
                .prepared
                .as_ref()
                .is_some_and(|p| p.version == *to_version && p.version == next_version(key));
            if !due || !ready || key.state != KeyState::Enabled || check_rotatable(key).is_err() {
                return Ok(CommandOutput::Done);
            }
            let Some(mut material) = key.rotation.prepared.take() else {
                return Ok(CommandOutput::Done);
            };
            material.created_at = now;
            key.materials.push(material);
            key.current_material_version = *to_version;
            let r = &mut key.rotation;
            match rotation_type {
                RotationType::OnDemand => r.on_demand_start_date = None,
                RotationType::Automatic => {
                    if let (Some(period), Some(due)) = (r.period_days, r.next_rotation_date) {
                        r.next_rotation_date = Some(following_rotation_date(due, period, now));
                    }
                }
            }
            r.history.push(RotationRecord {
                version: *to_version,
                rotation_date: now,
                rotation_type: *rotation_type,
            });
            changes.push(Change::Key(key_id.clone()));
            Ok(CommandOutput::Key(Box::new(key.clone())))
        }

        _ => Err(DomainError::Internal(
            "apply_rotation called with a non-rotation command".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_of_missed_periods_rotates_once() {
        let d = DAY_MILLIS;
        // On time: the schedule stays anchored to the due date.
        assert_eq!(following_rotation_date(90 * d, 90, 90 * d + 5), 180 * d);
        // Three periods late: next one is a full period from now.
        assert_eq!(following_rotation_date(90 * d, 90, 400 * d), 490 * d);
    }

    #[test]
    fn periods_outside_90_to_2560_days_are_refused() {
        check_period(90).unwrap();
        check_period(2560).unwrap();
        assert!(check_period(89)
            .unwrap_err()
            .to_string()
            .ends_with("greater than or equal to 90"));
        assert!(matches!(check_period(89), Err(DomainError::Validation(_))));
        assert!(matches!(
            check_period(2561),
            Err(DomainError::Validation(_))
        ));
    }
}
