//! What an archive may hold: one set of limits, which the writer enforces (so `wrapkit pack`
//! can never write what a reader refuses) and every reader checks (before allocating anything
//! sized by what the archive declares). docs/format.md, "Limits", says the same for users.

use super::FormatError;

/// Limits on what an archive may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// App entries (files, directories, symlinks).
    pub max_entries: u64,
    /// Declared size of one entry.
    pub max_entry_size: u64,
    /// Declared size of all entries together.
    pub max_total_size: u64,
    /// Length of a symlink target.
    pub max_link_len: u64,
    /// Length of one entry name, in bytes.
    pub max_name_len: u64,
    /// Length of all entry names together, in bytes (the index addresses them with 32 bits).
    pub max_names_total: u64,
}

/// The limits every writer and reader applies.
pub const LIMITS: Limits = Limits {
    max_entries: 1 << 20,
    max_entry_size: 64 << 30,
    max_total_size: 256 << 30,
    max_link_len: 4096,
    max_name_len: super::path::MAX_NAME_LEN as u64,
    max_names_total: 1 << 30,
};

/// Running totals of what has been added, checked against [`Limits`] entry by entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub entries: u64,
    pub total_size: u64,
    pub names_total: u64,
}

impl Limits {
    /// Counts one more entry named `name` of `size` bytes (a file's contents, a symlink's
    /// target), refusing it if it would cross a limit.
    pub fn admit(
        &self,
        tally: &mut Tally,
        name: &str,
        is_link: bool,
        size: u64,
    ) -> Result<(), FormatError> {
        let over = |what: String| Err(FormatError::entry(name, what));
        if tally.entries + 1 > self.max_entries {
            return over(format!(
                "one entry more than the limit of {} entries",
                self.max_entries
            ));
        }
        if name.len() as u64 > self.max_name_len {
            return over(format!(
                "its name is {} bytes, over the limit of {}",
                name.len(),
                self.max_name_len
            ));
        }
        if is_link && size > self.max_link_len {
            return over(format!(
                "its symlink target is {size} bytes, over the limit of {}",
                self.max_link_len
            ));
        }
        if size > self.max_entry_size {
            return over(format!(
                "declares {size} bytes, over the limit of {} for one entry",
                self.max_entry_size
            ));
        }
        let total = tally.total_size.saturating_add(size);
        if !is_link && total > self.max_total_size {
            return over(format!(
                "it brings the entries to {total} bytes, over the limit of {} in all",
                self.max_total_size
            ));
        }
        let names = tally.names_total + name.len() as u64;
        if names > self.max_names_total {
            return over(format!(
                "it brings the names to {names} bytes, over the limit of {} in all",
                self.max_names_total
            ));
        }
        tally.entries += 1;
        tally.names_total = names;
        if !is_link {
            tally.total_size = total;
        }
        Ok(())
    }
}
