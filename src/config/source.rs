//! The first layer of the configuration: everything it is made of, read from outside once. The
//! YAML files, the files they name (keys, development secrets) and the environment are read here
//! and nowhere else; validation (`config::validate`) reads only a [`Sources`], so it is pure: no
//! disk, no network, no process environment. `mcp-gateway check` therefore changes nothing, and a
//! test or a reload can validate a configuration held in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variables, by name.
pub type Env = BTreeMap<String, String>;

/// A file as it was found.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    Bytes(Vec<u8>),
    Missing,
    Unreadable(String),
}

/// The configuration's raw material. Two equal `Sources` validate to the same configuration:
/// the watcher compares them to know when to reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Sources {
    /// `gateway.yaml`; the other files are named relative to its directory.
    pub path: PathBuf,
    files: BTreeMap<PathBuf, Found>,
    pub env: Env,
}

impl Sources {
    /// Reads `gateway.yaml`, every file it names, and the process environment.
    pub fn read(path: &Path) -> Self {
        let mut sources = Sources {
            path: path.to_path_buf(),
            files: BTreeMap::new(),
            env: std::env::vars().collect(),
        };
        sources.load(path);
        let named = sources.named_files();
        for f in &named {
            sources.load(f);
        }
        // tools.yaml (named first) names the upstream TLS files, relative to itself.
        if let Some(tools) = named.first() {
            for f in sources.tools_named_files(tools) {
                sources.load(&f);
            }
        }
        sources
    }

    /// A configuration held in memory: `files` by path (relative paths are taken as they are
    /// joined to the directory of `path`), and the environment it sees.
    pub fn in_memory(
        path: &Path,
        files: impl IntoIterator<Item = (PathBuf, Vec<u8>)>,
        env: Env,
    ) -> Self {
        Sources {
            path: path.to_path_buf(),
            files: files
                .into_iter()
                .map(|(p, b)| (p, Found::Bytes(b)))
                .collect(),
            env,
        }
    }

    /// The directory the files are named relative to.
    pub fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// A file's content, or why it cannot be had.
    pub fn file(&self, path: &Path) -> Result<&[u8], String> {
        match self.files.get(path) {
            Some(Found::Bytes(b)) => Ok(b),
            Some(Found::Unreadable(e)) => Err(e.clone()),
            Some(Found::Missing) | None => Err("No such file or directory".into()),
        }
    }

    /// Whether a file is known to be absent (not merely unreadable).
    pub fn is_missing(&self, path: &Path) -> bool {
        matches!(self.files.get(path), Some(Found::Missing) | None)
    }

    /// An environment variable that is set to something other than blanks.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A short hash of every file read (names relative to gateway.yaml, and contents; not the
    /// environment): equal on every instance that runs the same files, wherever they are on disk,
    /// so an operator can see which version each one runs.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let base = self.base();
        for (path, found) in &self.files {
            // Relative to gateway.yaml, so the same files elsewhere on disk hash the same.
            let name = path.strip_prefix(base).unwrap_or(path);
            h.update(name.as_os_str().as_encoded_bytes());
            h.update([0]);
            match found {
                Found::Bytes(b) => {
                    h.update((b.len() as u64).to_be_bytes());
                    h.update(b);
                }
                Found::Missing | Found::Unreadable(_) => h.update(u64::MAX.to_be_bytes()),
            }
        }
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `gateway.yaml` as written (no environment expanded), when it is valid YAML.
    pub fn gateway_yaml(&self) -> Option<serde_yaml_ng::Value> {
        serde_yaml_ng::from_slice(self.file(&self.path).ok()?).ok()
    }

    fn load(&mut self, path: &Path) {
        let found = match std::fs::read(path) {
            Ok(b) => Found::Bytes(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Missing,
            Err(e) => Found::Unreadable(e.to_string()),
        };
        self.files.insert(path.to_path_buf(), found);
    }

    /// The files tools.yaml names (upstream TLS), relative to its directory.
    fn tools_named_files(&self, tools: &Path) -> Vec<PathBuf> {
        let Some(value) = self
            .file(tools)
            .ok()
            .and_then(|b| serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(b).ok())
        else {
            return Vec::new();
        };
        let base = tools.parent().unwrap_or(Path::new("."));
        super::upstream_tls::named_files(&value)
            .into_iter()
            .filter_map(|f| super::env::expand_str(&f, &self.env).ok())
            .map(|f| base.join(f))
            .collect()
    }

    /// The files `gateway.yaml` names, found without validating it (validation reports what is
    /// wrong with it later, from these same bytes).
    fn named_files(&self) -> Vec<PathBuf> {
        let value = self.gateway_yaml();
        let get = |keys: &[&str]| -> Option<String> {
            let mut v = value.as_ref()?;
            for k in keys {
                v = v.get(*k)?;
            }
            let s = v.as_str()?;
            super::env::expand_str(s, &self.env).ok()
        };
        let base = self.base();
        let mut out = vec![
            base.join(get(&["tools_file"]).unwrap_or_else(|| "tools.yaml".into())),
            base.join(get(&["policy_file"]).unwrap_or_else(|| "policy.yaml".into())),
        ];
        for keys in [&["dev_secrets_file"][..], &["jwt", "public_key_file"]] {
            if let Some(f) = get(keys) {
                out.push(base.join(f));
            }
        }
        if let Some(v) = &value {
            for f in super::listeners::named_files(v) {
                if let Ok(f) = super::env::expand_str(&f, &self.env) {
                    out.push(base.join(f));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(dir: &str, policy: &str) -> Sources {
        let d = Path::new(dir);
        Sources::in_memory(
            &d.join("gateway.yaml"),
            [
                (d.join("gateway.yaml"), b"listen: 127.0.0.1:8000\n".to_vec()),
                (d.join("policy.yaml"), policy.as_bytes().to_vec()),
            ],
            Env::from([("HOME".to_string(), dir.to_string())]),
        )
    }

    /// The same files in another directory (and another environment) hash the same; a changed
    /// file does not.
    #[test]
    fn the_digest_follows_the_files_not_where_they_are() {
        let a = at("/etc/mcp", "roles: {}\n");
        assert_eq!(a.digest(), at("/srv/other", "roles: {}\n").digest());
        assert_ne!(a.digest(), at("/etc/mcp", "roles: { a: {} }\n").digest());
        assert_eq!(a.digest().len(), 12);
    }
}
