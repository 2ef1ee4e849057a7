//! Zip records: the local file header, the central directory header, the zip64 end record and
//! locator, and the end-of-central-directory record (APPNOTE.TXT 6.3, sections 4.3 and 4.5).
//!
//! Encoding is exact and deterministic; decoding checks every length against the bytes it has
//! before using it and never allocates more than the record it reads.

use super::FormatError;

pub const LOCAL_SIG: u32 = 0x0403_4b50;
pub const CENTRAL_SIG: u32 = 0x0201_4b50;
pub const EOCD_SIG: u32 = 0x0605_4b50;
pub const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;

pub const LOCAL_LEN: usize = 30;
pub const CENTRAL_LEN: usize = 46;
pub const EOCD_LEN: usize = 22;
pub const ZIP64_EOCD_LEN: usize = 56;
pub const ZIP64_LOCATOR_LEN: usize = 20;

/// Extra-field id of the zip64 extended information.
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// "Version made by": Unix (3) and APPNOTE 6.3.
pub const MADE_BY_UNIX: u16 = (3 << 8) | 63;
/// The newest "version needed to extract" a reader here handles: 4.5 (zip64). Anything newer
/// asks for features (strong encryption, other methods) no reader here has.
pub const MAX_VERSION_NEEDED: u16 = 45;
/// General-purpose flag: the name is UTF-8.
pub const FLAG_UTF8: u16 = 1 << 11;
/// General-purpose flag: the entry is encrypted.
pub const FLAG_ENCRYPTED: u16 = 1;
/// General-purpose flag: sizes and CRC follow the data in a data descriptor.
pub const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;

const U32_MAX: u64 = u32::MAX as u64;

/// A little-endian cursor over a byte slice that reports truncation instead of panicking.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The fields shared by local and central headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFields {
    pub flags: u16,
    pub method: u16,
    pub dos_time: u16,
    pub dos_date: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub size: u64,
}

impl HeaderFields {
    fn needs_zip64_sizes(&self) -> bool {
        self.size >= U32_MAX || self.compressed_size >= U32_MAX
    }

    fn version_needed(&self, zip64: bool) -> u16 {
        match (zip64, self.method) {
            (true, _) => 45,
            (false, 8) => 20,
            _ => 10,
        }
    }
}

/// Encodes a local file header. Sizes that do not fit in 32 bits go to a zip64 extra field, and
/// then both do (APPNOTE 4.5.3).
pub fn encode_local(name: &str, f: &HeaderFields) -> Vec<u8> {
    let zip64 = f.needs_zip64_sizes();
    let mut extra = Vec::new();
    if zip64 {
        extra.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
        extra.extend_from_slice(&16u16.to_le_bytes());
        extra.extend_from_slice(&f.size.to_le_bytes());
        extra.extend_from_slice(&f.compressed_size.to_le_bytes());
    }
    let (csize, size) = if zip64 {
        (u32::MAX, u32::MAX)
    } else {
        (f.compressed_size as u32, f.size as u32)
    };
    let mut out = Vec::with_capacity(LOCAL_LEN + name.len() + extra.len());
    out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
    out.extend_from_slice(&f.version_needed(zip64).to_le_bytes());
    out.extend_from_slice(&f.flags.to_le_bytes());
    out.extend_from_slice(&f.method.to_le_bytes());
    out.extend_from_slice(&f.dos_time.to_le_bytes());
    out.extend_from_slice(&f.dos_date.to_le_bytes());
    out.extend_from_slice(&f.crc32.to_le_bytes());
    out.extend_from_slice(&csize.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// Encodes a central directory header.
pub fn encode_central(name: &str, f: &HeaderFields, external_attrs: u32, offset: u64) -> Vec<u8> {
    let mut extra = Vec::new();
    let mut field = Vec::new();
    if f.size >= U32_MAX {
        field.extend_from_slice(&f.size.to_le_bytes());
    }
    if f.compressed_size >= U32_MAX {
        field.extend_from_slice(&f.compressed_size.to_le_bytes());
    }
    if offset >= U32_MAX {
        field.extend_from_slice(&offset.to_le_bytes());
    }
    let zip64 = !field.is_empty();
    if zip64 {
        extra.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
        extra.extend_from_slice(&(field.len() as u16).to_le_bytes());
        extra.extend_from_slice(&field);
    }
    let clamp = |v: u64| v.min(U32_MAX) as u32;
    let mut out = Vec::with_capacity(CENTRAL_LEN + name.len() + extra.len());
    out.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
    out.extend_from_slice(&MADE_BY_UNIX.to_le_bytes());
    out.extend_from_slice(&f.version_needed(zip64).to_le_bytes());
    out.extend_from_slice(&f.flags.to_le_bytes());
    out.extend_from_slice(&f.method.to_le_bytes());
    out.extend_from_slice(&f.dos_time.to_le_bytes());
    out.extend_from_slice(&f.dos_date.to_le_bytes());
    out.extend_from_slice(&f.crc32.to_le_bytes());
    out.extend_from_slice(&clamp(f.compressed_size).to_le_bytes());
    out.extend_from_slice(&clamp(f.size).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.extend_from_slice(&0u16.to_le_bytes()); // disk number start
    out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    out.extend_from_slice(&external_attrs.to_le_bytes());
    out.extend_from_slice(&clamp(offset).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&extra);
    out
}

/// The end of the central directory, already resolved through zip64 when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralEnd {
    pub entries: u64,
    pub cd_size: u64,
    pub cd_offset: u64,
}

impl CentralEnd {
    pub fn needs_zip64(&self) -> bool {
        self.entries >= 0xffff || self.cd_size >= U32_MAX || self.cd_offset >= U32_MAX
    }
}

/// Encodes the end records: the zip64 end record and locator when needed, then the classic
/// end-of-central-directory record with `comment`. `zip64_at` is the zip offset where these
/// bytes will start.
pub fn encode_end(end: &CentralEnd, zip64_at: u64, comment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let zip64 = end.needs_zip64();
    if zip64 {
        out.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&((ZIP64_EOCD_LEN - 12) as u64).to_le_bytes());
        out.extend_from_slice(&MADE_BY_UNIX.to_le_bytes());
        out.extend_from_slice(&45u16.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // this disk
        out.extend_from_slice(&0u32.to_le_bytes()); // disk with the central directory
        out.extend_from_slice(&end.entries.to_le_bytes());
        out.extend_from_slice(&end.entries.to_le_bytes());
        out.extend_from_slice(&end.cd_size.to_le_bytes());
        out.extend_from_slice(&end.cd_offset.to_le_bytes());
        out.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&zip64_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // total disks
    }
    let entries16 = if zip64 { 0xffff } else { end.entries as u16 };
    let clamp = |v: u64| if zip64 { u32::MAX } else { v as u32 };
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&entries16.to_le_bytes());
    out.extend_from_slice(&entries16.to_le_bytes());
    out.extend_from_slice(&clamp(end.cd_size).to_le_bytes());
    out.extend_from_slice(&clamp(end.cd_offset).to_le_bytes());
    out.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    out.extend_from_slice(comment);
    out
}

/// A decoded end-of-central-directory record (the classic one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eocd {
    pub disk: u16,
    pub cd_disk: u16,
    pub entries_disk: u16,
    pub entries: u16,
    pub cd_size: u32,
    pub cd_offset: u32,
    pub comment_len: u16,
}

impl Eocd {
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        if r.u32()? != EOCD_SIG {
            return None;
        }
        Some(Eocd {
            disk: r.u16()?,
            cd_disk: r.u16()?,
            entries_disk: r.u16()?,
            entries: r.u16()?,
            cd_size: r.u32()?,
            cd_offset: r.u32()?,
            comment_len: r.u16()?,
        })
    }

    /// Whether any field is saturated, meaning the real value lives in the zip64 record.
    pub fn defers_to_zip64(&self) -> bool {
        self.entries == 0xffff || self.cd_size == u32::MAX || self.cd_offset == u32::MAX
    }
}

/// Decodes the zip64 locator and end record that end just before the classic EOCD at
/// `eocd_pos` (file positions). Returns the resolved end and the file position of the zip64
/// record.
pub fn decode_zip64(bytes: &[u8], eocd_pos: u64) -> Result<(CentralEnd, u64), FormatError> {
    let locator_pos = eocd_pos
        .checked_sub(ZIP64_LOCATOR_LEN as u64)
        .ok_or_else(|| FormatError::malformed("zip64 locator", 0, "the file is too short"))?;
    let bad_locator = |reason: &str| FormatError::malformed("zip64 locator", locator_pos, reason);
    let loc =
        slice(bytes, locator_pos, ZIP64_LOCATOR_LEN).ok_or_else(|| bad_locator("truncated"))?;
    let mut r = Reader::new(loc);
    if r.u32() != Some(ZIP64_LOCATOR_SIG) {
        return Err(bad_locator("signature not found"));
    }
    let (disk, _offset, disks) = (r.u32(), r.u64(), r.u32());
    if disk != Some(0) || disks != Some(1) {
        return Err(bad_locator("multi-disk archives are not supported"));
    }
    let rec_pos = locator_pos
        .checked_sub(ZIP64_EOCD_LEN as u64)
        .ok_or_else(|| bad_locator("no room for the zip64 end record"))?;
    let bad = |reason: &str| FormatError::malformed("zip64 end record", rec_pos, reason);
    let rec = slice(bytes, rec_pos, ZIP64_EOCD_LEN).ok_or_else(|| bad("truncated"))?;
    let mut r = Reader::new(rec);
    if r.u32() != Some(ZIP64_EOCD_SIG) {
        return Err(bad("signature not found"));
    }
    let len = r.u64();
    let _made_by = r.u16();
    let _needed = r.u16();
    let (disk, cd_disk) = (r.u32(), r.u32());
    let (entries_disk, entries, cd_size, cd_offset) = (r.u64(), r.u64(), r.u64(), r.u64());
    if len != Some((ZIP64_EOCD_LEN - 12) as u64) {
        return Err(bad("unexpected record length"));
    }
    if disk != Some(0) || cd_disk != Some(0) || entries_disk != entries {
        return Err(bad("multi-disk archives are not supported"));
    }
    match (entries, cd_size, cd_offset) {
        (Some(entries), Some(cd_size), Some(cd_offset)) => Ok((
            CentralEnd {
                entries,
                cd_size,
                cd_offset,
            },
            rec_pos,
        )),
        _ => Err(bad("truncated")),
    }
}

/// A decoded local file header. `data_pos` is the file position of the entry's data.
#[derive(Debug, Clone)]
pub struct LocalHeader<'a> {
    /// "Version needed to extract" (e.g. 20 for deflate, 45 for zip64).
    pub version_needed: u16,
    pub fields: HeaderFields,
    pub name: &'a [u8],
    pub data_pos: u64,
}

/// Decodes the local header at file position `pos`, resolving zip64 sizes.
pub fn decode_local(bytes: &[u8], pos: u64) -> Result<LocalHeader<'_>, FormatError> {
    let bad = |reason: &str| FormatError::malformed("local header", pos, reason);
    let fixed = slice(bytes, pos, LOCAL_LEN).ok_or_else(|| bad("it lies outside the file"))?;
    let mut r = Reader::new(fixed);
    if r.u32() != Some(LOCAL_SIG) {
        return Err(bad("signature not found"));
    }
    let version_needed = r.u16().unwrap_or(0);
    let (mut fields, name_len, extra_len) = read_fields(&mut r).ok_or_else(|| bad("truncated"))?;
    let var = slice(bytes, pos + LOCAL_LEN as u64, name_len + extra_len)
        .ok_or_else(|| bad("its name or extra field runs past the end of the file"))?;
    let (name, extra) = var.split_at(name_len);
    if fields.compressed_size == U32_MAX || fields.size == U32_MAX {
        let z = find_extra(extra, ZIP64_EXTRA_ID)
            .ok_or_else(|| bad("sizes defer to a zip64 field that is missing"))?;
        let mut r = Reader::new(z);
        fields.size = r.u64().ok_or_else(|| bad("zip64 field too short"))?;
        fields.compressed_size = r.u64().ok_or_else(|| bad("zip64 field too short"))?;
    }
    Ok(LocalHeader {
        version_needed,
        fields,
        name,
        data_pos: pos + (LOCAL_LEN + name_len + extra_len) as u64,
    })
}

/// A decoded central directory header.
#[derive(Debug, Clone)]
pub struct CentralHeader<'a> {
    pub made_by: u16,
    /// "Version needed to extract".
    pub version_needed: u16,
    pub fields: HeaderFields,
    pub name: &'a [u8],
    pub disk_start: u16,
    pub external_attrs: u32,
    /// Zip offset of the local header.
    pub offset: u64,
    /// Length of the whole record, to step to the next.
    pub record_len: usize,
}

/// Decodes the central directory header at the start of `bytes`; `pos` is for messages.
pub fn decode_central(bytes: &[u8], pos: u64) -> Result<CentralHeader<'_>, FormatError> {
    let bad = |reason: &str| FormatError::malformed("central directory header", pos, reason);
    let mut r = Reader::new(bytes);
    if r.u32() != Some(CENTRAL_SIG) {
        return Err(bad("signature not found"));
    }
    let truncated = || bad("truncated");
    let made_by = r.u16().ok_or_else(truncated)?;
    let version_needed = r.u16().ok_or_else(truncated)?;
    let (mut fields, name_len, extra_len) = read_fields(&mut r).ok_or_else(truncated)?;
    let (csize32, size32) = (fields.compressed_size, fields.size);
    let comment_len = r.u16().ok_or_else(truncated)? as usize;
    let disk_start = r.u16().ok_or_else(truncated)?;
    let _internal = r.u16().ok_or_else(truncated)?;
    let external_attrs = r.u32().ok_or_else(truncated)?;
    let offset32 = r.u32().ok_or_else(truncated)?;
    let name = r.take(name_len).ok_or_else(truncated)?;
    let extra = r.take(extra_len).ok_or_else(truncated)?;
    r.take(comment_len).ok_or_else(truncated)?;
    let mut offset = offset32 as u64;
    if size32 == U32_MAX || csize32 == U32_MAX || offset32 == u32::MAX {
        let z = find_extra(extra, ZIP64_EXTRA_ID)
            .ok_or_else(|| bad("values defer to a zip64 field that is missing"))?;
        let mut zr = Reader::new(z);
        let short = || bad("zip64 field too short");
        if size32 == U32_MAX {
            fields.size = zr.u64().ok_or_else(short)?;
        }
        if csize32 == U32_MAX {
            fields.compressed_size = zr.u64().ok_or_else(short)?;
        }
        if offset32 == u32::MAX {
            offset = zr.u64().ok_or_else(short)?;
        }
    }
    Ok(CentralHeader {
        made_by,
        version_needed,
        fields,
        name,
        disk_start,
        external_attrs,
        offset,
        record_len: CENTRAL_LEN + name_len + extra_len + comment_len,
    })
}

/// The fields local and central headers share, from `flags` to the extra field's length, in
/// that order; sizes as the 32-bit fields say (zip64 resolution is the caller's).
fn read_fields(r: &mut Reader<'_>) -> Option<(HeaderFields, usize, usize)> {
    let fields = HeaderFields {
        flags: r.u16()?,
        method: r.u16()?,
        dos_time: r.u16()?,
        dos_date: r.u16()?,
        crc32: r.u32()?,
        compressed_size: u64::from(r.u32()?),
        size: u64::from(r.u32()?),
    };
    Some((fields, usize::from(r.u16()?), usize::from(r.u16()?)))
}

fn find_extra(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let tag = u16::from_le_bytes([extra[0], extra[1]]);
        let len = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let body = extra.get(4..4 + len)?;
        if tag == id {
            return Some(body);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// `bytes[pos..pos + len]`, or `None` when any part lies outside.
pub fn slice(bytes: &[u8], pos: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(pos).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// MS-DOS date and time for a Unix timestamp, read as UTC and clamped to the range zip can
/// represent (1980-01-01 to 2107-12-31).
pub fn dos_datetime(unix: i64) -> (u16, u16) {
    const MIN: i64 = 315_532_800; // 1980-01-01T00:00:00Z
    const MAX: i64 = 4_354_819_198; // 2107-12-31T23:59:58Z
    let t = unix.clamp(MIN, MAX);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant), valid for the whole clamped range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let time = ((secs / 3600) << 11) | (((secs % 3600) / 60) << 5) | ((secs % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

/// The Unix timestamp (UTC) of an MS-DOS date and time; the inverse of [`dos_datetime`] for
/// the times it produces.
pub fn unix_from_dos(time: u16, date: u16) -> i64 {
    let (year, month, day) = (
        1980 + i64::from(date >> 9),
        i64::from((date >> 5) & 15),
        i64::from(date & 31),
    );
    let (h, m, s) = (
        i64::from(time >> 11),
        i64::from((time >> 5) & 63),
        i64::from(time & 31) * 2,
    );
    // Days-from-civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + m * 60 + s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_time_round_trips() {
        for t in [315_532_800, 1_614_834_368, 1_700_000_000, 4_354_819_198] {
            let (time, date) = dos_datetime(t);
            assert_eq!(unix_from_dos(time, date), t);
        }
    }

    #[test]
    fn dos_time_of_known_instants() {
        // 1980-01-01 00:00:00
        assert_eq!(dos_datetime(0), (0, (1 << 5) | 1));
        // 2021-03-04 05:06:08 UTC
        let (time, date) = dos_datetime(1_614_834_368);
        assert_eq!(date, ((2021 - 1980) << 9) | (3 << 5) | 4);
        assert_eq!(time, (5 << 11) | (6 << 5) | 4);
    }

    #[test]
    fn zip64_central_round_trip() {
        let f = HeaderFields {
            flags: 0,
            method: 0,
            dos_time: 1,
            dos_date: 2,
            crc32: 3,
            compressed_size: 5 << 32,
            size: 5 << 32,
        };
        let rec = encode_central("big", &f, 0o100644 << 16, 7 << 32);
        let h = decode_central(&rec, 0).unwrap();
        assert_eq!(h.fields, f);
        assert_eq!(h.offset, 7 << 32);
        assert_eq!(h.record_len, rec.len());
    }
}
