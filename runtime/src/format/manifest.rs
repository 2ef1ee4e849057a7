//! The manifest, `.wrapkit/manifest.json`: what the packed executable is and what it runs.
//!
//! ```json
//! {"format":1,"name":"hello","version":"0.1.0","packer":"wrapkit 0.1.0",
//!  "stub":{"size":2051744,"blake3":"…"},"run":{"mode":"lua","entry":"main.lua"}}
//! ```
//!
//! Unknown fields are ignored (a newer packer may add some); an unknown run mode is an error,
//! because running something other than what was asked is worse than not running.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::FormatError;
use super::layer::Layer;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Payload format version; equal to the trailer's.
    pub format: u32,
    /// The app's name.
    pub name: String,
    /// The app's version, as the user wrote it.
    pub version: String,
    /// The packer that wrote this payload, e.g. `wrapkit 0.1.0`.
    pub packer: String,
    /// The stub this payload was written behind, so `verify` can tell a damaged stub from a
    /// damaged payload (the trailer's digest covers only the archive).
    pub stub: StubInfo,
    /// What to run.
    pub run: Run,
    /// Programs with their libraries, each materialised into a shared tree of its own
    /// ([`super::layer`]); absent in Lua apps and plain exec apps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StubInfo {
    pub size: u64,
    /// BLAKE3 of the stub's bytes, lowercase hex.
    pub blake3: String,
}

impl StubInfo {
    pub fn of(stub: &[u8]) -> Self {
        StubInfo {
            size: stub.len() as u64,
            blake3: blake3::hash(stub).to_hex().to_string(),
        }
    }
}

/// How the app runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Run {
    /// In-process, with the embedded Lua 5.4: `entry` is an archive path.
    Lua { entry: String },
    /// A program inside the archive, run from the materialised cache (docs/cache.md).
    /// `argv[0]` is an archive path; the other arguments and the `env` values may contain the
    /// placeholders `{root}` (the materialised tree) and `{exe}` (the packed executable). The
    /// user's arguments are appended.
    Exec {
        argv: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// What the program gets as `argv[0]` (placeholders expand) instead of its own path:
        /// `{exe}` for an interpreter that names itself from it, as Tcl's `info
        /// nameofexecutable` does, so the app's name for itself is the packed file, as in a
        /// tclkit starpack. Absent in most manifests, and in every one older than it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        argv0: Option<String>,
    },
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        out.push(b'\n');
        out
    }

    /// Parses a manifest. A run mode this runtime does not know is told apart from a damaged
    /// manifest: the first needs a newer runtime, the second a new pack.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let mode = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|v| v.get("run")?.get("mode")?.as_str().map(str::to_owned));
            match mode {
                Some(mode) if mode != "lua" && mode != "exec" => {
                    FormatError::UnknownRunMode { mode }
                }
                _ => FormatError::Manifest(e.to_string()),
            }
        })
    }
}
