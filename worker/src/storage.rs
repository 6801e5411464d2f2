//! Media storage. The embedded mode keeps blobs in a local directory; object storage arrives
//! with media ingest behind the same type.

use std::path::{Path, PathBuf};

use crate::WorkerError;

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Creates the root directory if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, WorkerError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| WorkerError::Storage {
            path: root.display().to_string(),
            source,
        })?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh path for an upload in progress, in the same file system as the blobs so that
    /// committing it is a rename.
    pub fn staging_path(&self) -> Result<PathBuf, WorkerError> {
        let dir = self.root.join("staging");
        std::fs::create_dir_all(&dir).map_err(|source| WorkerError::Storage {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(dir.join(format!("{}.part", uuid::Uuid::now_v7())))
    }

    /// The server-generated key of content with this SHA-256 (hex).
    pub fn blob_key(sha256_hex: &str) -> String {
        let shard = sha256_hex.get(..2).unwrap_or("00");
        format!("blobs/{shard}/{sha256_hex}")
    }

    /// Where a key's file lives. Keys are generated here, never taken from clients; anything
    /// that is not a plain relative path is refused anyway.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let rel = Path::new(key);
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        plain.then(|| self.root.join(rel))
    }

    /// Moves a finished staging file to `key` (atomically: a rename). If the key already
    /// holds the same content (content-addressed originals), the staging file is dropped.
    pub async fn commit(&self, staged: &Path, key: &str) -> Result<(), WorkerError> {
        self.move_into(staged, key, true).await
    }

    /// Moves a finished staging file to `key`, replacing what is there (derived media: a
    /// re-run writes the same picture again).
    pub async fn replace(&self, staged: &Path, key: &str) -> Result<(), WorkerError> {
        self.move_into(staged, key, false).await
    }

    async fn move_into(
        &self,
        staged: &Path,
        key: &str,
        keep_existing: bool,
    ) -> Result<(), WorkerError> {
        let err = |source: std::io::Error| WorkerError::Storage {
            path: key.to_owned(),
            source,
        };
        let dest = self
            .path_of(key)
            .ok_or_else(|| err(std::io::Error::other("invalid storage key")))?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(err)?;
        }
        if keep_existing && tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(staged).await;
            return Ok(());
        }
        tokio::fs::rename(staged, &dest).await.map_err(err)
    }

    /// Removes everything under a key prefix (a deleted asset's derived media).
    pub async fn remove_prefix(&self, prefix: &str) -> Result<(), WorkerError> {
        let Some(path) = self.path_of(prefix) else {
            return Ok(());
        };
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(WorkerError::Storage {
                path: prefix.to_owned(),
                source,
            }),
        }
    }

    /// Removes a blob; a missing one is not an error.
    pub async fn remove(&self, key: &str) -> Result<(), WorkerError> {
        let Some(path) = self.path_of(key) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(WorkerError::Storage {
                path: key.to_owned(),
                source,
            }),
        }
    }

    /// Proves the directory accepts writes (full disk, read-only mount, lost permissions) by
    /// writing, syncing and removing a probe file.
    pub async fn check_writable(&self) -> Result<(), WorkerError> {
        let probe = self
            .root
            .join(format!(".readyz-{}", uuid::Uuid::new_v4().simple()));
        let err = |source| WorkerError::Storage {
            path: self.root.display().to_string(),
            source,
        };
        let file = tokio::fs::File::create(&probe).await.map_err(err)?;
        let result = async {
            use tokio::io::AsyncWriteExt;
            let mut file = file;
            file.write_all(b"ok").await?;
            file.sync_all().await
        }
        .await;
        let removed = tokio::fs::remove_file(&probe).await;
        result.map_err(err)?;
        removed.map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writable_directory_passes_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path().join("media")).expect("open");
        storage.check_writable().await.expect("writable");
        let leftovers = std::fs::read_dir(storage.root()).expect("list").count();
        assert_eq!(leftovers, 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn read_only_directory_fails() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555))
            .expect("chmod");
        let result = storage.check_writable().await;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        // root bypasses directory permissions; the check is only meaningful for other users.
        let is_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if !is_root {
            assert!(result.is_err());
        }
    }
}
