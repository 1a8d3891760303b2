//! The git operations behind each tool, on libgit2 objects only.

use super::{
    BlameInput, DiffInput, FileInput, LogInput, RefsInput, SearchInput, ShowInput, TreeInput,
};
use git2::{
    BranchType, Commit, DiffFormat, DiffOptions, ObjectType, Oid, Repository, RepositoryOpenFlags,
    Sort, Tree,
};
use rmcp::schemars;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

type Repos = BTreeMap<String, PathBuf>;
type Result<T> = std::result::Result<T, String>;

/// Text returned per call at most; more is paged with `offset`.
pub const CAP: usize = 64 * 1024;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RepoInfo {
    pub name: String,
    pub head: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RepoList {
    pub repositories: Vec<RepoInfo>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CommitInfo {
    pub id: String,
    pub author: String,
    pub email: String,
    /// Unix seconds.
    pub time: i64,
    pub summary: String,
    pub parents: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogOutput {
    pub commits: Vec<CommitInfo>,
    /// Offset of the next page, when there may be more.
    pub next_offset: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Change {
    /// added, modified, deleted, renamed, copied, typechange
    pub status: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ShowOutput {
    pub commit: CommitInfo,
    pub message: String,
    pub changes: Vec<Change>,
    pub diff: String,
    /// Set when the diff was cut: where the next page starts.
    pub next_offset: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DiffOutput {
    pub changes: Vec<Change>,
    pub diff: String,
    pub next_offset: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FileOutput {
    pub path: String,
    pub size: usize,
    pub binary: bool,
    /// The text (empty for binary files).
    pub content: String,
    pub next_offset: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TreeEntryInfo {
    pub name: String,
    /// file, dir, symlink, submodule
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TreeOutput {
    pub path: String,
    pub entries: Vec<TreeEntryInfo>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BlameLine {
    pub line: usize,
    pub commit: String,
    pub author: String,
    pub time: i64,
    pub text: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BlameOutput {
    pub path: String,
    pub lines: Vec<BlameLine>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SearchMatch {
    /// The file (content search) or the commit id (commit search).
    pub location: String,
    /// 1-based line number within the file or message.
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SearchOutput {
    pub matches: Vec<SearchMatch>,
    pub next_offset: Option<usize>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RefInfo {
    pub name: String,
    pub commit: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RefsOutput {
    pub branches: Vec<RefInfo>,
    pub tags: Vec<RefInfo>,
}

fn open(repos: &Repos, name: &str) -> Result<Repository> {
    let path = repos.get(name).ok_or_else(|| {
        format!(
            "unknown repository {name:?}; available: {}",
            repos.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    Repository::open_ext(
        path,
        RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&std::ffi::OsStr>(),
    )
    .map_err(|e| format!("repository {name:?} cannot be opened: {}", e.message()))
}

/// A path inside the repository: relative, no `..`, no empty or odd components.
pub fn safe_path(p: &str) -> Result<PathBuf> {
    let trimmed = p.trim_matches('/');
    if p.starts_with('/') || p.contains('\\') || p.contains('\0') {
        return Err(format!(
            "{p:?}: paths are relative to the repository root, without '\\\\' or NUL"
        ));
    }
    let path = Path::new(trimmed);
    for c in path.components() {
        match c {
            Component::Normal(_) => {}
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{p:?}: paths may not leave the repository ('..' or absolute)"
                ))
            }
        }
    }
    Ok(path.to_path_buf())
}

fn commit<'r>(repo: &'r Repository, rev: Option<&str>) -> Result<Commit<'r>> {
    let rev = rev.unwrap_or("HEAD");
    if rev.starts_with('-') || rev.contains("..") {
        return Err(format!("{rev:?} is not a single revision"));
    }
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| format!("unknown revision {rev:?}"))
}

fn info(c: &Commit<'_>) -> CommitInfo {
    let a = c.author();
    CommitInfo {
        id: c.id().to_string(),
        author: a.name().unwrap_or("").to_string(),
        email: a.email().unwrap_or("").to_string(),
        time: c.time().seconds(),
        summary: c.summary().ok().flatten().unwrap_or("").to_string(),
        parents: c.parent_ids().map(|p| p.to_string()).collect(),
    }
}

/// Cuts text at `CAP` bytes from `offset` (on a char boundary), saying where the next page starts.
fn page(text: &str, offset: usize) -> (String, Option<usize>) {
    if offset >= text.len() {
        return (String::new(), None);
    }
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let mut end = (start + CAP).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let next = (end < text.len()).then_some(end);
    let mut out = text[start..end].to_string();
    if let Some(n) = next {
        out.push_str(&format!(
            "\n[truncated: {} more bytes; call again with offset={n}]",
            text.len() - n
        ));
    }
    (out, next)
}

pub fn list_repositories(repos: &Repos) -> Result<RepoList> {
    let mut out = Vec::new();
    for name in repos.keys() {
        let repo = open(repos, name)?;
        let head = repo
            .head()
            .ok()
            .and_then(|h| h.shorthand().ok().map(str::to_string));
        out.push(RepoInfo {
            name: name.clone(),
            head,
        });
    }
    Ok(RepoList { repositories: out })
}

/// Whether a commit changes `path` against any of its parents (or adds it, for a root commit).
fn touches(c: &Commit<'_>, path: &Path) -> bool {
    let entry_id = |t: &Tree<'_>| t.get_path(path).ok().map(|e| e.id());
    let Ok(tree) = c.tree() else { return false };
    let mine = entry_id(&tree);
    if c.parent_count() == 0 {
        return mine.is_some();
    }
    c.parents()
        .any(|p| p.tree().ok().map(|t| entry_id(&t)) != Some(mine))
}

pub fn log(repos: &Repos, i: &LogInput) -> Result<LogOutput> {
    let repo = open(repos, &i.repo)?;
    let start = commit(&repo, i.revision.as_deref())?;
    let path = i.path.as_deref().map(safe_path).transpose()?;
    let limit = i.limit.unwrap_or(20).clamp(1, 100);
    let offset = i.offset.unwrap_or(0);
    let mut walk = repo.revwalk().map_err(|e| e.message().to_string())?;
    walk.set_sorting(Sort::TIME | Sort::TOPOLOGICAL)
        .map_err(|e| e.message().to_string())?;
    walk.push(start.id()).map_err(|e| e.message().to_string())?;
    let mut matched = 0;
    let mut commits = Vec::new();
    let mut more = false;
    for oid in walk {
        let oid = oid.map_err(|e| e.message().to_string())?;
        let c = repo.find_commit(oid).map_err(|e| e.message().to_string())?;
        let t = c.time().seconds();
        if i.since.is_some_and(|s| t < s) || i.until.is_some_and(|u| t > u) {
            continue;
        }
        if let Some(a) = &i.author {
            let sig = c.author();
            let hay = format!("{} {}", sig.name().unwrap_or(""), sig.email().unwrap_or(""))
                .to_lowercase();
            if !hay.contains(&a.to_lowercase()) {
                continue;
            }
        }
        if let Some(p) = &path {
            if !touches(&c, p) {
                continue;
            }
        }
        matched += 1;
        if matched <= offset {
            continue;
        }
        if commits.len() == limit {
            more = true;
            break;
        }
        commits.push(info(&c));
    }
    Ok(LogOutput {
        next_offset: more.then_some(offset + limit),
        commits,
    })
}

fn changes(diff: &git2::Diff<'_>) -> Vec<Change> {
    diff.deltas()
        .map(|d| {
            let new = d
                .new_file()
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let old = d
                .old_file()
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let status = format!("{:?}", d.status()).to_lowercase();
            Change {
                old_path: (status == "renamed" || status == "copied").then_some(old),
                path: new,
                status,
            }
        })
        .collect()
}

fn patch_text(diff: &git2::Diff<'_>) -> Result<String> {
    let mut text = String::new();
    diff.print(DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            text.push(line.origin());
        }
        text.push_str(&String::from_utf8_lossy(line.content()));
        // Stop building beyond what any page could show; the rest is counted, not kept.
        text.len() < 16 * 1024 * 1024
    })
    .map_err(|e| e.message().to_string())?;
    Ok(text)
}

fn tree_diff<'r>(
    repo: &'r Repository,
    old: Option<&Tree<'r>>,
    new: &Tree<'r>,
    path: Option<&Path>,
) -> Result<git2::Diff<'r>> {
    let mut opts = DiffOptions::new();
    if let Some(p) = path {
        opts.pathspec(p);
    }
    let mut diff = repo
        .diff_tree_to_tree(old, Some(new), Some(&mut opts))
        .map_err(|e| e.message().to_string())?;
    let mut find = git2::DiffFindOptions::new();
    find.renames(true);
    diff.find_similar(Some(&mut find))
        .map_err(|e| e.message().to_string())?;
    Ok(diff)
}

pub fn show(repos: &Repos, i: &ShowInput) -> Result<ShowOutput> {
    let repo = open(repos, &i.repo)?;
    let c = commit(&repo, Some(&i.revision))?;
    let tree = c.tree().map_err(|e| e.message().to_string())?;
    let parent_tree = c.parents().next().and_then(|p| p.tree().ok());
    let diff = tree_diff(&repo, parent_tree.as_ref(), &tree, None)?;
    let (text, next) = page(&patch_text(&diff)?, i.offset.unwrap_or(0));
    Ok(ShowOutput {
        commit: info(&c),
        message: c.message().unwrap_or("").to_string(),
        changes: changes(&diff),
        diff: text,
        next_offset: next,
    })
}

pub fn diff(repos: &Repos, i: &DiffInput) -> Result<DiffOutput> {
    let repo = open(repos, &i.repo)?;
    let from = commit(&repo, Some(&i.from))?
        .tree()
        .map_err(|e| e.message().to_string())?;
    let to = commit(&repo, Some(&i.to))?
        .tree()
        .map_err(|e| e.message().to_string())?;
    let path = i.path.as_deref().map(safe_path).transpose()?;
    let diff = tree_diff(&repo, Some(&from), &to, path.as_deref())?;
    let (text, next) = page(&patch_text(&diff)?, i.offset.unwrap_or(0));
    Ok(DiffOutput {
        changes: changes(&diff),
        diff: text,
        next_offset: next,
    })
}

pub fn read_file(repos: &Repos, i: &FileInput) -> Result<FileOutput> {
    let repo = open(repos, &i.repo)?;
    let path = safe_path(&i.path)?;
    let tree = commit(&repo, i.revision.as_deref())?
        .tree()
        .map_err(|e| e.message().to_string())?;
    let entry = tree
        .get_path(&path)
        .map_err(|_| format!("no file {:?} at this revision", i.path))?;
    if entry.filemode() == 0o120000 {
        let blob = entry
            .to_object(&repo)
            .and_then(|o| o.peel_to_blob())
            .map_err(|e| e.message().to_string())?;
        return Err(format!(
            "{:?} is a symlink to {:?}; links are not followed",
            i.path,
            String::from_utf8_lossy(blob.content())
        ));
    }
    if entry.kind() != Some(ObjectType::Blob) {
        return Err(format!(
            "{:?} is not a file (use git_list_tree for directories)",
            i.path
        ));
    }
    let blob = entry
        .to_object(&repo)
        .and_then(|o| o.peel_to_blob())
        .map_err(|e| e.message().to_string())?;
    let size = blob.size();
    if blob.is_binary() {
        return Ok(FileOutput {
            path: i.path.clone(),
            size,
            binary: true,
            content: String::new(),
            next_offset: None,
        });
    }
    let text = String::from_utf8_lossy(blob.content());
    let (content, next) = page(&text, i.offset.unwrap_or(0));
    Ok(FileOutput {
        path: i.path.clone(),
        size,
        binary: false,
        content,
        next_offset: next,
    })
}

pub fn list_tree(repos: &Repos, i: &TreeInput) -> Result<TreeOutput> {
    let repo = open(repos, &i.repo)?;
    let root = commit(&repo, i.revision.as_deref())?
        .tree()
        .map_err(|e| e.message().to_string())?;
    let path = i
        .path
        .as_deref()
        .filter(|p| !p.trim_matches('/').is_empty())
        .map(safe_path)
        .transpose()?;
    let tree = match &path {
        None => root,
        Some(p) => root
            .get_path(p)
            .and_then(|e| e.to_object(&repo))
            .and_then(|o| o.peel_to_tree())
            .map_err(|_| {
                format!(
                    "no directory {:?} at this revision",
                    i.path.as_deref().unwrap_or("")
                )
            })?,
    };
    let entries = tree
        .iter()
        .map(|e| {
            let kind = match (e.kind(), e.filemode()) {
                (_, 0o120000) => "symlink",
                (Some(ObjectType::Tree), _) => "dir",
                (Some(ObjectType::Commit), _) => "submodule",
                _ => "file",
            };
            let size =
                (kind == "file").then(|| repo.find_blob(e.id()).map(|b| b.size()).unwrap_or(0));
            TreeEntryInfo {
                name: e.name().unwrap_or("?").to_string(),
                kind: kind.into(),
                size,
            }
        })
        .collect();
    Ok(TreeOutput {
        path: path.map(|p| p.display().to_string()).unwrap_or_default(),
        entries,
    })
}

pub fn blame(repos: &Repos, i: &BlameInput) -> Result<BlameOutput> {
    let repo = open(repos, &i.repo)?;
    let path = safe_path(&i.path)?;
    let c = commit(&repo, i.revision.as_deref())?;
    let blob = c
        .tree()
        .and_then(|t| t.get_path(&path))
        .and_then(|e| e.to_object(&repo))
        .and_then(|o| o.peel_to_blob())
        .map_err(|_| format!("no file {:?} at this revision", i.path))?;
    let text = String::from_utf8_lossy(blob.content()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let start = i.start_line.unwrap_or(1).max(1);
    let end = i
        .end_line
        .unwrap_or(start + 199)
        .min(lines.len())
        .min(start + 999);
    if start > lines.len() {
        return Err(format!("the file has {} lines", lines.len()));
    }
    let mut opts = git2::BlameOptions::new();
    opts.newest_commit(c.id()).min_line(start).max_line(end);
    let blame = repo
        .blame_file(&path, Some(&mut opts))
        .map_err(|e| e.message().to_string())?;
    let mut out = Vec::new();
    for n in start..=end {
        let Some(h) = blame.get_line(n) else { continue };
        let sig = h.final_signature();
        let id: Oid = h.final_commit_id();
        let commit_time = repo
            .find_commit(id)
            .map(|c| c.time().seconds())
            .unwrap_or(0);
        out.push(BlameLine {
            line: n,
            commit: id.to_string(),
            author: sig
                .as_ref()
                .and_then(|s| s.name().ok().map(str::to_string))
                .unwrap_or_default(),
            time: commit_time,
            text: lines[n - 1].to_string(),
        });
    }
    Ok(BlameOutput {
        path: i.path.clone(),
        lines: out,
    })
}

pub fn search(repos: &Repos, i: &SearchInput) -> Result<SearchOutput> {
    let repo = open(repos, &i.repo)?;
    let re = regex::RegexBuilder::new(&i.pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad pattern: {e}"))?;
    let offset = i.offset.unwrap_or(0);
    let limit = i.limit.unwrap_or(50).clamp(1, 500);
    let mut seen = 0;
    let mut matches = Vec::new();
    let mut more = false;
    let mut hit = |location: String, line: usize, text: &str| -> bool {
        seen += 1;
        if seen <= offset {
            return true;
        }
        if matches.len() == limit {
            more = true;
            return false;
        }
        matches.push(SearchMatch {
            location,
            line,
            text: text.chars().take(500).collect(),
        });
        true
    };
    let start = commit(&repo, i.revision.as_deref())?;
    match i.target.as_deref().unwrap_or("content") {
        "commits" => {
            let mut walk = repo.revwalk().map_err(|e| e.message().to_string())?;
            walk.push(start.id()).map_err(|e| e.message().to_string())?;
            'walk: for oid in walk.take(10_000) {
                let Ok(c) = repo.find_commit(oid.map_err(|e| e.message().to_string())?) else {
                    continue;
                };
                for (n, l) in c.message().unwrap_or("").lines().enumerate() {
                    if re.is_match(l) && !hit(c.id().to_string(), n + 1, l) {
                        break 'walk;
                    }
                }
            }
        }
        "content" => {
            let globs = match &i.paths {
                Some(list) => {
                    let mut b = globset::GlobSetBuilder::new();
                    for g in list {
                        b.add(
                            globset::Glob::new(g)
                                .map_err(|e| format!("bad path glob {g:?}: {e}"))?,
                        );
                    }
                    Some(b.build().map_err(|e| e.to_string())?)
                }
                None => None,
            };
            let tree = start.tree().map_err(|e| e.message().to_string())?;
            let mut stop = false;
            tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if stop {
                    return git2::TreeWalkResult::Abort;
                }
                if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
                    return git2::TreeWalkResult::Ok;
                }
                let path = format!("{dir}{}", entry.name().unwrap_or(""));
                if globs.as_ref().is_some_and(|g| !g.is_match(&path)) {
                    return git2::TreeWalkResult::Ok;
                }
                let Ok(blob) = repo.find_blob(entry.id()) else {
                    return git2::TreeWalkResult::Ok;
                };
                if blob.is_binary() || blob.size() > 4 * 1024 * 1024 {
                    return git2::TreeWalkResult::Ok;
                }
                for (n, l) in String::from_utf8_lossy(blob.content()).lines().enumerate() {
                    if re.is_match(l) && !hit(path.clone(), n + 1, l) {
                        stop = true;
                        return git2::TreeWalkResult::Abort;
                    }
                }
                git2::TreeWalkResult::Ok
            })
            .or_else(|e| {
                if stop {
                    Ok(())
                } else {
                    Err(e.message().to_string())
                }
            })?;
        }
        other => return Err(format!("unknown target {other:?}: use content or commits")),
    }
    Ok(SearchOutput {
        next_offset: more.then_some(offset + limit),
        matches,
    })
}

pub fn refs(repos: &Repos, i: &RefsInput) -> Result<RefsOutput> {
    let repo = open(repos, &i.repo)?;
    let mut branches = Vec::new();
    for b in repo
        .branches(Some(BranchType::Local))
        .map_err(|e| e.message().to_string())?
    {
        let (b, _) = b.map_err(|e| e.message().to_string())?;
        let name = b.name().ok().flatten().unwrap_or("?").to_string();
        let commit = b
            .get()
            .peel_to_commit()
            .map(|c| c.id().to_string())
            .unwrap_or_default();
        branches.push(RefInfo { name, commit });
    }
    let mut tags = Vec::new();
    for name in repo
        .tag_names(None)
        .map_err(|e| e.message().to_string())?
        .iter()
        .flatten()
        .flatten()
    {
        let commit = repo
            .revparse_single(&format!("refs/tags/{name}"))
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id().to_string())
            .unwrap_or_default();
        tags.push(RefInfo {
            name: name.to_string(),
            commit,
        });
    }
    Ok(RefsOutput { branches, tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert!(safe_path("src/main.rs").is_ok());
        assert!(safe_path("../etc/passwd").is_err());
        assert!(safe_path("a/../../b").is_err());
        assert!(safe_path("/etc/passwd").is_err());
        assert!(safe_path("a\\b").is_err());
    }

    #[test]
    fn pages_say_where_to_go_on() {
        let text = "x".repeat(CAP + 10);
        let (first, next) = page(&text, 0);
        assert_eq!(next, Some(CAP));
        assert!(first.ends_with(&format!(
            "[truncated: 10 more bytes; call again with offset={CAP}]"
        )));
        assert_eq!(page(&text, CAP).0, "x".repeat(10));
    }
}
