//! Recipes: each adds entries to a [`Plan`](crate::plan::Plan) and may set its run spec; none
//! writes anything. Today there is one, [`app`]: the app directory itself, at the archive's
//! root. The interpreter recipes (`--python`, `--node`, `--tcl`, `--program`: an interpreter or
//! program, its library closure, its library tree, generated launchers) take their places
//! beside it as `recipe/python.rs`, `recipe/node.rs`, `recipe/tcl.rs` and `recipe/program.rs`.

pub mod app;
pub mod program;
pub mod python;
