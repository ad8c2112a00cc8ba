//! Files written on behalf of operations (exports): only inside the configured export roots,
//! under a temporary name until finished, so a failed write never leaves a partial file.

use super::ServiceError;
use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The folders operations may write into (`operationsApi.exportRoots`), resolved.
#[derive(Clone, Debug)]
pub struct ExportRoots(Vec<PathBuf>);

impl ExportRoots {
    /// Roots that do not exist (yet) are kept as given: they match nothing until created.
    pub fn new(roots: &[PathBuf]) -> Self {
        Self(roots.iter().map(|r| r.canonicalize().unwrap_or_else(|_| r.clone())).collect())
    }

    /// `folder` resolved (symbolic links and `..` included), if it is an existing folder inside
    /// a root. Errors use HarperDB's texts where it has one.
    pub fn check_folder(&self, folder: &str) -> Result<PathBuf, ServiceError> {
        let trimmed = if folder.len() > 1 { folder.trim_end_matches('/') } else { folder };
        let path = Path::new(trimmed);
        if !path.is_absolute() {
            return Err(ServiceError::BadRequest(format!("path '{folder}' does not exist")));
        }
        let resolved = path.canonicalize().map_err(|_| ServiceError::BadRequest(format!("path '{folder}' does not exist")))?;
        if !resolved.is_dir() {
            return Err(ServiceError::BadRequest(format!("path '{folder}' is not a directory")));
        }
        if !self.0.iter().any(|root| resolved.starts_with(root)) {
            return Err(ServiceError::BadRequest(format!(
                "path '{folder}' is outside the folders exports may write to (operationsApi.exportRoots)"
            )));
        }
        Ok(resolved)
    }

    /// Starts writing `<folder>/<name>`.
    pub fn create(&self, folder: &str, name: &str) -> Result<Writer, ServiceError> {
        check_file_name(name)?;
        let dir = self.check_folder(folder)?;
        let target = dir.join(name);
        let temp = dir.join(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("creating {}: {e}", temp.display())))?;
        Ok(Writer { file: Some(std::io::BufWriter::with_capacity(1 << 20, file)), temp, target })
    }
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

/// A file being written. Dropped unfinished, its temporary file is removed.
pub struct Writer {
    file: Option<std::io::BufWriter<File>>,
    temp: PathBuf,
    target: PathBuf,
}

impl Writer {
    pub fn write(&mut self, data: &[u8]) -> Result<(), ServiceError> {
        let file = self.file.as_mut().ok_or_else(|| ServiceError::BadRequest("the file is already finished".into()))?;
        file.write_all(data).map_err(|e| ServiceError::Internal(anyhow::anyhow!("writing {}: {e}", self.temp.display())))
    }

    /// Flushes, syncs, renames into place and syncs the folder, so the finished file survives
    /// a crash; returns the final path.
    pub fn finish(&mut self) -> Result<PathBuf, ServiceError> {
        let io = |e: std::io::Error| ServiceError::Internal(anyhow::anyhow!("finishing {}: {e}", self.target.display()));
        let file = self.file.take().ok_or_else(|| ServiceError::BadRequest("the file is already finished".into()))?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&self.temp, &self.target).map_err(io)?;
        if let Some(dir) = self.target.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
