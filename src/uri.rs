//! Resource URIs in one normal form, so a grant is matched against what the upstream will read.
//!
//! A grant such as `docs/resource:file:///public/*` is a glob over URIs. Matched against the raw
//! string, `file:///public/../secret` or `file:///public/%2e%2e/secret` would pass while naming
//! another file. `normalize` applies RFC 3986 §6.2.2 (scheme and host lowercased, escapes of
//! unreserved characters decoded and every other escape upper-cased, dot segments removed) and
//! refuses what has no safe normal form: control characters and backslashes (also escaped),
//! escapes that are not valid UTF-8 (overlong forms of `.` and `/`), double escapes (`%25XX`), a
//! missing scheme, and dot segments that appear only once escaped slashes are decoded. The gateway
//! matches grants against the normal form and forwards that form, never the client's spelling.
//! URI templates (`file:///{path}`) keep their braces: they pass through like any other character.

use std::fmt::Write as _;

/// Why a URI has no normal form; the message is shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriError(&'static str);

/// The normal form of `uri`, or why it has none.
pub fn normalize(uri: &str) -> Result<String, UriError> {
    if uri.chars().any(|c| c.is_control() || c == '\\') {
        return Err(UriError(
            "a resource URI may not contain control characters or backslashes",
        ));
    }
    let (scheme, rest) = uri
        .split_once(':')
        .filter(|(s, _)| is_scheme(s))
        .ok_or(UriError(
            "a resource URI needs a scheme (e.g. file:///a.txt)",
        ))?;
    let (rest, fragment) = split_off(rest, '#');
    let (hier, query) = split_off(rest, '?');
    let (authority, path) = match hier.strip_prefix("//") {
        Some(h) => {
            let at = h.find('/').unwrap_or(h.len());
            (Some(&h[..at]), &h[at..])
        }
        None => (None, hier),
    };

    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme.to_ascii_lowercase());
    out.push(':');
    if let Some(authority) = authority {
        out.push_str("//");
        let (user, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        if let Some(user) = user {
            out.push_str(&escapes(user)?);
            out.push('@');
        }
        // Lowercased after decoding (`%41` is `a`), escaped again so hex digits stay upper-case.
        out.push_str(&escapes(&escapes(host)?.to_lowercase())?);
    }
    let path = escapes(path)?;
    decoded(&path)?;
    let path = remove_dot_segments(&path);
    // Dot segments left now were hidden behind escaped slashes: an upstream that decodes `%2F`
    // before resolving `..` would leave the granted directory.
    if decoded(&path)?
        .split('/')
        .any(|seg| seg == "." || seg == "..")
    {
        return Err(UriError(
            "a resource URI may not hide dot segments behind escaped slashes",
        ));
    }
    out.push_str(&path);
    for (sep, part) in [('?', query), ('#', fragment)] {
        if let Some(part) = part {
            let part = escapes(part)?;
            decoded(&part)?;
            out.push(sep);
            out.push_str(&part);
        }
    }
    Ok(out)
}

/// `s` split at the first `sep`: the part before, and the part after if `sep` occurs.
fn split_off(s: &str, sep: char) -> (&str, Option<&str>) {
    match s.split_once(sep) {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Escapes of unreserved characters decoded, every other escape upper-cased; refuses malformed
/// and double escapes.
fn escapes(s: &str) -> Result<String, UriError> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let start = i;
            while i < b.len() && b[i] != b'%' {
                i += 1;
            }
            out.push_str(&s[start..i]);
            continue;
        }
        let byte = hex_pair(b, i + 1).ok_or(UriError(
            "a % in a resource URI must be followed by two hex digits",
        ))?;
        if byte == b'%' && hex_pair(b, i + 3).is_some() {
            return Err(UriError("a resource URI may not be percent-encoded twice"));
        }
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
        i += 3;
    }
    Ok(out)
}

fn hex_pair(b: &[u8], at: usize) -> Option<u8> {
    let digits = b.get(at..at + 2)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

/// `part` with every escape decoded: it must be valid UTF-8 (no overlong forms), free of control
/// characters and backslashes.
fn decoded(part: &str) -> Result<String, UriError> {
    let b = part.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex_pair(b, i + 1)) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                i += 3;
            }
            (c, _) => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| UriError("a resource URI's escapes must decode to valid UTF-8"))?;
    if text.chars().any(|c| c.is_control() || c == '\\') {
        return Err(UriError(
            "a resource URI may not contain control characters or backslashes",
        ));
    }
    Ok(text)
}

/// RFC 3986 §5.2.4, on a path whose escapes are already normalized.
fn remove_dot_segments(path: &str) -> String {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return path.to_string();
    }
    if path == "." || path == ".." {
        return String::new();
    }
    let absolute = path.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    // Whether the result ends with a slash: a trailing dot segment leaves a directory.
    let mut trailing = false;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing = n == last,
            ".." => {
                if kept.len() > usize::from(absolute) {
                    kept.pop();
                }
                trailing = n == last;
            }
            s => {
                kept.push(s);
                trailing = false;
            }
        }
    }
    let mut out = kept.join("/");
    if absolute && !out.starts_with('/') {
        out.insert(0, '/');
    }
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, want: &str) {
        assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
    }

    fn refused(raw: &str) {
        assert!(
            normalize(raw).is_err(),
            "{raw} was accepted as {:?}",
            normalize(raw)
        );
    }

    #[test]
    fn normal_forms() {
        ok("file:///public/a.txt", "file:///public/a.txt");
        ok("file:///public/../secret/b.txt", "file:///secret/b.txt");
        ok("file:///public/./a/../b", "file:///public/b");
        ok("file:///public/%2e%2e/secret", "file:///secret");
        ok("file:///public/%2E%2e/secret", "file:///secret");
        ok("file:///public/%7euser/a", "file:///public/~user/a");
        ok("FILE://Host.Example/A%2fB", "file://host.example/A%2FB");
        ok(
            "file://public/../secret/b.txt",
            "file://public/secret/b.txt",
        );
        ok("file:///a/..", "file:///");
        ok("file:///../../etc/passwd", "file:///etc/passwd");
        ok("repo:docs/../secret", "repo:secret");
        ok("repo:..", "repo:");
        ok("repo:a/..", "repo:/");
        ok("file:///{path}", "file:///{path}");
        ok(
            "https://u@Example.COM/x?q=%2e#Frag",
            "https://u@example.com/x?q=.#Frag",
        );
        ok("doc://a/b%20c", "doc://a/b%20c");
        ok("mem://ünï/côde", "mem://ünï/côde");
    }

    #[test]
    fn unsafe_forms_are_refused() {
        refused("file:///public/\0/../secret");
        refused("file:///public/%00/../secret");
        refused("file:///public/..\\secret");
        refused("file:///public/%5c..%5csecret");
        refused("file:///public/%2F..%2Fsecret");
        refused("file:///public/%252e%252e/secret");
        refused("file:///public/%c0%ae%c0%ae/secret");
        refused("file:///public/%C0%AF");
        refused("file:///public/%zz");
        refused("file:///public/%2");
        refused("/public/a.txt");
        refused("1file:///a");
        refused("");
        refused("file:///a\n");
        refused("file:///a?q=%00");
        refused("file:///a#%0a");
    }

    #[test]
    fn normal_forms_are_fixed_points() {
        for raw in [
            "file:///public/../secret/b.txt",
            "FILE://Host/%7e/./x/",
            "a:b/../../c",
            "x://h/a/b/../../..",
        ] {
            let once = normalize(raw).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{raw}");
        }
    }

    /// Mutated real URIs (escapes, dot segments, control bytes spliced in): never a panic, and
    /// whatever is accepted is its own normal form, with no dot segment or control character left.
    #[test]
    fn mutated_uris_are_refused_or_stable() {
        let seeds: [&[u8]; 5] = [
            b"file:///public/../secret/b.txt",
            b"FILE://Host/%2e%2E/%7euser/./x?q=%41#f",
            b"repo:docs/a/../../b",
            b"file:///public/%c3%a9t%c3%a9/{name}",
            b"https://u@h:8080/a%2Fb/..%2f/c",
        ];
        for raw in crate::mutate::mutations(&seeds, 20_000, 30) {
            let Ok(raw) = std::str::from_utf8(&raw) else {
                continue;
            };
            if let Ok(normal) = normalize(raw) {
                assert_eq!(
                    normalize(&normal).as_deref(),
                    Ok(normal.as_str()),
                    "{raw:?}"
                );
                assert!(!normal.chars().any(char::is_control), "{raw:?}");
                let path = normal.split(['?', '#']).next().unwrap_or("");
                assert!(
                    !path.split('/').any(|s| s == "." || s == ".."),
                    "{raw:?} -> {normal:?}"
                );
            }
        }
    }
}
