//! glibc: which libraries are part of it (the target provides them in `--libc host` mode), and
//! its symbol versions (`GLIBC_2.34`), compared as numbers.

use std::fmt;

/// The libraries glibc itself installs (and its loader). A program's need for one of these is
/// met by the target's glibc, never bundled in `host` mode: mixing parts of two glibcs fails
/// (`GLIBC_PRIVATE` symbols).
pub fn is_glibc(soname: &str) -> bool {
    const SONAMES: &[&str] = &[
        "libc.so.6",
        "libm.so.6",
        "libmvec.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libresolv.so.2",
        "libutil.so.1",
        "libanl.so.1",
        "libnsl.so.1",
        "libBrokenLocale.so.1",
        "libthread_db.so.1",
        "libc_malloc_debug.so.0",
        "libmemusage.so",
        "libpcprofile.so",
        "libSegFault.so",
        "ld-linux-x86-64.so.2",
        "ld-linux.so.2",
    ];
    SONAMES.contains(&soname) || soname.starts_with("libnss_")
}

/// A glibc symbol version, `2.34` or `2.3.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `2.34` / `2.3.4`; `None` for anything else (`GLIBC_PRIVATE`).
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = match parts.next() {
            None => 0,
            Some(p) => p?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Version(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.2 == 0 {
            write!(f, "GLIBC_{}.{}", self.0, self.1)
        } else {
            write!(f, "GLIBC_{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("2.34") > v("2.4"));
        assert!(v("2.3.4") > v("2.3"));
        assert_eq!(v("2.17").to_string(), "GLIBC_2.17");
        assert_eq!(v("2.3.4").to_string(), "GLIBC_2.3.4");
        assert_eq!(Version::parse("PRIVATE"), None);
        assert!(is_glibc("libc.so.6") && is_glibc("libnss_files.so.2"));
        assert!(!is_glibc("libz.so.1") && !is_glibc("libstdc++.so.6"));
    }
}
