//! A look at a SQLite store without opening it for service (no migration, no write): what
//! `check-config` needs to tell whether `serve` would start.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::store::StoreError;

/// What the store at a path holds, as far as a start depends on it.
#[derive(Debug, Default)]
pub struct Inspection {
    /// The file does not exist yet: the first start creates it.
    pub fresh: bool,
    /// Tokens with a sealed key.
    pub sealed_tokens: i64,
    /// One of them, to try the key file on: (serial, sealed key).
    pub sample: Option<(String, Vec<u8>)>,
}

/// Read the store at `path`: `Err` when it is not a SQLite database, or cannot be written.
pub fn inspect(path: &Path) -> Result<Inspection, StoreError> {
    if !path.exists() {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let creatable = (dir.exists() && writable(dir)) || !dir.exists();
        if !creatable {
            return Err(StoreError::Open(format!(
                "cannot create the database in {}: the directory is not writable",
                dir.display()
            )));
        }
        return Ok(Inspection {
            fresh: true,
            ..Default::default()
        });
    }
    if !writable(path) {
        return Err(StoreError::Open(format!(
            "{} cannot be written (file mode or owner)",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let has_tokens: bool =
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'token'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| {
            StoreError::Open(format!("{} is not a SQLite database: {e}", path.display()))
        })? > 0;
    if !has_tokens {
        return Ok(Inspection::default());
    }
    let sealed_tokens = conn.query_row(
        "SELECT COUNT(*) FROM token WHERE key_sealed IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    let sample = conn
        .query_row(
            "SELECT serial, key_sealed FROM token WHERE key_sealed IS NOT NULL LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(Inspection {
        fresh: false,
        sealed_tokens,
        sample,
    })
}

fn writable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpgate.db");
        assert!(inspect(&path).unwrap().fresh);
        std::fs::write(&path, "this is no database, only some text ".repeat(200)).unwrap();
        let refused = inspect(&path).unwrap_err().to_string();
        assert!(refused.contains("is not a SQLite database"), "{refused}");
    }
}
