//! Reading a file whose path came from outside (the function module, the configuration,
//! secret files): only a regular file, never more than a bound, and never blocking. An
//! operator who points the agent at `/dev/zero`, a FIFO or a log of gigabytes gets an
//! error, not a hung or bloated agent.

use std::io::Read;
use std::path::Path;

/// The most read of a password, API key or CA file: a line, or a CA bundle.
pub const SECRET_FILE_MAX_BYTES: u64 = 1 << 20;

/// `O_NONBLOCK`, which std does not name: 0o4000 on Linux for every architecture the
/// agent targets (x86_64, aarch64, arm). Opening a FIFO with it does not wait for a writer.
const O_NONBLOCK: i32 = 0o4000;

/// `path`'s bytes if it is a regular file of at most `max_bytes`; otherwise why not.
pub fn read_regular_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if metadata.len() > max_bytes {
        return Err(format!(
            "{} bytes; the most read is {max_bytes}",
            metadata.len()
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // The file may grow between the check and the read: the cap holds all the same.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_bytes {
        return Err(format!("it grew past {max_bytes} bytes while being read"));
    }
    Ok(bytes)
}

/// A directory of this process's own under the system's temporary folder, made fresh and
/// removed when dropped (`run --simulate` without a configuration: one trial's state must
/// not come back in the next). Named `<prefix>-<pid>` so that a crashed run's leftover is
/// recognisable; one left by an earlier process with the same id is removed first, never
/// reused.
pub struct ScratchDir {
    path: std::path::PathBuf,
}

impl ScratchDir {
    pub fn create(prefix: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        // remove_dir_all removes a symlink itself, never what it points to.
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // create_dir, not create_dir_all: it fails if anything took the name meanwhile.
        std::fs::create_dir(&path)?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read_regular_capped(&file, 5).unwrap(), b"hello");
        assert!(
            read_regular_capped(&file, 4)
                .unwrap_err()
                .contains("5 bytes")
        );
        assert_eq!(
            read_regular_capped(dir.path(), 100).unwrap_err(),
            "not a regular file"
        );
        assert_eq!(
            read_regular_capped(Path::new("/dev/zero"), 100).unwrap_err(),
            "not a regular file"
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Returns at once: no writer is waited for.
            assert_eq!(
                read_regular_capped(&fifo, 100).unwrap_err(),
                "not a regular file"
            );
        }
    }
}
