//! Links the guest at its guest-physical load address with the shared script.

use std::path::PathBuf;

fn main() {
    let script =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../common/guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
}
