//! The completion marker, `bundles-v1/<digest>.ok`: written last, after the tree has been
//! extracted, synced and renamed into place, so a tree without a marker is never used.
//!
//! ```text
//! wrapkit-bundle 1
//! digest 5e0c…(64 hex)
//! name hello
//! version 1.0.0
//! files 2000
//! bytes 52428800
//! exe /usr/local/bin/hello
//! ```
//!
//! Text, one `key value` per line, unknown keys ignored. `exe` lines name the packed files seen
//! using the tree (at most [`MAX_EXES`]); a start from a new path appends one line. `wrapkit cache
//! gc` uses them to find trees whose executables are gone or were repacked. The marker's mtime
//! is the last time a start used the tree (refreshed at most once a day).

use std::fmt::Write as _;
use std::path::PathBuf;

/// First line of every marker; the number is the layout version, as in `bundles-v1`.
pub const HEADER: &str = "wrapkit-bundle 1";
/// How many executable paths a marker remembers.
pub const MAX_EXES: usize = 16;

/// A parsed marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marker {
    /// Lowercase hex BLAKE3 digest of the payload (the trailer's).
    pub digest: String,
    pub name: String,
    pub version: String,
    pub files: u64,
    pub bytes: u64,
    pub exes: Vec<PathBuf>,
}

impl Marker {
    pub fn encode(&self) -> String {
        let mut out = format!("{HEADER}\ndigest {}\n", self.digest);
        let _ = writeln!(out, "name {}", printable(&self.name));
        let _ = writeln!(out, "version {}", printable(&self.version));
        let _ = writeln!(out, "files {}", self.files);
        let _ = writeln!(out, "bytes {}", self.bytes);
        for exe in &self.exes {
            if let Some(line) = exe_line(exe) {
                out.push_str(&line);
            }
        }
        out
    }

    /// Parses a marker; `None` if it is not one (wrong header, no digest).
    pub fn decode(text: &str) -> Option<Marker> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut m = Marker::default();
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "digest" => m.digest = value.to_owned(),
                "name" => m.name = value.to_owned(),
                "version" => m.version = value.to_owned(),
                "files" => m.files = value.parse().unwrap_or(0),
                "bytes" => m.bytes = value.parse().unwrap_or(0),
                "exe" if !value.is_empty() && m.exes.len() < MAX_EXES => {
                    m.exes.push(PathBuf::from(value));
                }
                _ => {}
            }
        }
        (m.digest.len() == 64).then_some(m)
    }
}

/// The `exe` line for `path`, if it can be recorded (absolute, one line, still a real path).
pub fn exe_line(path: &std::path::Path) -> Option<String> {
    let s = path.to_str()?;
    if !s.starts_with('/') || s.chars().any(char::is_control) || s.ends_with(" (deleted)") {
        return None;
    }
    Some(format!("exe {s}\n"))
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_unknown_keys() {
        let m = Marker {
            digest: "ab".repeat(32),
            name: "app".into(),
            version: "1.0".into(),
            files: 3,
            bytes: 42,
            exes: vec!["/usr/bin/app".into()],
        };
        let mut text = m.encode();
        text.push_str("future-key 7\n");
        assert_eq!(Marker::decode(&text), Some(m));
        assert_eq!(Marker::decode("something else\ndigest x\n"), None);
        assert_eq!(Marker::decode(HEADER), None);
    }

    #[test]
    fn unrecordable_paths_are_skipped() {
        assert!(exe_line("relative".as_ref()).is_none());
        assert!(exe_line("/a\nb".as_ref()).is_none());
        assert!(exe_line("/memfd:x (deleted)".as_ref()).is_none());
        assert_eq!(exe_line("/x/y".as_ref()).unwrap(), "exe /x/y\n");
    }
}
