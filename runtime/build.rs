//! Precompiles `src/lua/prelude.lua` to Lua bytecode, so that starting a packed Lua app does not
//! parse it (parsing was half of a hello-world's instructions). The bytecode is only usable by
//! the same Lua version on the same kind of machine: when cross-compiling, or without the `lua`
//! feature, an empty file is written and the runtime compiles the source instead (it also falls
//! back to the source if the bytecode is ever refused).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/lua/prelude.lua");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("prelude.luac");
    std::fs::write(&out, bytecode()).expect("cannot write the prelude bytecode");
}

#[cfg(feature = "lua")]
fn bytecode() -> Vec<u8> {
    if std::env::var("TARGET").ok() != std::env::var("HOST").ok() {
        return Vec::new();
    }
    let source = std::fs::read_to_string("src/lua/prelude.lua").expect("the prelude exists");
    let lua = mlua::Lua::new();
    let function = lua
        .load(&source)
        .set_name("=[wrapkit]")
        .into_function()
        .unwrap_or_else(|e| panic!("src/lua/prelude.lua does not compile: {e}"));
    // Keep line information: tracebacks through the prelude (dofile, require) name its lines.
    function.dump(false)
}

#[cfg(not(feature = "lua"))]
fn bytecode() -> Vec<u8> {
    Vec::new()
}
