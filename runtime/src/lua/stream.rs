//! Archive entries as real C `FILE*` streams, wrapped in Lua's own file handle type.
//!
//! Lua's `io` library keeps files in a `luaL_Stream` userdata with the `"FILE*"` metatable. A
//! stream made here is exactly that, backed by `fopencookie(3)` reading from the mapping (stored
//! entries, zero-copy) or from an inflated buffer, so `io.type(f) == "file"` and every method
//! (`read`, `lines`, `seek`, `close`, `setvbuf`) works unchanged. This module holds all of the Lua
//! host's `unsafe`.

// The runtime's `unsafe` is confined to named modules (lib.rs lists them); this is one.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::ptr;

use mlua::ffi::{self, lua_State};

/// The bytes a stream serves.
pub enum Data {
    /// A stored entry, straight from the mapped executable.
    Mapped(&'static [u8]),
    /// An inflated entry.
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Mapped(b) => b,
            Data::Owned(v) => v,
        }
    }
}

struct Cookie {
    data: Data,
    pos: usize,
}

/// glibc's `cookie_io_functions_t` (stdio.h), which the libc crate does not export.
#[repr(C)]
struct CookieIoFunctions {
    read: Option<unsafe extern "C" fn(*mut c_void, *mut libc::c_char, usize) -> isize>,
    write: Option<unsafe extern "C" fn(*mut c_void, *const libc::c_char, usize) -> isize>,
    seek: Option<unsafe extern "C" fn(*mut c_void, *mut i64, c_int) -> c_int>,
    close: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
}

unsafe extern "C" {
    fn fopencookie(
        cookie: *mut c_void,
        mode: *const libc::c_char,
        funcs: CookieIoFunctions,
    ) -> *mut libc::FILE;
}

/// Lua 5.4's `luaL_Stream` (lauxlib.h), which mlua does not export.
#[repr(C)]
struct LuaStream {
    f: *mut libc::FILE,
    closef: Option<ffi::lua_CFunction>,
}

unsafe extern "C" fn cookie_read(
    cookie: *mut c_void,
    buf: *mut libc::c_char,
    size: usize,
) -> isize {
    // SAFETY: stdio passes back the cookie we gave fopencookie, which lives until cookie_close.
    let c = unsafe { &mut *(cookie as *mut Cookie) };
    let bytes = c.data.bytes();
    // The position may lie past the end after a seek: that reads as end of file.
    let n = size.min(bytes.len().saturating_sub(c.pos));
    if n == 0 {
        return 0;
    }
    // SAFETY: stdio guarantees `buf` has room for `size` bytes; `n > 0` means `c.pos < len`,
    // so the source range is in bounds.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr().add(c.pos), buf as *mut u8, n) };
    c.pos += n;
    n as isize
}

unsafe extern "C" fn cookie_seek(cookie: *mut c_void, offset: *mut i64, whence: c_int) -> c_int {
    // SAFETY: as in cookie_read; `offset` points to a valid i64 per fopencookie(3).
    let (c, off) = unsafe { (&mut *(cookie as *mut Cookie), &mut *offset) };
    let base = match whence {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => c.pos as i64,
        libc::SEEK_END => c.data.bytes().len() as i64,
        _ => return -1,
    };
    match base.checked_add(*off).map(usize::try_from) {
        Some(Ok(p)) => {
            // Seeking past the end is allowed, as on a real file: the position is kept (so
            // `f:seek("cur")` reports it) and reads there return end of file.
            c.pos = p;
            *off = p as i64;
            0
        }
        _ => {
            // SAFETY: errno is thread-local and always writable.
            unsafe { *libc::__errno_location() = libc::EINVAL };
            -1
        }
    }
}

unsafe extern "C" fn cookie_close(cookie: *mut c_void) -> c_int {
    // SAFETY: fclose calls this exactly once, with the pointer made by Box::into_raw below.
    drop(unsafe { Box::from_raw(cookie as *mut Cookie) });
    0
}

/// The `closef` of our streams: what Lua calls for `f:close()` and on collection.
unsafe extern "C-unwind" fn close_stream(state: *mut lua_State) -> c_int {
    // SAFETY: Lua calls closef with the stream userdata at index 1 (liolib.c aux_close).
    unsafe {
        let p = ffi::lua_touserdata(state, 1) as *mut LuaStream;
        let res = libc::fclose((*p).f);
        ffi::luaL_fileresult(state, c_int::from(res == 0), ptr::null())
    }
}

/// Pushes a Lua file handle serving `data` and returns it.
pub fn push(lua: &mlua::Lua, data: Data) -> mlua::Result<mlua::Value> {
    let cookie = Box::into_raw(Box::new(Cookie { data, pos: 0 }));
    let funcs = CookieIoFunctions {
        read: Some(cookie_read),
        write: None,
        seek: Some(cookie_seek),
        close: Some(cookie_close),
    };
    // SAFETY: exec_raw runs the closure in a protected call on a valid state. The closure holds
    // no value with a destructor, so a Lua error (out of memory) unwinding through it can only
    // leak the cookie. The userdata is fully initialised (closef = NULL means "closed" to Lua)
    // before the metatable makes it visible as a file.
    unsafe {
        lua.exec_raw::<mlua::Value>((), |state| {
            let p = ffi::lua_newuserdatauv(state, std::mem::size_of::<LuaStream>(), 0)
                as *mut LuaStream;
            (*p).f = ptr::null_mut();
            (*p).closef = None;
            ffi::luaL_setmetatable(state, c"FILE*".as_ptr());
            let f = fopencookie(cookie as *mut c_void, c"r".as_ptr(), funcs);
            if f.is_null() {
                drop(Box::from_raw(cookie));
                ffi::lua_pop(state, 1);
                ffi::lua_pushnil(state);
                return;
            }
            (*p).f = f;
            (*p).closef = Some(close_stream);
        })
    }
}
