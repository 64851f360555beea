//! Custom user attributes (the CustomUserAttributes event handler): key → value per user
//! (realm, login), read over the directory's attributes.

use std::collections::BTreeMap;

use super::query::query;
use super::{Store, StoreError};

impl Store {
    /// Set (or replace) one attribute of the user.
    pub async fn set_user_attribute(
        &self,
        realm: &str,
        login: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO user_attribute (realm, login, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (realm, login, key) DO UPDATE SET value = excluded.value",
        )
        .bind(realm)
        .bind(login)
        .bind(key)
        .bind(value)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Delete one attribute (a missing one is fine); `true` when there was one.
    pub async fn delete_user_attribute(
        &self,
        realm: &str,
        login: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let done = query("DELETE FROM user_attribute WHERE realm = $1 AND login = $2 AND key = $3")
            .bind(realm)
            .bind(login)
            .bind(key)
            .execute(self.db())
            .await?;
        Ok(done > 0)
    }

    /// Every custom attribute of the user.
    pub async fn user_attributes(
        &self,
        realm: &str,
        login: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = query("SELECT key, value FROM user_attribute WHERE realm = $1 AND login = $2")
            .bind(realm)
            .bind(login)
            .fetch_all(self.db())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String>("key")?, r.try_get::<String>("value")?)))
            .collect()
    }
}
