//! End-to-end tests: build real packed executables with the real `wrapkit` binary and run them
//! as a user would, in fresh temporary directories.

mod support;

mod audit;
mod cache;
mod cli;
mod deploy;
mod deploy_boot;
mod deploy_oci;
mod deploy_portable;
mod differential;
mod docs;
mod elf_patch;
mod exec;
mod forge;
mod guards;
mod hostile;
mod inspect;
mod json;
mod local_attack;
mod lua;
mod node;
mod pack;
mod payload;
mod program;
mod python;
mod selfcare;
mod snapshots;
mod strip;
mod tcl;
