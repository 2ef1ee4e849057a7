//! The command line. The doc comment on each field is its `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::CompressionSetting;

/// Turn an application directory into one self-contained executable.
#[derive(Debug, Parser)]
#[command(name = "wrapkit", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack DIR into one executable that runs its Lua entry script.
    Pack(PackArgs),
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The app directory (its `wrapkit.toml`, if any, is read).
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Where to write the executable (must be outside DIR).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// App name recorded in the manifest [default: the directory's name].
    #[arg(long)]
    pub name: Option<String>,

    /// App version recorded in the manifest [default: 0.0.0].
    #[arg(long, value_name = "VERSION")]
    pub app_version: Option<String>,

    /// Lua script to run, as a path inside DIR [default: main.lua].
    #[arg(long, value_name = "PATH")]
    pub entry: Option<String>,

    /// Pack only files matching this glob (repeatable; replaces the config's list).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Leave out paths matching this glob (repeatable; added to the config's list).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// How to compress file contents [default: auto].
    #[arg(long, value_enum)]
    pub compression: Option<CompressionSetting>,

    /// Pack what symlinks point to instead of the links themselves.
    #[arg(long)]
    pub follow_symlinks: bool,

    /// Runtime stub to put in front of the payload [default: the one built into wrapkit].
    /// A packed executable works too: its payload is replaced.
    #[arg(long, value_name = "FILE")]
    pub runtime: Option<PathBuf>,

    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}
