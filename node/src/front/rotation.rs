//! Key rotation over the AWS API — EnableKeyRotation, DisableKeyRotation,
//! GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations — and the front's background task
//! that prepares next-version material (design: `docs/rotation.md`).
//!
//! A child module of `ops`, so it shares `Kms`'s private plumbing (resolve, authorize,
//! propose) without widening it.
//!
//! # Data flow
//!
//! ```text
//!  EnableKeyRotation / RotateKeyOnDemand --(wrapped next material)--> Raft
//!  leader scheduler: RotateKey { key, to_version, type }  (activates the prepared material)
//!  watch stream (key changed) --> Preparer: KeysAwaitingMaterial -> PrepareNextMaterial
//! ```

use std::collections::BTreeSet;
use std::future::Future;

use keystore::command::Change;
use keystore::rotation as rot;
use raft::WatchEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::*;

/// How often every front looks for keys whose next material is missing, besides reacting
/// to the watch stream (which can lag or reconnect).
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Key changes arrive in bursts; one look per burst is enough.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// More keys changed than this within one debounce: scan them all instead of naming them.
const MAX_CHANGED_KEYS: usize = 10_000;
const INCLUDE_KEY_MATERIAL: &[&str] = &["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"];
const ROTATIONS_MARKER_TAG: &str = "r1:";

// ---- shapes ------------------------------------------------------------------------------

/// `EnableKeyRotationRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnableKeyRotationRequest {
    /// Key id or key ARN.
    #[serde(default)]
    pub key_id: Option<String>,
    /// 90..=2560, default 365.
    #[serde(default)]
    pub rotation_period_in_days: Option<i64>,
}

/// `GetKeyRotationStatusResponse`. `KeyRotationEnabled` is always present, as AWS sends it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyRotationStatusResponse {
    /// Whether automatic rotation is on (false while the key is pending deletion).
    pub key_rotation_enabled: bool,
    /// The key ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The automatic rotation period, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<u32>,
    /// The next automatic rotation, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<EpochSeconds>,
    /// When the on-demand rotation in progress was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_rotation_start_date: Option<EpochSeconds>,
}

/// `RotateKeyOnDemandResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateKeyOnDemandResponse {
    /// The key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// `ListKeyRotationsRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsRequest {
    /// Key id or key ARN.
    #[serde(default)]
    pub key_id: Option<String>,
    /// 1..=1000, default 100.
    #[serde(default)]
    pub limit: Option<i64>,
    /// From a previous `NextMarker`.
    #[serde(default)]
    pub marker: Option<String>,
    /// `ALL_KEY_MATERIAL` | `ROTATIONS_ONLY`; accepted, and both list the rotations (keyraft
    /// has no imported material to list).
    #[serde(default)]
    pub include_key_material: Option<String>,
}

/// `RotationsListEntry`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationsListEntry {
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// When the rotation completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_date: Option<EpochSeconds>,
    /// `AUTOMATIC` | `ON_DEMAND`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_type: Option<String>,
    /// Which material this is: [`key_material_id`] of its version, the same in every region
    /// that holds the key (primary and replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
    /// `CURRENT` (new ciphertexts use it) | `NON_CURRENT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_material_state: Option<String>,
}

/// The `KeyMaterialId` of a material version: the version number as 64 hex digits (AWS's
/// ids are 64 hex digits too). It names the version, nothing more: it is derived from no
/// secret and reveals nothing about the material, and it is equal in every region holding
/// the key, so a replica's listing can be compared with its primary's.
pub fn key_material_id(version: u32) -> String {
    format!("{version:064x}")
}

fn key_material_state(key: &KeyRecord, version: u32) -> &'static str {
    if version == key.current_material_version {
        "CURRENT"
    } else {
        "NON_CURRENT"
    }
}

/// `ListKeyRotationsResponse`. `Truncated` is always present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsResponse {
    /// This page, oldest rotation first.
    pub rotations: Vec<RotationsListEntry>,
    /// Set when `truncated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More pages remain.
    pub truncated: bool,
}

// ---- helpers -----------------------------------------------------------------------------

/// Fresh material for the key's next version, wrapped under the domain key; the plaintext
/// material is zeroized when this returns.
fn next_material(dk: &DomainKey, key: &KeyRecord, now: u64) -> MaterialVersion {
    let version = rot::next_version(key);
    let material = KeyMaterial::generate();
    MaterialVersion {
        version,
        wrapped: crypto::wrap_material(dk, &key.key_id, version, &material),
        created_at: now,
    }
}

/// Markers of ListKeyRotations: the number of rotations already returned, tagged so that
/// a marker of another listing is `InvalidMarkerException`.
fn encode_rotations_marker(position: usize) -> String {
    use base64::Engine as _;
    MARKER_B64.encode(format!("{ROTATIONS_MARKER_TAG}{position}"))
}

fn decode_rotations_marker(marker: Option<String>) -> Result<usize, KmsError> {
    use base64::Engine as _;
    let Some(m) = marker else { return Ok(0) };
    let invalid = || KmsError::InvalidMarker("Invalid marker".into());
    if m.is_empty() || m.len() > 1024 {
        return Err(invalid());
    }
    let bytes = MARKER_B64.decode(m.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(ROTATIONS_MARKER_TAG)
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(invalid)
}

impl Kms {
    /// Runs a rotation operation with a JSON request body.
    pub(super) async fn dispatch_rotation(
        &self,
        caller: &Caller,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        use Operation as O;
        match op {
            O::EnableKeyRotation => to_body(
                &self
                    .enable_key_rotation(caller, parse_request(body)?)
                    .await?,
            ),
            O::DisableKeyRotation => to_body(
                &self
                    .disable_key_rotation(caller, parse_request(body)?)
                    .await?,
            ),
            O::GetKeyRotationStatus => to_body(
                &self
                    .get_key_rotation_status(caller, parse_request(body)?)
                    .await?,
            ),
            O::RotateKeyOnDemand => to_body(
                &self
                    .rotate_key_on_demand(caller, parse_request(body)?)
                    .await?,
            ),
            O::ListKeyRotations => to_body(
                &self
                    .list_key_rotations(caller, parse_request(body)?)
                    .await?,
            ),
            _ => Err(KmsError::internal()),
        }
    }

    /// EnableKeyRotation. Also hands the next version's wrapped material to the store, so the
    /// leader can rotate on schedule without a domain key.
    pub async fn enable_key_rotation(
        &self,
        caller: &Caller,
        req: EnableKeyRotationRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let days = req
            .rotation_period_in_days
            .unwrap_or(i64::from(rot::DEFAULT_ROTATION_PERIOD_DAYS));
        check_range(
            "RotationPeriodInDays",
            days,
            i64::from(*rot::ROTATION_PERIOD_DAYS.start()),
            i64::from(*rot::ROTATION_PERIOD_DAYS.end()),
        )?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::EnableKeyRotation.action(),
            &key,
            Facts::none().with("kms:RotationPeriodInDays", days.to_string()),
        )
        .await?;
        rot::check_rotatable(&key)?;
        rot::check_rotation_state(&key)?;
        let prepared = key
            .rotation
            .prepared
            .is_none()
            .then(|| next_material(&self.domain_key, &key, now_millis()));
        self.propose(Command::EnableKeyRotation {
            key_id: key.key_id,
            rotation_period_days: days as u32,
            prepared,
        })
        .await?;
        Ok(Empty {})
    }

    /// DisableKeyRotation.
    pub async fn disable_key_rotation(
        &self,
        caller: &Caller,
        req: KeyIdRequest,
    ) -> Result<Empty, KmsError> {
        let key = self
            .resolve(caller, &require(req.key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(
            caller,
            Operation::DisableKeyRotation.action(),
            &key,
            Facts::none(),
        )
        .await?;
        rot::check_rotatable(&key)?;
        rot::check_rotation_state(&key)?;
        self.propose(Command::DisableKeyRotation { key_id: key.key_id })
            .await?;
        Ok(Empty {})
    }

    /// GetKeyRotationStatus. Imported-material keys answer `false`; asymmetric and HMAC keys
    /// are `UnsupportedOperationException`.
    pub async fn get_key_rotation_status(
        &self,
        caller: &Caller,
        req: KeyIdRequest,
    ) -> Result<GetKeyRotationStatusResponse, KmsError> {
        let key = self
            .resolve(caller, &require(req.key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(
            caller,
            Operation::GetKeyRotationStatus.action(),
            &key,
            Facts::none(),
        )
        .await?;
        if key.origin == Origin::AwsKms {
            rot::check_rotatable(&key)?;
        }
        let r = &key.rotation;
        // AWS reports a key pending deletion as not rotating; cancelling restores the status.
        let enabled = r.period_days.is_some()
            && !matches!(
                key.state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            );
        Ok(GetKeyRotationStatusResponse {
            key_rotation_enabled: enabled,
            key_id: Some(key.arn.clone()),
            rotation_period_in_days: r.period_days.filter(|_| enabled),
            next_rotation_date: r.next_rotation_date.filter(|_| enabled).map(epoch_seconds),
            on_demand_rotation_start_date: r.on_demand_start_date.map(epoch_seconds),
        })
    }

    /// RotateKeyOnDemand: records the request (with next material if none is prepared); the
    /// leader's scheduler performs it within about a second, as AWS performs it in the
    /// background. GetKeyRotationStatus shows `OnDemandRotationStartDate` meanwhile.
    pub async fn rotate_key_on_demand(
        &self,
        caller: &Caller,
        req: KeyIdRequest,
    ) -> Result<RotateKeyOnDemandResponse, KmsError> {
        let key = self
            .resolve(caller, &require(req.key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(
            caller,
            Operation::RotateKeyOnDemand.action(),
            &key,
            Facts::none(),
        )
        .await?;
        rot::check_rotatable(&key)?;
        rot::check_rotation_state(&key)?;
        let prepared = key
            .rotation
            .prepared
            .is_none()
            .then(|| next_material(&self.domain_key, &key, now_millis()));
        self.propose(Command::StartOnDemandRotation {
            key_id: key.key_id.clone(),
            prepared,
        })
        .await?;
        Ok(RotateKeyOnDemandResponse {
            key_id: Some(key.key_id),
        })
    }

    /// ListKeyRotations: completed rotations, oldest first.
    pub async fn list_key_rotations(
        &self,
        caller: &Caller,
        req: ListKeyRotationsRequest,
    ) -> Result<ListKeyRotationsResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let limit = req.limit.unwrap_or(100);
        check_range("Limit", limit, 1, 1000)?;
        if let Some(v) = &req.include_key_material {
            check_enum("IncludeKeyMaterial", v, INCLUDE_KEY_MATERIAL)?;
        }
        let start = decode_rotations_marker(req.marker)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(
            caller,
            Operation::ListKeyRotations.action(),
            &key,
            Facts::none(),
        )
        .await?;
        rot::check_rotatable(&key)?;
        // ROTATIONS_ONLY (the default): the completed rotations. ALL_KEY_MATERIAL adds the
        // first material, so it lists every material version the key holds: on a
        // multi-region replica (which records no rotations of its own) that is every
        // version that has arrived from the primary.
        let entries: Vec<RotationsListEntry> =
            if req.include_key_material.as_deref() == Some("ALL_KEY_MATERIAL") {
                key.materials
                    .iter()
                    .map(|m| {
                        let rotated = key.rotation.history.iter().find(|h| h.version == m.version);
                        RotationsListEntry {
                            key_id: Some(key.key_id.clone()),
                            rotation_date: match rotated {
                                Some(h) => Some(epoch_seconds(h.rotation_date)),
                                None if m.version > 1 => Some(epoch_seconds(m.created_at)),
                                None => None,
                            },
                            rotation_type: rotated.map(|h| h.rotation_type.as_str().into()),
                            key_material_id: Some(key_material_id(m.version)),
                            key_material_state: Some(key_material_state(&key, m.version).into()),
                        }
                    })
                    .collect()
            } else {
                key.rotation
                    .history
                    .iter()
                    .map(|h| RotationsListEntry {
                        key_id: Some(key.key_id.clone()),
                        rotation_date: Some(epoch_seconds(h.rotation_date)),
                        rotation_type: Some(h.rotation_type.as_str().into()),
                        key_material_id: Some(key_material_id(h.version)),
                        key_material_state: Some(key_material_state(&key, h.version).into()),
                    })
                    .collect()
            };
        let end = start.saturating_add(limit as usize).min(entries.len());
        let rotations = entries
            .get(start.min(end)..end)
            .unwrap_or_default()
            .to_vec();
        let truncated = end < entries.len();
        Ok(ListKeyRotationsResponse {
            rotations,
            next_marker: truncated.then(|| encode_rotations_marker(end)),
            truncated,
        })
    }

    /// The front's share of rotation: whenever a key may have lost its prepared material (a
    /// rotation consumed it, automatic rotation was enabled elsewhere), wrap fresh material
    /// for its next version and store it with the key. Every front runs this; the first
    /// proposal wins and the others are no-ops in `apply`.
    pub(super) fn rotation_material_preparer(&self) -> impl Future<Output = ()> + Send + 'static {
        let preparer = Preparer {
            store: self.store.clone(),
            domain_key: self.domain_key.clone(),
            cache: self.cache.clone(),
        };
        preparer.run(self.store.watch())
    }
}

/// The keys watch events named since the preparer last asked; `all` when anything may have
/// changed (a resync, a lagging receiver, the end of the stream, the periodic sweep).
#[derive(Default)]
struct ChangedKeys {
    keys: BTreeSet<String>,
    all: bool,
}

impl ChangedKeys {
    /// Takes one event into account; `false` once the stream has ended.
    fn note(&mut self, ev: Result<WatchEvent, broadcast::error::RecvError>) -> bool {
        match ev {
            Ok(WatchEvent::Changed(Change::Key(id))) => {
                self.keys.insert(id);
            }
            Ok(WatchEvent::Changed(_)) => {}
            Ok(WatchEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => self.all = true,
            Err(broadcast::error::RecvError::Closed) => {
                self.all = true;
                return false;
            }
        }
        true
    }
}

struct Preparer {
    store: raft::StoreClient,
    domain_key: Arc<DomainKey>,
    cache: Arc<Cache>,
}

impl Preparer {
    async fn run(self, mut rx: broadcast::Receiver<WatchEvent>) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching = true;
        loop {
            let mut changed = ChangedKeys::default();
            if watching {
                tokio::select! {
                    _ = sweep.tick() => changed.all = true,
                    ev = rx.recv() => {
                        watching = changed.note(ev);
                        if watching {
                            // Gather what changes in a short while into one query.
                            tokio::time::sleep(DEBOUNCE).await;
                            loop {
                                match rx.try_recv() {
                                    Ok(ev) => {
                                        changed.note(Ok(ev));
                                    }
                                    Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                        changed.all = true
                                    }
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                }
            } else {
                sweep.tick().await;
                changed.all = true;
            }
            if changed.all || changed.keys.len() > MAX_CHANGED_KEYS {
                self.prepare_keys(Query::KeysAwaitingMaterial).await
            } else if !changed.keys.is_empty() {
                let key_ids = changed.keys.into_iter().collect();
                self.prepare_keys(Query::KeysAwaitingMaterialAmong { key_ids })
                    .await
            }
        }
    }

    /// Prepares material for the keys `query` (`KeysAwaitingMaterial[Among]`) names.
    async fn prepare_keys(&self, query: Query) {
        let ids = match self.store.query(query).await {
            Ok(QueryOutput::KeyIds(ids)) => ids,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list keys awaiting rotation material");
                return;
            }
        };
        for key_id in ids {
            if let Err(e) = self.prepare(&key_id).await {
                tracing::warn!(%key_id, error = %e, "preparing rotation material failed");
            }
        }
    }

    async fn prepare(&self, key_id: &str) -> Result<(), KmsError> {
        let q = Query::GetKey {
            key_id: key_id.to_string(),
        };
        let QueryOutput::Key(Some(key)) = self.store.query(q).await? else {
            return Ok(());
        };
        if !rot::needs_material(&key) {
            return Ok(());
        }
        let material = next_material(&self.domain_key, &key, now_millis());
        let version = material.version;
        self.store
            .propose(Command::PrepareNextMaterial {
                key_id: key_id.to_string(),
                material,
            })
            .await?;
        self.cache.invalidate(&Change::Key(key_id.to_string()));
        tracing::info!(%key_id, version, "next rotation material prepared");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::rotation::RotationType;

    #[test]
    fn rotation_markers_round_trip_and_foreign_markers_are_refused() {
        let m = encode_rotations_marker(7);
        assert_eq!(decode_rotations_marker(Some(m)).unwrap(), 7);
        assert_eq!(decode_rotations_marker(None).unwrap(), 0);
        for bad in [
            encode_marker(Listing::Keys, "k-1"),
            encode_rotations_marker(0),
            String::new(),
            "garbage".into(),
        ] {
            assert_eq!(
                decode_rotations_marker(Some(bad)).unwrap_err().aws_type(),
                "InvalidMarkerException"
            );
        }
    }

    mod in_process {
        //! Fronts over a real in-process storage node, whose leader scheduler runs on the
        //! system clock: on-demand rotations and the material preparer.
        use super::*;
        use crate::front::testing::{two_fronts, ADMIN};

        fn admin() -> Caller {
            Caller::from_principal_arn(ADMIN).unwrap()
        }

        async fn record(kms: &Kms, key_id: &str) -> KeyRecord {
            match kms
                .store
                .query(Query::GetKey {
                    key_id: key_id.into(),
                })
                .await
                .unwrap()
            {
                QueryOutput::Key(Some(k)) => *k,
                other => panic!("no key: {other:?}"),
            }
        }

        async fn wait_for(kms: &Kms, key_id: &str, what: &str, ok: impl Fn(&KeyRecord) -> bool) {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                if ok(&record(kms, key_id).await) {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "timed out: {what}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        fn key_req(key_id: &str) -> KeyIdRequest {
            KeyIdRequest {
                key_id: Some(key_id.into()),
            }
        }

        #[tokio::test]
        async fn two_fronts_keep_next_material_prepared_across_on_demand_rotations() {
            let (a, b, _node) = two_fronts(Duration::from_secs(1)).await;
            let _wa = a.follow_store_changes();
            let _wb = b.follow_store_changes();
            let admin = admin();
            let key_id = a
                .create_key(&admin, CreateKeyRequest::default())
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id
                .unwrap();
            a.enable_key_rotation(
                &admin,
                EnableKeyRotationRequest {
                    key_id: Some(key_id.clone()),
                    rotation_period_in_days: Some(90),
                },
            )
            .await
            .unwrap();
            let k = record(&a, &key_id).await;
            assert_eq!(k.rotation.prepared.as_ref().map(|p| p.version), Some(2));

            let mut blobs = Vec::new();
            for (i, front) in [&a, &b, &a].into_iter().enumerate() {
                let text = format!("before rotation {i}");
                let enc = front
                    .encrypt(
                        &admin,
                        EncryptRequest {
                            key_id: Some(key_id.clone()),
                            plaintext: Some(SecretBlob(Secret::new(text.clone().into_bytes()))),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                blobs.push((enc.ciphertext_blob.unwrap(), text));
                front
                    .rotate_key_on_demand(&admin, key_req(&key_id))
                    .await
                    .unwrap();
                let version = i as u32 + 2;
                // The leader activates the prepared version, then a front (either) prepares
                // the next one, exactly once.
                wait_for(&a, &key_id, "rotation and next material", |k| {
                    k.current_material_version == version
                        && k.rotation.prepared.as_ref().map(|p| p.version) == Some(version + 1)
                })
                .await;
            }
            let k = record(&a, &key_id).await;
            let versions: Vec<u32> = k.materials.iter().map(|m| m.version).collect();
            assert_eq!(versions, vec![1, 2, 3, 4]);
            assert_eq!(k.rotation.history.len(), 3);
            let listed = b
                .list_key_rotations(
                    &admin,
                    ListKeyRotationsRequest {
                        key_id: Some(key_id.clone()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(listed.rotations.len(), 3);
            assert!(!listed.truncated);

            // Every ciphertext decrypts on either front.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            for front in [&a, &b] {
                for (blob, text) in &blobs {
                    let out = front
                        .decrypt(
                            &admin,
                            DecryptRequest {
                                ciphertext_blob: Some(blob.clone()),
                                ..Default::default()
                            },
                        )
                        .await
                        .unwrap();
                    assert_eq!(out.plaintext.unwrap().expose_secret(), text.as_bytes());
                }
            }
        }

        #[tokio::test]
        async fn disabling_rotation_stops_preparing_and_status_follows() {
            let (a, _b, _node) = two_fronts(Duration::from_secs(1)).await;
            let admin = admin();
            let key_id = a
                .create_key(&admin, CreateKeyRequest::default())
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id
                .unwrap();
            let st = a
                .get_key_rotation_status(&admin, key_req(&key_id))
                .await
                .unwrap();
            assert!(!st.key_rotation_enabled);
            a.enable_key_rotation(
                &admin,
                EnableKeyRotationRequest {
                    key_id: Some(key_id.clone()),
                    rotation_period_in_days: None,
                },
            )
            .await
            .unwrap();
            let st = a
                .get_key_rotation_status(&admin, key_req(&key_id))
                .await
                .unwrap();
            assert!(st.key_rotation_enabled);
            assert_eq!(st.rotation_period_in_days, Some(365));
            assert!(st.key_id.unwrap().ends_with(&key_id));
            a.disable_key_rotation(&admin, key_req(&key_id))
                .await
                .unwrap();
            let st = a
                .get_key_rotation_status(&admin, key_req(&key_id))
                .await
                .unwrap();
            assert!(!st.key_rotation_enabled);
            assert_eq!(st.next_rotation_date, None);
            let k = record(&a, &key_id).await;
            assert!(!rot::needs_material(&k));
        }
    }

    #[test]
    fn rotation_type_wire_names() {
        assert_eq!(RotationType::Automatic.as_str(), "AUTOMATIC");
        assert_eq!(RotationType::OnDemand.as_str(), "ON_DEMAND");
    }
}
