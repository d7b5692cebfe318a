//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, and how a
//! grant lets its grantee in (`Kms::grant_allows`, asked by `authorize` only when the
//! policies said no).
//!
//! # Layout
//!
//! ```text
//!  CreateGrant -> authorize kms:CreateGrant (kms:GrantOperations, kms:GranteePrincipal, ...)
//!              -> grant::validated (in apply) -> Raft -> token = encode_grant_token(key, id, nonce)
//!  crypto op denied by policies -> grant_allows:
//!      cached grants of the key (dropped on Change::Grant, bounded staleness)
//!      + each GrantToken of the request naming this key -> linearizable GetGrant
//!        (so a token works at once on every front, and stops at once after retire/revoke)
//! ```

use keystore::grant::{self, GrantConstraints, GrantOperation, GrantRecord};

use super::*;

/// ListGrants / ListRetirableGrants page size bounds (AWS: 1..=100, default 50).
const DEFAULT_GRANT_PAGE: i64 = 50;
const MAX_GRANT_PAGE: i64 = 100;

fn constraints_in(c: Option<GrantConstraintsShape>) -> Option<GrantConstraints> {
    c.map(|c| GrantConstraints {
        encryption_context_equals: c.encryption_context_equals,
        encryption_context_subset: c.encryption_context_subset,
    })
    .filter(|c| c.encryption_context_equals.is_some() || c.encryption_context_subset.is_some())
}

fn grant_entry(g: GrantRecord) -> GrantListEntry {
    GrantListEntry {
        key_id: g.key_arn,
        grant_id: g.grant_id,
        name: g.name,
        creation_date: g.creation_date as f64 / 1000.0,
        grantee_principal: g.grantee_principal,
        retiring_principal: g.retiring_principal,
        issuing_account: g.issuing_account,
        operations: g
            .operations
            .iter()
            .map(|o| o.as_str().to_string())
            .collect(),
        constraints: g.constraints.map(|c| GrantConstraintsShape {
            encryption_context_subset: c.encryption_context_subset,
            encryption_context_equals: c.encryption_context_equals,
        }),
    }
}

fn page_limit(limit: Option<i64>) -> Result<u32, KmsError> {
    let limit = limit.unwrap_or(DEFAULT_GRANT_PAGE);
    check_range("Limit", limit, 1, MAX_GRANT_PAGE)?;
    Ok(limit as u32)
}

fn check_grant_id(id: &str) -> Result<(), KmsError> {
    check_len("GrantId", id, 1, 128)
}

impl Kms {
    /// Runs one of this module's operations on a JSON body.
    pub(super) async fn dispatch_grants(
        &self,
        caller: &Caller,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        use Operation as O;
        match op {
            O::CreateGrant => to_body(&self.create_grant(caller, parse_request(body)?).await?),
            O::ListGrants => to_body(&self.list_grants(caller, parse_request(body)?).await?),
            O::ListRetirableGrants => to_body(
                &self
                    .list_retirable_grants(caller, parse_request(body)?)
                    .await?,
            ),
            O::RetireGrant => to_body(&self.retire_grant(caller, parse_request(body)?).await?),
            O::RevokeGrant => to_body(&self.revoke_grant(caller, parse_request(body)?).await?),
            _ => Err(KmsError::internal()),
        }
    }

    /// CreateGrant. Idempotent by `Name`: the same name and parameters return the existing
    /// grant (with a fresh token for it).
    pub async fn create_grant(
        &self,
        caller: &Caller,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let grantee = require(req.grantee_principal, "GranteePrincipal")?;
        let operations = require(req.operations, "Operations")?;
        if operations.is_empty() {
            return Err(KmsError::constraint(
                "Operations",
                "[]",
                "Member must have length greater than or equal to 1",
            ));
        }
        let operations = operations
            .iter()
            .map(|o| GrantOperation::parse(o))
            .collect::<Result<Vec<_>, _>>()?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        let constraints = constraints_in(req.constraints);
        let authorized = self
            .authorize_key(
                caller,
                Operation::CreateGrant.action(),
                &key,
                Facts::none()
                    .tokens(&req.grant_tokens)
                    .with_multi(
                        "kms:GrantOperations",
                        operations.iter().map(|o| o.as_str().to_string()).collect(),
                    )
                    .with("kms:GranteePrincipal", grantee.clone())
                    .with_opt("kms:RetiringPrincipal", req.retiring_principal.clone())
                    .with(
                        "kms:GrantIsForAWSResource",
                        caller.via_service.is_some().to_string(),
                    ),
            )
            .await?;
        if let Authorized::ByGrant(parent) = &authorized {
            // AWS: a grantee passing its grant on may not widen it.
            let subset = operations.iter().all(|o| parent.operations.contains(o));
            let strict = GrantConstraints::at_least_as_strict(
                constraints.as_ref(),
                parent.constraints.as_ref(),
            );
            if !subset || !strict {
                return Err(authz::denial(
                    caller,
                    Operation::CreateGrant.action(),
                    &key.arn,
                    keystore::policy::DenyReason::NoResourcePolicyAllows,
                ));
            }
        }
        check_state(&key, state::Operation::CreateGrant)?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        let record = GrantRecord {
            grant_id: grant::new_grant_id(),
            key_id: key.key_id.clone(),
            key_arn: key.arn.clone(),
            account_id: key.account_id.clone(),
            name: req.name,
            grantee_principal: grantee,
            retiring_principal: req.retiring_principal,
            issuing_account: grant::account_root_arn(&key.account_id),
            operations,
            constraints,
            creation_date: now_millis(),
            token_nonce: grant::new_token_nonce(),
        };
        let created = match self.propose(Command::CreateGrant { grant: record }).await? {
            CommandOutput::Grant(g) => g,
            _ => return Err(KmsError::internal()),
        };
        Ok(CreateGrantResponse {
            grant_token: Some(grant::encode_grant_token(
                &created.key_id,
                &created.grant_id,
                &created.token_nonce,
            )),
            grant_id: Some(created.grant_id),
        })
    }

    /// ListGrants (linearizable).
    pub async fn list_grants(
        &self,
        caller: &Caller,
        req: ListGrantsRequest,
    ) -> Result<ListGrantsResponse, KmsError> {
        let limit = page_limit(req.limit)?;
        let key_id = require(req.key_id, "KeyId")?;
        if let Some(id) = &req.grant_id {
            check_grant_id(id)?;
        }
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(caller, Operation::ListGrants.action(), &key, Facts::none())
            .await?;
        check_state(&key, state::Operation::ListGrants)?;
        let out = self
            .store
            .query(Query::ListGrants {
                key_id: key.key_id,
                grant_id: req.grant_id,
                grantee_principal: req.grantee_principal,
                marker: req.marker,
                limit,
            })
            .await?;
        grants_page(out)
    }

    /// ListRetirableGrants: grants whose retiring principal is the one named, in every key of
    /// the region. An identity-policy permission, as in AWS.
    pub async fn list_retirable_grants(
        &self,
        caller: &Caller,
        req: ListRetirableGrantsRequest,
    ) -> Result<ListGrantsResponse, KmsError> {
        let limit = page_limit(req.limit)?;
        let retiring = require(req.retiring_principal, "RetiringPrincipal")?;
        check_len("RetiringPrincipal", &retiring, 1, 256)?;
        self.authorize_account(
            caller,
            Operation::ListRetirableGrants.action(),
            Facts::none(),
        )
        .await?;
        let out = self
            .store
            .query(Query::ListRetirableGrants {
                retiring_principal: retiring,
                marker: req.marker,
                limit,
            })
            .await?;
        grants_page(out)
    }

    /// RetireGrant, by token or by key and grant id. Allowed for the grant's retiring
    /// principal, its grantee when the grant includes RetireGrant, the issuing account's
    /// root, and anyone the policies allow kms:RetireGrant on the key.
    pub async fn retire_grant(
        &self,
        caller: &Caller,
        req: RetireGrantRequest,
    ) -> Result<Empty, KmsError> {
        let (key_id, grant_id) = match (&req.grant_token, &req.key_id, &req.grant_id) {
            (Some(token), _, _) => {
                check_len("GrantToken", token, 1, grant::MAX_GRANT_TOKEN_LEN)?;
                let (key_id, grant_id, _nonce) = grant::decode_grant_token(token)?;
                (key_id, grant_id)
            }
            (None, Some(key), Some(id)) => {
                check_grant_id(id)?;
                let key = self.resolve(caller, key, MANAGEMENT).await?;
                (key.key_id, id.clone())
            }
            _ => {
                return Err(KmsError::Validation(
                    "Either GrantToken, or both KeyId and GrantId, must be specified.".into(),
                ))
            }
        };
        let existing = self.consistent_grant(&key_id, &grant_id).await?;
        let Some(g) = existing else {
            return Err(keystore::error::DomainError::InvalidGrantId(format!(
                "Grant ID {grant_id} does not exist"
            ))
            .into());
        };
        if !grant::may_retire(&g, &caller.principal_arn, &caller.account_id) {
            let key = self
                .get_key(&key_id, true)
                .await?
                .ok_or_else(|| self.key_not_found(&g.account_id, &key_id))?;
            self.authorize_key(caller, Operation::RetireGrant.action(), &key, Facts::none())
                .await?;
        }
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        self.propose(Command::RetireGrant { key_id, grant_id })
            .await?;
        Ok(Empty {})
    }

    /// RevokeGrant.
    pub async fn revoke_grant(
        &self,
        caller: &Caller,
        req: RevokeGrantRequest,
    ) -> Result<Empty, KmsError> {
        let key_id = require(req.key_id, "KeyId")?;
        let grant_id = require(req.grant_id, "GrantId")?;
        check_grant_id(&grant_id)?;
        let key = self.resolve(caller, &key_id, MANAGEMENT).await?;
        self.authorize_key(caller, Operation::RevokeGrant.action(), &key, Facts::none())
            .await?;
        if req.dry_run == Some(true) {
            return Err(dry_run());
        }
        self.propose(Command::RevokeGrant {
            key_id: key.key_id,
            grant_id,
        })
        .await?;
        Ok(Empty {})
    }

    async fn consistent_grant(
        &self,
        key_id: &str,
        grant_id: &str,
    ) -> Result<Option<GrantRecord>, KmsError> {
        match self
            .store
            .query(Query::GetGrant {
                key_id: key_id.to_string(),
                grant_id: grant_id.to_string(),
            })
            .await?
        {
            QueryOutput::Grant(g) => Ok(g),
            _ => Err(KmsError::internal()),
        }
    }

    /// The grant that lets the caller do `action` on `key`, if any: a cached grant of the key, or a
    /// grant named by one of the request's tokens, read linearizably so that a fresh token
    /// works on every front at once and a retired one stops at once.
    pub(super) async fn grant_allows(
        &self,
        caller: &Caller,
        action: &str,
        key: &KeyRecord,
        facts: &Facts<'_>,
    ) -> Result<Option<GrantRecord>, KmsError> {
        let Some(operation) = action
            .strip_prefix("kms:")
            .and_then(|a| GrantOperation::parse(a).ok())
        else {
            return Ok(None);
        };
        let grantee = caller
            .service_principal
            .as_deref()
            .unwrap_or(&caller.principal_arn);
        let ctx = facts.encryption_context;
        let cached = self.cache.grants(&self.store, &key.key_id).await?;
        if let Some(g) = cached.iter().find(|g| g.allows(grantee, operation, ctx)) {
            return Ok(Some(g.clone()));
        }
        for token in facts.grant_tokens {
            let (key_id, grant_id, nonce) = grant::decode_grant_token(token)?;
            if key_id != key.key_id {
                continue;
            }
            if let Some(g) = self.consistent_grant(&key_id, &grant_id).await? {
                if g.token_nonce == nonce && g.allows(grantee, operation, ctx) {
                    return Ok(Some(g));
                }
            }
        }
        Ok(None)
    }
}

fn grants_page(out: QueryOutput) -> Result<ListGrantsResponse, KmsError> {
    match out {
        QueryOutput::Grants {
            grants,
            next_marker,
        } => Ok(ListGrantsResponse {
            grants: grants.into_iter().map(grant_entry).collect(),
            truncated: next_marker.is_some(),
            next_marker,
        }),
        _ => Err(KmsError::internal()),
    }
}
