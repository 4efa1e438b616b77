//! Staff accounts and their tokens: each account acts as one role that the
//! privacy policy declares, and its token is shown once and kept only as a
//! hash.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::store::{StaffAccount, StaffStore};

/// How a token starts: a reader of logs or a secret scanner knows it.
const TOKEN_PREFIX: &str = "lct_";

/// A token's parts: `lct_<key id, 12 hex>_<secret, 64 hex>`.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(key_id, 12) && hex(secret, 64)).then_some((key_id, secret))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Refuses a name no account may have.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(Error::Invalid {
            where_: "the staff account".into(),
            message: format!(
                "staff name {:?}: give 1 to 64 characters, no control characters",
                name.escape_default().to_string()
            ),
        });
    }
    Ok(())
}

/// Makes an account `name` acting as `role` in `store`, with a new token;
/// returns both. The token is kept only as its hash.
pub(crate) fn make_account(
    store: &mut dyn StaffStore,
    name: &str,
    role: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(StaffAccount, String)> {
    check_name(name)?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(Error::Invalid {
            where_: "the staff account".into(),
            message: "the token would expire before it is made; give a later time".into(),
        });
    }
    let mut random = [0u8; 38];
    getrandom::fill(&mut random)
        .map_err(|e| Error::store(anyhow::anyhow!("no randomness for a token: {e}")))?;
    let key_id = hex::encode(&random[..6]);
    let token = format!("{TOKEN_PREFIX}{key_id}_{}", hex::encode(&random[6..]));
    let account = StaffAccount {
        name: name.to_string(),
        role: role.to_string(),
        key_id,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    if !store
        .add_staff(&account, &token_hash(&token))
        .map_err(Error::store)?
    {
        return Err(Error::Invalid {
            where_: "the staff account".into(),
            message: format!(
                "a staff account named `{name}` exists; revoke it first, or choose another name"
            ),
        });
    }
    Ok((account, token))
}

/// Revokes the account `name` in `store`; `list` is the command that
/// lists the accounts, for the message when there is none of that name.
pub(crate) fn revoke_account(
    store: &mut dyn StaffStore,
    name: &str,
    now: DateTime<Utc>,
    list: &str,
) -> Result<()> {
    if store.revoke_staff(name, now).map_err(Error::store)? {
        return Ok(());
    }
    let accounts = store.staff_accounts().map_err(Error::store)?;
    match accounts.into_iter().find(|a| a.name == name) {
        Some(_) => Err(Error::Invalid {
            where_: "the staff account".into(),
            message: format!("the staff account `{name}` is revoked already"),
        }),
        None => Err(Error::NotFound(format!(
            "no staff account named `{name}`; `{list}` shows them"
        ))),
    }
}

/// The account of `store` that `token` belongs to, if it is valid at
/// `now`: not revoked, not expired. The hash is compared in constant time.
/// Every refusal is the same `Denied`, so that a caller learns nothing
/// about which tokens exist.
pub(crate) fn account_of(
    store: &dyn StaffStore,
    token: &str,
    now: DateTime<Utc>,
) -> Result<StaffAccount> {
    let denied = || Error::Denied("the token is not valid".into());
    let (key_id, _) = split_token(token).ok_or_else(denied)?;
    let (account, stored) = store
        .staff_by_key(key_id)
        .map_err(Error::store)?
        .ok_or_else(denied)?;
    let given = token_hash(token);
    if !bool::from(given.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(denied());
    }
    if account.revoked_at.is_some() || account.expires_at.is_some_and(|t| t <= now) {
        return Err(denied());
    }
    Ok(account)
}

impl Lectern {
    /// Adds a staff account `name` acting as `role`, which the privacy
    /// policy in force must declare (or the host's `ils`). Returns the
    /// account and its token: the token is never stored, so this is the
    /// only time anyone sees it.
    pub fn add_staff(
        &mut self,
        name: &str,
        role: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(StaffAccount, String)> {
        check_name(name)?;
        self.check_role(role)?;
        make_account(self.store_mut(), name, role, expires_at, now)
    }

    /// Every staff account, revoked and expired ones included.
    pub fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        self.store().staff_accounts().map_err(Error::store)
    }

    /// Revokes the account `name`: its token stops working at once.
    pub fn revoke_staff(&mut self, name: &str, now: DateTime<Utc>) -> Result<()> {
        revoke_account(self.store_mut(), name, now, "lectern staff list")
    }

    /// The account `token` belongs to, if it is valid at `now`: not
    /// revoked, not expired, and of a role the policy still declares. The
    /// hash is compared in constant time. Every refusal is the same
    /// `Denied`, so that a caller learns nothing about which tokens exist.
    pub fn authenticate(&self, token: &str, now: DateTime<Utc>) -> Result<StaffAccount> {
        let account = account_of(self.store(), token, now)?;
        // The policy may have changed since the token was made: a role it
        // no longer declares reads nothing.
        self.check_role(&account.role)?;
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_one_shape() {
        let good = format!("lct_{}_{}", "a1".repeat(6), "0f".repeat(32));
        assert!(split_token(&good).is_some());
        assert!(split_token(&good[..good.len() - 1]).is_none());
        assert!(split_token(&good.replace("lct_", "lcx_")).is_none());
        assert!(split_token("lct__").is_none());
        assert!(split_token(&format!("lct_{}_{}", "zz".repeat(6), "0f".repeat(32))).is_none());
    }
}
