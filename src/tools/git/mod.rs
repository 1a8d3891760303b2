//! The read-only git tool server. Repositories are named in its configuration (`--repo
//! NAME=PATH`); nothing else is reachable. Everything is read through libgit2's object database,
//! never the work tree: no call writes, runs a hook, or follows a path out of the repository
//! (`..`, absolute paths and symlinks are refused or shown as what they are, never followed).
//! Large answers are capped with a stated truncation marker and an `offset` to page on.

mod ops;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{schemars, tool, tool_router};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use ops::*;

#[derive(Debug, Clone)]
pub struct Git {
    repos: Arc<BTreeMap<String, PathBuf>>,
}

impl Git {
    pub fn new(repos: Arc<BTreeMap<String, PathBuf>>) -> Self {
        Git { repos }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoInput {}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LogInput {
    /// Repository name (see git_list_repositories).
    pub repo: String,
    /// Where to start: a branch, tag or commit (default HEAD).
    #[serde(default)]
    pub revision: Option<String>,
    /// Only commits that change this path (file or directory).
    #[serde(default)]
    pub path: Option<String>,
    /// Only commits whose author name or email contains this text.
    #[serde(default)]
    pub author: Option<String>,
    /// Only commits at or after this Unix time (seconds).
    #[serde(default)]
    pub since: Option<i64>,
    /// Only commits at or before this Unix time (seconds).
    #[serde(default)]
    pub until: Option<i64>,
    /// Matching commits to skip (paging).
    #[serde(default)]
    pub offset: Option<usize>,
    /// At most this many commits (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ShowInput {
    pub repo: String,
    /// A commit, branch or tag.
    pub revision: String,
    /// Byte offset into the diff text, to page through a large one.
    #[serde(default)]
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DiffInput {
    pub repo: String,
    /// The old side (commit, branch or tag).
    pub from: String,
    /// The new side.
    pub to: String,
    /// Only this path.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FileInput {
    pub repo: String,
    /// Path inside the repository, e.g. "src/main.rs".
    pub path: String,
    /// Default HEAD.
    #[serde(default)]
    pub revision: Option<String>,
    /// Byte offset, to page through a large file.
    #[serde(default)]
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TreeInput {
    pub repo: String,
    /// Directory inside the repository (default: the root).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BlameInput {
    pub repo: String,
    pub path: String,
    #[serde(default)]
    pub revision: Option<String>,
    /// First line (1-based, default 1).
    #[serde(default)]
    pub start_line: Option<usize>,
    /// Last line (default: start + 199).
    #[serde(default)]
    pub end_line: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchInput {
    pub repo: String,
    /// A regular expression (Rust regex syntax).
    pub pattern: String,
    /// `content` (file contents at the revision, the default) or `commits` (commit messages).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
    /// For content: only paths matching these globs, e.g. ["src/**/*.rs"].
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Matches to skip (paging).
    #[serde(default)]
    pub offset: Option<usize>,
    /// At most this many matches (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RefsInput {
    pub repo: String,
}

#[tool_router(server_handler)]
impl Git {
    #[tool(
        description = "List the git repositories this server may read (name and default branch)."
    )]
    fn git_list_repositories(
        &self,
        Parameters(_): Parameters<NoInput>,
    ) -> Result<Json<RepoList>, String> {
        ops::list_repositories(&self.repos).map(Json)
    }

    #[tool(
        description = "Commit history of a repository, newest first: filter by revision, path, author, since/until (Unix seconds); page with offset/limit."
    )]
    fn git_log(&self, Parameters(i): Parameters<LogInput>) -> Result<Json<LogOutput>, String> {
        ops::log(&self.repos, &i).map(Json)
    }

    #[tool(
        description = "One commit: metadata, changed files (added/modified/deleted/renamed) and its diff (capped at 64 KiB; page with offset)."
    )]
    fn git_show_commit(
        &self,
        Parameters(i): Parameters<ShowInput>,
    ) -> Result<Json<ShowOutput>, String> {
        ops::show(&self.repos, &i).map(Json)
    }

    #[tool(
        description = "Diff between two revisions, optionally for one path (capped at 64 KiB; page with offset)."
    )]
    fn git_diff(&self, Parameters(i): Parameters<DiffInput>) -> Result<Json<DiffOutput>, String> {
        ops::diff(&self.repos, &i).map(Json)
    }

    #[tool(
        description = "Read a file at a revision (default HEAD); text capped at 64 KiB per call (page with offset); binary files are reported, not returned."
    )]
    fn git_read_file(
        &self,
        Parameters(i): Parameters<FileInput>,
    ) -> Result<Json<FileOutput>, String> {
        ops::read_file(&self.repos, &i).map(Json)
    }

    #[tool(
        description = "List a directory of the repository at a revision: names, kinds (file, dir, symlink, submodule) and file sizes."
    )]
    fn git_list_tree(
        &self,
        Parameters(i): Parameters<TreeInput>,
    ) -> Result<Json<TreeOutput>, String> {
        ops::list_tree(&self.repos, &i).map(Json)
    }

    #[tool(
        description = "Blame a file at a revision for a line range: for each line, the commit, author and time that last changed it."
    )]
    fn git_blame(
        &self,
        Parameters(i): Parameters<BlameInput>,
    ) -> Result<Json<BlameOutput>, String> {
        ops::blame(&self.repos, &i).map(Json)
    }

    #[tool(
        description = "Search with a regular expression: file contents at a revision (target=content, optional path globs) or commit messages (target=commits). Paged with offset/limit."
    )]
    fn git_search(
        &self,
        Parameters(i): Parameters<SearchInput>,
    ) -> Result<Json<SearchOutput>, String> {
        ops::search(&self.repos, &i).map(Json)
    }

    #[tool(description = "Branches and tags of a repository, with the commit each points to.")]
    fn git_list_refs(
        &self,
        Parameters(i): Parameters<RefsInput>,
    ) -> Result<Json<RefsOutput>, String> {
        ops::refs(&self.repos, &i).map(Json)
    }
}
