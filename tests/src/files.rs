//! Files a test hands to upgate (config files, plugin files): a fresh temporary
//! folder per test, removed when dropped, and the two ways deploy tools replace
//! a file: write a temporary file and rename it into place, or overwrite in place;
//! and a path written as a TOML string, for config text that names a file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh folder under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    /// The folder, canonicalized (upgate's watcher reports canonical paths).
    path: PathBuf,
}

impl TempDir {
    /// Creates a folder no other test (or test process) uses.
    pub fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "upgate-test-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).unwrap();
        TempDir {
            path: std::fs::canonicalize(&path).unwrap(),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Replaces `path` as `cargo build` and deploy tools do: writes `bytes` to a
/// temporary file beside it, then renames that over `path` (atomic).
pub fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Overwrites `path` in place (truncate, then write): a reader may see it half written.
pub fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// `p` as a quoted TOML string, for config text naming a file.
pub fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}
