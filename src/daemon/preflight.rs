//! The checks a start makes before it touches the network, for `check-config`: the key file
//! and the SQLite store, as `serve` would find them. (PostgreSQL needs the network: `serve`
//! says what it finds there.)

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::store::Database;
use crate::store::inspect_sqlite as inspect;

/// What would stop `serve` from starting, one line each.
pub fn preflight(config: &Config) -> Vec<String> {
    let mut problems: Vec<String> = config
        .unsafe_files
        .iter()
        .map(ToString::to_string)
        .collect();
    let key = if config.key_file.exists() {
        match MasterKey::load(&config.key_file) {
            Ok(k) => Some(k),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        }
    } else {
        None
    };
    let Database::Sqlite(path) = &config.store.database else {
        return problems;
    };
    match inspect(path) {
        Err(e) => problems.push(format!("database: {e}")),
        Ok(store) => match (&key, store.sample) {
            (None, Some(_)) if !config.key_file.exists() => problems.push(format!(
                "the key file {} is missing but the store holds {} sealed token(s); restore \
                 the key file (a new key cannot open them)",
                config.key_file.display(),
                store.sealed_tokens
            )),
            (Some(key), Some((serial, sealed))) => {
                if let Err(e) = key.open(&serial, &sealed) {
                    problems.push(format!(
                        "the key file {} does not open the store's tokens (token {serial}: {e})",
                        config.key_file.display()
                    ));
                }
            }
            _ => {}
        },
    }
    problems
}
