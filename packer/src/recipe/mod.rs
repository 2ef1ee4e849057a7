//! Recipes: each adds entries to a [`Plan`](crate::plan::Plan) and may set its run spec; none
//! writes anything. [`app`] is the app directory itself, at the archive's root; [`program`] a
//! native program with its library closure as a layer; [`python`] a Python interpreter as such a
//! layer, with its stdlib and what the app needs to run isolated. `--node` and `--tcl` will
//! take their places beside them.

pub mod app;
pub mod program;
pub mod pyproject;
pub mod python;
