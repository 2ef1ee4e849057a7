//! The trailer: our fixed-length zip comment, the first thing a reader looks at.
//!
//! ```text
//! WKPAYLOAD v01 start=<16 hex> index=<16 hex> manifest=<16 hex> blake3=<64 hex>\n
//! ```
//!
//! It is ASCII so `unzip -l` prints something readable, and fixed-length so the end-of-central-
//! directory record sits at a known distance from the end of the file: finding the payload never
//! scans. Offsets are zip offsets (the coordinates the central directory uses); readers add the
//! archive's displacement to get file positions.
//!
//! The magic is never stored as a literal: [`magic`] unmasks it at run time, so the stub's own
//! bytes cannot contain it (a stub that finds its own magic is a classic bug of this kind of
//! tool).

use super::{FORMAT_VERSION, FormatError};

/// Length of the trailer, which is the whole zip comment.
pub const TRAILER_LEN: usize = 158;

const MAGIC_LEN: usize = 9;
const MASK: u8 = 0x5a;
const MASKED_MAGIC: [u8; MAGIC_LEN] = [
    b'W' ^ MASK,
    b'K' ^ MASK,
    b'P' ^ MASK,
    b'A' ^ MASK,
    b'Y' ^ MASK,
    b'L' ^ MASK,
    b'O' ^ MASK,
    b'A' ^ MASK,
    b'D' ^ MASK,
];

/// The trailer magic. `black_box` keeps the compiler from folding the unmasked bytes into the
/// binary as a constant.
pub fn magic() -> [u8; MAGIC_LEN] {
    let mask = std::hint::black_box(MASK);
    MASKED_MAGIC.map(|b| b ^ mask)
}

/// The decoded trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    pub version: u32,
    /// Zip offset of the first byte of the archive (the first local header).
    pub start: u64,
    /// Zip offset of the local header of `.wrapkit/index`.
    pub index: u64,
    /// Zip offset of the local header of `.wrapkit/manifest.json`.
    pub manifest: u64,
    /// BLAKE3 of the archive bytes from `start` up to the end-of-central-directory record.
    pub digest: [u8; 32],
}

impl Trailer {
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let text = format!(
            "{} v{:02} start={:016x} index={:016x} manifest={:016x} blake3={}\n",
            String::from_utf8_lossy(&magic()),
            self.version,
            self.start,
            self.index,
            self.manifest,
            hex(&self.digest),
        );
        let mut out = [0u8; TRAILER_LEN];
        out.copy_from_slice(text.as_bytes());
        out
    }

    /// Decodes a comment. `offset` is only used in error messages.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Self, FormatError> {
        let bad = |reason| FormatError::BadTrailer { offset, reason };
        if bytes.len() != TRAILER_LEN || bytes[..MAGIC_LEN] != magic() {
            return Err(bad("it does not start with the wrapkit magic"));
        }
        if !bytes.is_ascii() {
            return Err(bad("it is not ASCII"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not ASCII"))?;
        let field = |at: usize, key: &str, len: usize| -> Result<&str, FormatError> {
            let end = at + key.len() + len;
            match text.get(at..end) {
                Some(s) if s.starts_with(key) => Ok(&s[key.len()..]),
                _ => Err(bad("a field is missing or out of place")),
            }
        };
        let version = field(9, " v", 2)?
            .parse::<u32>()
            .map_err(|_| bad("the version is not a number"))?;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let num = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad("an offset is not hex"));
        let start = num(field(13, " start=", 16)?)?;
        let index = num(field(36, " index=", 16)?)?;
        let manifest = num(field(59, " manifest=", 16)?)?;
        let digest_hex = field(85, " blake3=", 64)?;
        let mut digest = [0u8; 32];
        for (i, out) in digest.iter_mut().enumerate() {
            *out = u8::from_str_radix(&digest_hex[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("the digest is not hex"))?;
        }
        if &text[157..] != "\n" {
            return Err(bad("it does not end with a newline"));
        }
        Ok(Trailer {
            version,
            start,
            index,
            manifest,
            digest,
        })
    }
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trailer {
        Trailer {
            version: FORMAT_VERSION,
            start: 0x1234,
            index: 0xdead_beef,
            manifest: 0xffff_ffff_ffff,
            digest: [0xab; 32],
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(Trailer::decode(&t.encode(), 0).unwrap(), t);
    }

    #[test]
    fn rejects_a_newer_version() {
        let mut bytes = sample().encode();
        bytes[11] = b'0';
        bytes[12] = b'3';
        let err = Trailer::decode(&bytes, 7).unwrap_err();
        assert!(matches!(
            err,
            FormatError::UnsupportedVersion { found: 3, .. }
        ));
    }

    /// Found by the `archive` fuzz target: a multi-byte UTF-8 character straddling a field
    /// boundary made slicing panic.
    #[test]
    fn regression_non_ascii_trailer_does_not_panic() {
        let mut bytes = sample().encode();
        bytes[25] = 0xc7;
        bytes[26] = 0x9a;
        assert!(Trailer::decode(&bytes, 0).is_err());
    }

    #[test]
    fn rejects_every_single_byte_flip_in_the_fields() {
        let good = sample().encode();
        for i in 0..TRAILER_LEN {
            let mut bytes = good;
            bytes[i] = b'!';
            let decoded = Trailer::decode(&bytes, 0);
            assert!(decoded.is_err(), "flip at {i} accepted");
        }
    }
}
