//! File-system helpers the services share: atomic writes (temp file in the same folder, fsync,
//! rename), so a reader or a crash never sees half a file.

use anyhow::{Context, Result};
use std::path::Path;

/// Temp file in the same folder, fsync, rename: readers see the old file or the new one,
/// never half of either.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_mode(path, bytes, 0o666)
}

/// The same, the file created with `mode` (less the umask) from its first byte: a private file
/// is never readable by others, not even between its creation and the rename. The temporary
/// name is hidden (a leading `.`), so folder watchers and scans skip it.
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("a file path has a parent")?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| -> Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}
