//! Build script: for targets without an OS, hands the firmware
//! `cortex-m-rt`'s linker script (`link.x`) and a memory layout as
//! `memory.x`: `layout/stm32f469xg.x`, or `layout/qemu-mps2-an386.x` with
//! the `qemu` feature. (No `memory.x` in the crate's root: the linker would
//! find it there first, whatever the feature.)
//! Done here rather than in `.cargo/config.toml` because CI sets
//! `RUSTFLAGS`, which replaces any `rustflags` a config file gives.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=layout");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let layout =
        if env::var_os("CARGO_FEATURE_QEMU").is_some() { "layout/qemu-mps2-an386.x" } else { "layout/stm32f469xg.x" };
    fs::copy(layout, out.join("memory.x")).expect("copy the memory layout to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
