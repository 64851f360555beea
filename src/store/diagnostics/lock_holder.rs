//! Who holds a SQLite database's write lock: the answer to "why do commits stall?".
//!
//! In WAL mode SQLite's write lock is a POSIX record lock on one byte of the `-shm` file:
//! byte 120, the first of the lock bytes that follow the WAL-index's two header copies and
//! its checkpoint counters (the black-box stall test finds a real holder there). Linux lists
//! every such lock in `/proc/locks` with the process that holds it, so when the writer waits
//! for the lock the commit watch (`store::diagnostics::commit_watch`) can name the holder: `held by
//! process 4711 (sqlite3)`, and so can an admin command that gave up on it (`cli`). The
//! parsing is sans-IO ([`writers_of`]); [`holder`] reads the files. Elsewhere, or when the
//! lock is this process's own (another connection of ours), the answer is less precise but
//! still says that it is a lock, not the disk.

use std::path::Path;

/// The byte of the `-shm` file whose lock is SQLite's WAL write lock.
const WAL_WRITE_LOCK_BYTE: u64 = 120;

/// A process that holds the write lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct Holder {
    pub(in crate::store) pid: u32,
    /// Its command name (`/proc/PID/comm`), when it could be read.
    pub(in crate::store) name: Option<String>,
}

impl Holder {
    /// The reason a stall or a failed command gives: `the database's write lock is held by
    /// process 4711 (sqlite3)`.
    pub(in crate::store) fn holds_the_write_lock(&self) -> String {
        format!("the database's write lock is held by {self}")
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "process {} ({name})", self.pid),
            None => write!(f, "process {}", self.pid),
        }
    }
}

/// A file as `/proc/locks` names it: the device's major and minor number and the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    major: u64,
    minor: u64,
    inode: u64,
}

impl FileId {
    /// From `08:01:1234` (major and minor in hex, the inode in decimal).
    fn parse(field: &str) -> Option<Self> {
        let mut parts = field.split(':');
        let major = u64::from_str_radix(parts.next()?, 16).ok()?;
        let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
        let inode = parts.next()?.parse().ok()?;
        Some(Self {
            major,
            minor,
            inode,
        })
    }

    /// From `stat`'s `st_dev` and `st_ino`, split as glibc's `major()` and `minor()` do.
    fn of(dev: u64, inode: u64) -> Self {
        Self {
            major: ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            minor: (dev & 0xff) | ((dev >> 12) & !0xff),
            inode,
        }
    }
}

/// The processes that `/proc/locks` (its text in `locks`) shows holding a write lock on the
/// WAL write-lock byte of `file`.
///
/// A line reads `1: POSIX  ADVISORY  WRITE 4711 08:01:1234 120 120`; lines of waiters start
/// with `->` after the number and are skipped, as are OFD locks (no process, pid -1).
fn writers_of(locks: &str, file: FileId) -> Vec<u32> {
    locks
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let kind = fields.next()?;
            if kind != "POSIX" {
                return None;
            }
            let (_advisory, access) = (fields.next()?, fields.next()?);
            let pid: u32 = fields.next()?.parse().ok()?;
            let locked = FileId::parse(fields.next()?)?;
            let start: u64 = fields.next()?.parse().ok()?;
            let end = fields.next()?;
            let covers = start <= WAL_WRITE_LOCK_BYTE
                && (end == "EOF" || end.parse::<u64>().is_ok_and(|e| e >= WAL_WRITE_LOCK_BYTE));
            (access == "WRITE" && locked == file && covers).then_some(pid)
        })
        .collect()
}

/// Another process holding the write lock of the database at `db` (Linux only; `None`
/// elsewhere, when nobody else holds it, or when `/proc` cannot be read).
pub(in crate::store) fn holder(db: &Path) -> Option<Holder> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let meta = std::fs::metadata(shm).ok()?;
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        let pid = writers_of(&locks, FileId::of(meta.dev(), meta.ino()))
            .into_iter()
            .find(|&pid| pid != std::process::id())?;
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|n| n.trim_end().to_owned());
        Some(Holder { pid, name })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = db;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "\
1: POSIX  ADVISORY  READ 900 08:01:555 128 128
2: POSIX  ADVISORY  WRITE 4711 08:01:555 120 120
2: -> POSIX  ADVISORY  WRITE 4800 08:01:555 120 120
3: POSIX  ADVISORY  WRITE 4712 08:01:777 120 120
4: OFDLCK ADVISORY  WRITE -1 08:01:555 120 120
5: FLOCK  ADVISORY  WRITE 4713 08:01:555 0 EOF
6: POSIX  ADVISORY  WRITE 4714 00:2a:555 100 EOF
7: POSIX  ADVISORY  WRITE 4715 08:01:555 121 130
8: POSIX  ADVISORY  WRITE 4716 08:01:555 0 EOF
";

    fn file(major: u64, minor: u64, inode: u64) -> FileId {
        FileId {
            major,
            minor,
            inode,
        }
    }

    #[test]
    fn finds_the_writer_of_the_write_lock_byte_of_that_file_only() {
        // 4711 holds byte 120 of 08:01:555, 4716 a range over it; the rest are readers,
        // waiters, other files (4714: the same inode on another device), OFD or flock locks,
        // or other bytes
        assert_eq!(writers_of(LOCKS, file(8, 1, 555)), vec![4711, 4716]);
        assert_eq!(writers_of(LOCKS, file(8, 1, 777)), vec![4712]);
        assert_eq!(writers_of(LOCKS, file(0, 0x2a, 555)), vec![4714]);
        assert!(writers_of(LOCKS, file(8, 1, 1)).is_empty());
        assert!(writers_of("garbage\n\n1: POSIX", file(8, 1, 555)).is_empty());
    }

    #[test]
    fn a_device_number_splits_as_glibc_splits_it() {
        // makedev(8, 1) and makedev(259, 65539)
        assert_eq!(FileId::of(0x801, 7), file(8, 1, 7));
        assert_eq!(FileId::of(0x1001_0303, 7), file(259, 65539, 7));
    }

    #[test]
    fn a_holder_is_named_with_its_command_when_known() {
        let named = Holder {
            pid: 4711,
            name: Some("sqlite3".into()),
        };
        assert_eq!(named.to_string(), "process 4711 (sqlite3)");
        assert_eq!(
            named.holds_the_write_lock(),
            "the database's write lock is held by process 4711 (sqlite3)"
        );
        let unnamed = Holder {
            pid: 4711,
            name: None,
        };
        assert_eq!(unnamed.to_string(), "process 4711");
    }

    /// A real POSIX lock, taken by a child process as SQLite takes it: `python3`'s
    /// `fcntl.lockf` on byte 120 of the `-shm` file.
    #[cfg(target_os = "linux")]
    #[test]
    fn names_another_process_holding_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("otpgate.db");
        let shm = dir.path().join("otpgate.db-shm");
        std::fs::write(&shm, vec![0u8; 136]).unwrap();
        assert_eq!(holder(&db), None, "nobody holds it yet");
        let script = "import fcntl, os, sys, time\n\
                      f = open(sys.argv[1], 'r+b')\n\
                      fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 120, os.SEEK_SET)\n\
                      print('locked', flush=True)\n\
                      time.sleep(30)\n";
        let Ok(mut child) = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&shm)
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            panic!("python3 is needed for this test (scripts/test installs it)");
        };
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let found = holder(&db);
        child.kill().unwrap();
        child.wait().unwrap();
        let found = found.expect("the child's lock is listed");
        assert_eq!(found.pid, child.id());
        assert!(
            found
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("python3")),
            "{found}"
        );
    }
}
