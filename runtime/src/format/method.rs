//! Compression methods: stored (0) and deflate (8), the two that every zip reader in the wild
//! (`unzip`, Python's `zipfile`, Windows Explorer) understands.
//!
//! Decompression is bounded: output stops at the declared size, and a declared size the method
//! could not produce from the compressed bytes is refused before anything is allocated.

use std::io::{Read, Write};

use super::FormatError;

pub const STORED: u16 = 0;
pub const DEFLATE: u16 = 8;

/// Deflate cannot expand data by more than about 1032:1 (a 258-byte match coded in one bit
/// or so); anything claiming more is a bomb or corrupt.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Human name of a method number.
pub fn name(method: u16) -> String {
    match method {
        STORED => "stored".into(),
        DEFLATE => "deflate".into(),
        12 => "bzip2 (12)".into(),
        14 => "lzma (14)".into(),
        93 => "zstd (93)".into(),
        99 => "AES encryption (99)".into(),
        m => format!("method {m}"),
    }
}

/// Deflate `data` at `level` (0-9). Deterministic for a given flate2 version.
pub fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Checks that `size` bytes could come out of `compressed_size` bytes with `method`.
pub fn check_sizes(
    name: &str,
    method: u16,
    compressed_size: u64,
    size: u64,
) -> Result<(), FormatError> {
    match method {
        STORED if compressed_size != size => Err(FormatError::entry(
            name,
            format!("stored entry has compressed size {compressed_size} but size {size}"),
        )),
        DEFLATE
            if size
                > compressed_size
                    .saturating_mul(DEFLATE_MAX_RATIO)
                    .saturating_add(64) =>
        {
            Err(FormatError::entry(
                name,
                format!(
                    "declares {size} bytes from {compressed_size} compressed bytes, more than deflate can produce"
                ),
            ))
        }
        STORED | DEFLATE => Ok(()),
        other => Err(FormatError::entry(
            name,
            format!("unsupported compression: {}", self::name(other)),
        )),
    }
}

/// Why [`decompress_to`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The entry itself is bad.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Writing the output failed.
    #[error(transparent)]
    Write(std::io::Error),
}

/// Entries up to this size are inflated in one call into a buffer of exactly their declared size;
/// larger ones into a buffer that grows with what the stream really produces, so a declared size
/// is never allocated on trust (deflate's ratio lets 30 MB declare 30 GiB).
pub const EXACT_BUFFER_MAX: u64 = 16 << 20;

/// Decompresses `data` to exactly `size` bytes and checks `crc32`. Memory follows the real
/// output: above [`EXACT_BUFFER_MAX`] the declared size is a limit, not an allocation.
pub fn decompress(
    name: &str,
    method: u16,
    data: &[u8],
    size: u64,
    crc32: u32,
) -> Result<Vec<u8>, FormatError> {
    let capacity = usize::try_from(size)
        .map_err(|_| FormatError::entry(name, "too large for this machine's memory"))?;
    check_sizes(name, method, data.len() as u64, size)?;
    if method == STORED {
        check_crc(name, data, crc32)?;
        return Ok(data.to_vec());
    }
    if size > EXACT_BUFFER_MAX {
        let mut out = Vec::new();
        return match decompress_to(name, method, data, size, crc32, &mut out) {
            Ok(()) => Ok(out),
            Err(CopyError::Format(e)) => Err(e),
            Err(CopyError::Write(e)) => Err(FormatError::entry(name, e.to_string())),
        };
    }
    // Inflate in one call straight into a buffer of exactly the declared size: no stream
    // buffers, no dictionary (the output is the window). This is what a start-up pays per
    // deflated module, so it matters.
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress as inflate, inflate_flags};
    let mut out = vec![0u8; capacity];
    let mut state = Box::<DecompressorOxide>::default();
    let (status, _, written) = inflate(
        &mut state,
        data,
        &mut out,
        0,
        inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    match status {
        TINFLStatus::Done if written == capacity => {}
        TINFLStatus::Done => {
            return Err(FormatError::entry(
                name,
                format!("inflates to {written} bytes, but declares {size}"),
            ));
        }
        TINFLStatus::HasMoreOutput => {
            return Err(FormatError::entry(
                name,
                format!("inflates to more than {size} bytes, its declared size"),
            ));
        }
        other => {
            return Err(FormatError::entry(
                name,
                format!("deflate data is corrupt ({other:?})"),
            ));
        }
    }
    check_crc(name, &out, crc32)?;
    Ok(out)
}

/// Streams the decompressed entry into `out`, stopping at the declared `size` (an entry that
/// inflates further is an error, not a larger file) and checking `crc32` at the end. On error,
/// `out` holds a prefix of the data: the caller discards it.
pub fn decompress_to<W: Write>(
    name: &str,
    method: u16,
    data: &[u8],
    size: u64,
    crc32: u32,
    out: &mut W,
) -> Result<(), CopyError> {
    check_sizes(name, method, data.len() as u64, size)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut written = 0u64;
    let mut emit = |chunk: &[u8], written: &mut u64| -> Result<(), CopyError> {
        hasher.update(chunk);
        *written += chunk.len() as u64;
        out.write_all(chunk).map_err(CopyError::Write)
    };
    if method == STORED {
        for chunk in data.chunks(1 << 20) {
            emit(chunk, &mut written)?;
        }
    } else {
        let mut dec = flate2::read::DeflateDecoder::new(data);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = dec
                .read(&mut buf)
                .map_err(|e| FormatError::entry(name, format!("deflate data is corrupt: {e}")))?;
            if n == 0 {
                break;
            }
            if written + n as u64 > size {
                return Err(FormatError::entry(
                    name,
                    format!("inflates to more than {size} bytes, its declared size"),
                )
                .into());
            }
            emit(&buf[..n], &mut written)?;
        }
    }
    if written != size {
        return Err(FormatError::entry(
            name,
            format!("inflates to {written} bytes, but declares {size}"),
        )
        .into());
    }
    let got = hasher.finalize();
    if got != crc32 {
        return Err(FormatError::entry(
            name,
            format!("CRC-32 mismatch: the data has {got:08x}, the header says {crc32:08x}"),
        )
        .into());
    }
    Ok(())
}

/// Checks the CRC-32 of a whole entry.
pub fn check_crc(name: &str, data: &[u8], crc32: u32) -> Result<(), FormatError> {
    let got = crc32fast::hash(data);
    if got != crc32 {
        return Err(FormatError::entry(
            name,
            format!("CRC-32 mismatch: the data has {got:08x}, the header says {crc32:08x}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_round_trip_and_bounds() {
        let data = b"hello hello hello hello".repeat(100);
        let z = deflate(&data, 6);
        let crc = crc32fast::hash(&data);
        assert_eq!(
            decompress("x", DEFLATE, &z, data.len() as u64, crc).unwrap(),
            data
        );
        // Declaring fewer bytes than the stream holds stops at the declared size.
        let err = decompress("x", DEFLATE, &z, 10, crc)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 10"), "{err}");
        // A wrong CRC is caught.
        assert!(decompress("x", DEFLATE, &z, data.len() as u64, crc ^ 1).is_err());
        // An impossible ratio is refused up front.
        assert!(decompress("x", DEFLATE, &z[..2], 1 << 40, crc).is_err());
    }

    #[test]
    fn a_huge_declared_size_is_a_limit_not_an_allocation() {
        // A real stream of a few bytes, then junk: the ratio allows 30 GiB from 31.2 MB.
        let mut z = deflate(b"tiny", 6);
        let size = 30u64 << 30;
        z.resize((size / DEFLATE_MAX_RATIO + 1) as usize, 0);
        let err = decompress("big", DEFLATE, &z, size, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inflates to 4 bytes, but declares 32212254720"),
            "{err}"
        );
        // Above the threshold, a true entry still round-trips, and one inflating further stops.
        let data = vec![7u8; (EXACT_BUFFER_MAX + 5) as usize];
        let z = deflate(&data, 1);
        let crc = crc32fast::hash(&data);
        assert_eq!(
            decompress("x", DEFLATE, &z, data.len() as u64, crc).unwrap(),
            data
        );
        let err = decompress("x", DEFLATE, &z, EXACT_BUFFER_MAX + 1, crc)
            .unwrap_err()
            .to_string();
        assert!(err.contains("inflates to more than"), "{err}");
    }
}
