//! The registry in one JSON file: read and changed under an exclusive lock on `<file>.lock`,
//! written to a temporary file and renamed over, so concurrent writers never lose each other's
//! changes.

use super::{key, ApproveError, Event, Row, Seen, MAX_FILE_HISTORY};
use crate::error::StorageError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Doc {
    #[serde(default)]
    pub(super) tools: BTreeMap<String, Row>,
    #[serde(default)]
    pub(super) definitions: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) history: BTreeMap<String, Vec<Event>>,
}

impl Doc {
    pub(super) fn event(
        &mut self,
        scope: &str,
        tool: &str,
        event: &str,
        sha: Option<&str>,
        actor: &str,
    ) {
        let h = self.history.entry(key(scope, tool)).or_default();
        h.push(Event {
            at: SystemTime::now(),
            event: event.into(),
            sha256: sha.map(str::to_string),
            actor: actor.into(),
        });
        if h.len() > MAX_FILE_HISTORY {
            h.drain(..h.len() - MAX_FILE_HISTORY);
        }
    }

    pub(super) fn seen(
        &mut self,
        scope: &str,
        tool: &str,
        sha: &str,
        def: Value,
        actor: &str,
    ) -> Seen {
        self.definitions.entry(sha.to_string()).or_insert(def);
        let now = SystemTime::now();
        let k = key(scope, tool);
        let Some(row) = self.tools.get_mut(&k) else {
            self.tools.insert(
                k,
                Row {
                    scope: scope.into(),
                    tool: tool.into(),
                    active: true,
                    current_sha: Some(sha.into()),
                    approved_sha: Some(sha.into()),
                    approved_by: Some("first seen".into()),
                    first_seen: now,
                    last_seen: now,
                    changed_at: now,
                },
            );
            self.event(scope, tool, "first_seen", Some(sha), actor);
            return Seen::First;
        };
        row.last_seen = now;
        let reactivated = !row.active;
        row.active = true;
        let previous = row.current_sha.clone();
        let changed = previous.as_deref() != Some(sha);
        if changed {
            row.current_sha = Some(sha.into());
            row.changed_at = now;
        }
        if reactivated {
            self.event(scope, tool, "active", Some(sha), actor);
        }
        if changed {
            self.event(scope, tool, "changed", Some(sha), actor);
            return Seen::Changed { previous };
        }
        Seen::Same
    }

    pub(super) fn set_active(&mut self, scope: &str, active: &[String], actor: &str) {
        let mut flips = Vec::new();
        for row in self.tools.values_mut().filter(|r| r.scope == scope) {
            let want = active.contains(&row.tool);
            if row.active != want {
                row.active = want;
                flips.push((row.tool.clone(), want, row.current_sha.clone()));
            }
        }
        for (tool, want, sha) in flips {
            let event = if want { "active" } else { "inactive" };
            self.event(scope, &tool, event, sha.as_deref(), actor);
        }
    }

    pub(super) fn approve(
        &mut self,
        scope: &str,
        tool: &str,
        sha: Option<&str>,
        actor: &str,
    ) -> Result<String, ApproveError> {
        let k = key(scope, tool);
        let known = |s: &str| {
            self.history
                .get(&k)
                .is_some_and(|h| h.iter().any(|e| e.sha256.as_deref() == Some(s)))
        };
        let sha = match sha {
            Some(s) if known(s) => s.to_string(),
            Some(s) => return Err(ApproveError::UnknownVersion(k, s.into())),
            None => {
                let row = self
                    .tools
                    .get(&k)
                    .ok_or_else(|| ApproveError::UnknownTool(k.clone()))?;
                row.current_sha
                    .clone()
                    .ok_or_else(|| ApproveError::NothingSeen(k.clone()))?
            }
        };
        let row = self
            .tools
            .get_mut(&k)
            .ok_or_else(|| ApproveError::UnknownTool(k.clone()))?;
        row.approved_sha = Some(sha.clone());
        row.approved_by = Some(actor.into());
        self.event(scope, tool, "approved", Some(&sha), actor);
        Ok(sha)
    }
}

/// Reads the file under its lock and answers from it.
pub(super) async fn blocking<T: Send + 'static>(
    file: &Path,
    f: impl FnOnce(Doc) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _lock = lock(&file)?;
        f(read(&file)?)
    })
    .await?
}

/// Changes the file under its lock: read, change, write a temporary file, rename it over.
pub(super) async fn modify<T: Send + 'static>(
    file: &Path,
    f: impl FnOnce(&mut Doc) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _lock = lock(&file)?;
        let mut doc = read(&file)?;
        let out = f(&mut doc)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| StorageError::file(dir, e))?;
        serde_json::to_writer_pretty(&mut tmp, &doc).map_err(|source| StorageError::Document {
            path: file.clone(),
            source,
        })?;
        tmp.persist(&file)
            .map_err(|e| StorageError::file(&file, e.error))?;
        Ok(out)
    })
    .await?
}

fn lock(file: &Path) -> Result<std::fs::File, StorageError> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::file(dir, e))?;
    }
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    let l = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| StorageError::file(&name, e))?;
    l.lock().map_err(|e| StorageError::file(&name, e))?;
    Ok(l)
}

fn read(file: &Path) -> Result<Doc, StorageError> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| StorageError::Document {
            path: file.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Doc::default()),
        Err(e) => Err(StorageError::file(file, e)),
    }
}

/// Times in the file: milliseconds since 1970.
pub(super) mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        s.serialize_u64(ms)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_millis(u64::deserialize(d)?))
    }
}
