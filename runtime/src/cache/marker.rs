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
//! layer 9f1c…(64 hex)
//! dir 1764672000 123456789 .
//! dir 1764672000 120000000 data
//! exe /usr/local/bin/hello
//! ```
//!
//! A layer's marker (`layers-v1/<digest>.ok`) starts `wrapkit-layer 1` and says which glibc the
//! fill chose (`libc host|bundle`). `layer` lines name the layers a bundle uses, so `wrapkit
//! cache gc` keeps them. `dir` lines record every directory of the tree (`.` is its root) with
//! its modification time after the fill: removing or adding anything in a directory changes its
//! time, so a warm start finds a removed file with one `stat` per directory, whatever the number
//! of files (the tree is read-only, so only a cleaner, a user or root changes it at all).
//!
//! Text, one `key value` per line, unknown keys ignored. `exe` lines name the packed files seen
//! using the tree (at most [`MAX_EXES`]); a start from a new path appends one line. `wrapkit cache
//! gc` uses them to find trees whose executables are gone or were repacked. The marker's mtime
//! is the last time a start used the tree (refreshed at most once a day).

use std::fmt::Write as _;
use std::path::PathBuf;

/// First line of every bundle's marker; the number is the layout version, as in `bundles-v1`.
pub const HEADER: &str = "wrapkit-bundle 1";
/// First line of every layer's marker.
pub const LAYER_HEADER: &str = "wrapkit-layer 1";
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
    /// A layer's marker (not a bundle's).
    pub layer: bool,
    /// The layers a bundle uses, by digest.
    pub layers: Vec<String>,
    /// The glibc a layer's fill chose: `host` or `bundle`.
    pub libc: Option<String>,
    /// Every directory of the tree (`.` first) with its mtime when the fill finished.
    pub dirs: Vec<DirTime>,
}

/// A directory of a tree and its modification time (seconds, nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirTime {
    pub name: String,
    pub sec: i64,
    pub nsec: i64,
}

impl Marker {
    pub fn encode(&self) -> String {
        let header = if self.layer { LAYER_HEADER } else { HEADER };
        let mut out = format!("{header}\ndigest {}\n", self.digest);
        let _ = writeln!(out, "name {}", printable(&self.name));
        let _ = writeln!(out, "version {}", printable(&self.version));
        let _ = writeln!(out, "files {}", self.files);
        let _ = writeln!(out, "bytes {}", self.bytes);
        if let Some(libc) = &self.libc {
            let _ = writeln!(out, "libc {}", printable(libc));
        }
        for layer in &self.layers {
            let _ = writeln!(out, "layer {layer}");
        }
        let _ = writeln!(out, "dirs {}", self.dirs.len());
        for d in &self.dirs {
            let _ = writeln!(out, "dir {} {} {}", d.sec, d.nsec, d.name);
        }
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
        let layer = match lines.next()? {
            HEADER => false,
            LAYER_HEADER => true,
            _ => return None,
        };
        let mut m = Marker {
            layer,
            ..Marker::default()
        };
        let mut dirs_declared = None;
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
                "libc" => m.libc = Some(value.to_owned()),
                "layer" if value.len() == 64 => m.layers.push(value.to_owned()),
                "dirs" => dirs_declared = value.parse::<usize>().ok(),
                "dir" => {
                    let mut parts = value.splitn(3, ' ');
                    let (sec, nsec, name) = (parts.next()?, parts.next()?, parts.next()?);
                    m.dirs.push(DirTime {
                        name: name.to_owned(),
                        sec: sec.parse().ok()?,
                        nsec: nsec.parse().ok()?,
                    });
                }
                _ => {}
            }
        }
        // A marker without its directory list (a cut-short write, an older layout) is not one:
        // the tree is filled again.
        (m.digest.len() == 64 && dirs_declared == Some(m.dirs.len()) && !m.dirs.is_empty())
            .then_some(m)
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
            layer: false,
            layers: vec!["cd".repeat(32)],
            libc: None,
            dirs: vec![
                DirTime {
                    name: ".".into(),
                    sec: 1,
                    nsec: 2,
                },
                DirTime {
                    name: "a dir/b".into(),
                    sec: 3,
                    nsec: 4,
                },
            ],
        };
        let mut text = m.encode();
        text.push_str("future-key 7\n");
        assert_eq!(Marker::decode(&text), Some(m.clone()));
        assert_eq!(Marker::decode("something else\ndigest x\n"), None);
        assert_eq!(Marker::decode(HEADER), None);
        let without_dirs: String = m
            .encode()
            .lines()
            .filter(|l| !l.starts_with("dir "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Marker::decode(&without_dirs), None, "a cut-short marker");
        let layer = Marker {
            layer: true,
            libc: Some("bundle".into()),
            ..m
        };
        assert_eq!(Marker::decode(&layer.encode()), Some(layer));
    }

    #[test]
    fn unrecordable_paths_are_skipped() {
        assert!(exe_line("relative".as_ref()).is_none());
        assert!(exe_line("/a\nb".as_ref()).is_none());
        assert!(exe_line("/memfd:x (deleted)".as_ref()).is_none());
        assert_eq!(exe_line("/x/y".as_ref()).unwrap(), "exe /x/y\n");
    }
}
