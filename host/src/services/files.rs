//! Files written on behalf of operations (exports): only inside the configured export roots,
//! into a folder opened once without following symbolic links and owned by the server's user
//! (or root), as 0600 files under a temporary name until finished, so a failed write never
//! leaves a partial file and a folder swapped after the check cannot redirect it.

use super::ServiceError;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The folders operations may write into (`operationsApi.exportRoots`), resolved.
#[derive(Clone, Debug)]
pub struct ExportRoots(Vec<PathBuf>);

/// An export folder, opened once: every later step works relative to this descriptor, so a
/// folder swapped for a symbolic link after the check cannot redirect the file.
struct OpenFolder {
    dir: File,
    /// Where the opened folder really is (from the descriptor, not from the request's path).
    resolved: PathBuf,
}

impl ExportRoots {
    /// Roots that do not exist (yet) are kept as given: they match nothing until created.
    pub fn new(roots: &[PathBuf]) -> Self {
        Self(roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).collect())
    }

    /// `folder` resolved, if it is an existing folder inside a root, not itself a symbolic
    /// link, and owned by the server's user or root. Errors use HarperDB's texts where it has
    /// one.
    pub fn check_folder(&self, folder: &str) -> Result<PathBuf, ServiceError> {
        Ok(self.open_folder(folder)?.resolved)
    }

    /// Opens `folder` with `O_DIRECTORY | O_NOFOLLOW` and checks what was opened: its real
    /// location (read back from the descriptor) must be inside a root, and its owner the
    /// server's user or root (a folder another local user owns could be swapped under us).
    fn open_folder(&self, folder: &str) -> Result<OpenFolder, ServiceError> {
        let trimmed = if folder.len() > 1 { folder.trim_end_matches('/') } else { folder };
        let path = Path::new(trimmed);
        if !path.is_absolute() {
            return Err(ServiceError::BadRequest(format!("path '{folder}' does not exist")));
        }
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                // With O_DIRECTORY, Linux reports a trailing symbolic link as ENOTDIR.
                Some(libc::ELOOP) | Some(libc::ENOTDIR) if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) => {
                    ServiceError::BadRequest(format!("path '{folder}' is a symbolic link; exports write only into real folders"))
                }
                Some(libc::ENOTDIR) => ServiceError::BadRequest(format!("path '{folder}' is not a directory")),
                _ => ServiceError::BadRequest(format!("path '{folder}' does not exist")),
            })?;
        let resolved = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .or_else(|_| path.canonicalize())
            .map_err(|_| ServiceError::BadRequest(format!("path '{folder}' does not exist")))?;
        if !self.0.iter().any(|root| resolved.starts_with(root)) {
            return Err(ServiceError::BadRequest(format!(
                "path '{folder}' is outside the folders exports may write to (operationsApi.exportRoots)"
            )));
        }
        let owner = dir.metadata().map_err(|e| ServiceError::Internal(anyhow::anyhow!("reading {}: {e}", resolved.display())))?.uid();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if owner != me && owner != 0 {
            return Err(ServiceError::BadRequest(format!(
                "path '{folder}' is owned by another user; exports write only into folders owned by the server's user or root"
            )));
        }
        Ok(OpenFolder { dir, resolved })
    }

    /// Starts writing `<folder>/<name>`: a 0600 temporary file created inside the opened
    /// folder (never through a path), renamed into place by [`Writer::finish`].
    pub fn create(&self, folder: &str, name: &str) -> Result<Writer, ServiceError> {
        check_file_name(name)?;
        let OpenFolder { dir, resolved } = self.open_folder(folder)?;
        let temp = format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple());
        let c_temp = c_name(&temp)?;
        // SAFETY: `dir` is an open directory descriptor and `c_temp` a NUL-terminated name;
        // openat either fails or returns a new descriptor we then own.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c_temp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(ServiceError::Internal(anyhow::anyhow!("creating {}: {e}", resolved.join(&temp).display())));
        }
        // SAFETY: `fd` was just returned by openat and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(Writer { file: Some(std::io::BufWriter::with_capacity(1 << 20, file)), dir, temp, name: name.to_string(), resolved })
    }
}

/// Creates `path` (and missing parents) with mode 0700, and takes group and other access away
/// from an existing one: the server's root, `keys/`, the database and the exports hold secrets.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

fn c_name(name: &str) -> Result<CString, ServiceError> {
    CString::new(std::ffi::OsStr::new(name).as_bytes())
        .map_err(|_| ServiceError::BadRequest(format!("filename '{name}' must be a plain file name (no '/', '\\' or '..')")))
}

/// A file name, not a path: no separators, no `..`, nothing hidden in control characters.
pub fn check_file_name(name: &str) -> Result<(), ServiceError> {
    let mut parts = Path::new(name).components();
    let plain = matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None));
    if name.is_empty() || !plain || name.contains(['/', '\\']) || name.contains("..") || name.chars().any(char::is_control) {
        return Err(ServiceError::BadRequest(format!("filename '{name}' must be a plain file name (no '/', '\\' or '..')")));
    }
    Ok(())
}

/// A file being written, inside a folder held open. Dropped unfinished, its temporary file is
/// removed.
pub struct Writer {
    file: Option<std::io::BufWriter<File>>,
    dir: File,
    temp: String,
    name: String,
    resolved: PathBuf,
}

impl Writer {
    pub fn write(&mut self, data: &[u8]) -> Result<(), ServiceError> {
        let file = self.file.as_mut().ok_or_else(|| ServiceError::BadRequest("the file is already finished".into()))?;
        file.write_all(data).map_err(|e| ServiceError::Internal(anyhow::anyhow!("writing {}: {e}", self.resolved.join(&self.temp).display())))
    }

    /// Flushes, syncs, renames into place (relative to the open folder) and syncs the folder,
    /// so the finished file survives a crash; returns the final path.
    pub fn finish(&mut self) -> Result<PathBuf, ServiceError> {
        let target = self.resolved.join(&self.name);
        let io = |e: std::io::Error| ServiceError::Internal(anyhow::anyhow!("finishing {}: {e}", target.display()));
        let file = self.file.take().ok_or_else(|| ServiceError::BadRequest("the file is already finished".into()))?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        let renamed = file.sync_all().and_then(|_| {
            let (from, to) = (c_name(&self.temp).map_err(std::io::Error::other)?, c_name(&self.name).map_err(std::io::Error::other)?);
            let fd = self.dir.as_raw_fd();
            // SAFETY: both names are NUL-terminated and `fd` is the open folder.
            if unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
        if let Err(e) = renamed {
            self.remove_temp();
            return Err(io(e));
        }
        self.dir.sync_all().map_err(io)?;
        Ok(target)
    }

    fn remove_temp(&self) {
        if let Ok(name) = c_name(&self.temp) {
            // SAFETY: a NUL-terminated name relative to the open folder.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            self.remove_temp();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn roots() -> (ExportRoots, PathBuf) {
        let dir = std::env::temp_dir().join(format!("opshost-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        (ExportRoots::new(&[dir.join("sub")]), dir)
    }

    #[test]
    fn writes_inside_a_root_atomically_and_leaves_nothing_when_dropped() {
        let (roots, dir) = roots();
        let folder = format!("{}/sub/", dir.display());
        let mut w = roots.create(&folder, "out.json").expect("create");
        w.write(b"[1]").expect("write");
        assert!(!dir.join("sub/out.json").exists(), "not visible before finish");
        let path = w.finish().expect("finish");
        assert_eq!(std::fs::read(&path).expect("read"), b"[1]");
        assert_eq!(std::fs::metadata(&path).expect("stat").mode() & 0o777, 0o600, "exports are private");

        let mut w = roots.create(&folder, "half.json").expect("create");
        w.write(b"[").expect("write");
        drop(w);
        let left: Vec<_> = std::fs::read_dir(dir.join("sub")).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("out.json")]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn refuses_paths_outside_the_roots_and_names_with_separators() {
        let (roots, dir) = roots();
        for folder in [dir.display().to_string(), format!("{}/sub/..", dir.display()), "/etc".into(), "relative".into()] {
            assert!(matches!(roots.check_folder(&folder), Err(ServiceError::BadRequest(_))), "{folder}");
        }
        assert!(matches!(roots.check_folder("/nonexistent-x"), Err(ServiceError::BadRequest(m)) if m == "path '/nonexistent-x' does not exist"));
        let folder = format!("{}/sub", dir.display());
        for name in ["a/b.json", "../x.json", "..", "", "a\\b", "x\nz"] {
            assert!(roots.create(&folder, name).is_err(), "{name:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_symbolic_link_as_the_folder_is_refused_and_a_swap_after_create_is_not_followed() {
        let (roots, dir) = roots();
        std::fs::create_dir_all(dir.join("sub/real")).expect("mkdir");
        std::os::unix::fs::symlink(dir.join("sub/real"), dir.join("sub/link")).expect("symlink");
        let link = format!("{}/sub/link", dir.display());
        assert!(matches!(roots.check_folder(&link), Err(ServiceError::BadRequest(m)) if m.contains("symbolic link")));
        assert!(roots.create(&link, "x.json").is_err());

        // Swapped after the folder was opened: the file still lands in the folder opened.
        let folder = format!("{}/sub/real", dir.display());
        let mut w = roots.create(&folder, "late.json").expect("create");
        std::fs::rename(dir.join("sub/real"), dir.join("sub/moved")).expect("mv");
        std::fs::create_dir_all(dir.join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("sub/real")).expect("symlink");
        w.write(b"[]").expect("write");
        w.finish().expect("finish");
        assert!(dir.join("sub/moved/late.json").is_file());
        assert!(!dir.join("elsewhere/late.json").exists(), "the swapped-in link was followed");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_folder_owned_by_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("note: not root; cannot make a folder owned by another user");
            return;
        }
        let (roots, dir) = roots();
        let theirs = dir.join("sub/theirs");
        std::fs::create_dir_all(&theirs).expect("mkdir");
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
        let folder = theirs.display().to_string();
        assert!(matches!(roots.check_folder(&folder), Err(ServiceError::BadRequest(m)) if m.contains("owned by another user")));
        let _ = std::fs::remove_dir_all(dir);
    }
}
