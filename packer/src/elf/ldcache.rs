//! `/etc/ld.so.cache`: where the loader finds a library by name when no search path of the
//! program's names it. The new format (`glibc-ld.so.cache1.1`, the only one glibc writes since
//! 2.32) is read; entries for x86-64 libc6 libraries without an hwcap subdirectory are kept.

use std::collections::HashMap;
use std::path::PathBuf;

const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 24;
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_X8664_LIB64: i32 = 0x0300;

/// soname → path, as the cache lists them (first entry wins, as in the loader).
#[derive(Debug, Default, Clone)]
pub struct LdCache {
    entries: HashMap<String, PathBuf>,
}

impl LdCache {
    /// Reads the host's cache; an empty one when there is none or it cannot be read (the
    /// default directories still apply).
    pub fn host() -> LdCache {
        std::fs::read("/etc/ld.so.cache")
            .ok()
            .and_then(|b| LdCache::parse(&b))
            .unwrap_or_default()
    }

    /// Parses a cache file; `None` if it is not in the new format or is damaged.
    pub fn parse(bytes: &[u8]) -> Option<LdCache> {
        let at = bytes.windows(MAGIC.len()).position(|w| w == MAGIC)?;
        let header = bytes.get(at..at + HEADER_LEN)?;
        let u32_at = |b: &[u8], i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let nlibs = u32_at(header, 20)? as usize;
        let table = bytes.get(at + HEADER_LEN..at + HEADER_LEN + nlibs.checked_mul(ENTRY_LEN)?)?;
        let string = |offset: u32| -> Option<&str> {
            let start = at.checked_add(offset as usize)?;
            let rest = bytes.get(start..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            std::str::from_utf8(&rest[..end]).ok()
        };
        let mut entries = HashMap::new();
        for e in table.chunks_exact(ENTRY_LEN) {
            let flags = u32_at(e, 0)? as i32;
            let hwcap = u64::from_le_bytes(e[16..24].try_into().ok()?);
            if flags & 0xff != FLAG_ELF_LIBC6 || flags & 0xff00 != FLAG_X8664_LIB64 || hwcap != 0 {
                continue;
            }
            let (Some(key), Some(value)) = (string(u32_at(e, 4)?), string(u32_at(e, 8)?)) else {
                continue;
            };
            entries
                .entry(key.to_owned())
                .or_insert_with(|| PathBuf::from(value));
        }
        Some(LdCache { entries })
    }

    pub fn get(&self, soname: &str) -> Option<&PathBuf> {
        self.entries.get(soname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_cache_knows_libc() {
        let cache = LdCache::host();
        let libc = cache
            .get("libc.so.6")
            .expect("libc.so.6 in /etc/ld.so.cache");
        assert!(libc.is_file(), "{}", libc.display());
        assert!(LdCache::parse(b"not a cache").is_none());
    }
}
