//! Compiles the system config into the hypervisor: reads the TOML file named
//! by `TESSERA_CONFIG` (default `configs/qemu-virt-demo.toml`), validates it
//! and its board file, and writes `$OUT_DIR/system_config.rs` (the `SYSTEM`
//! table, with every guest image embedded once) and `$OUT_DIR/board_layout.ld`
//! (where the image is linked); bare-metal builds also write the QEMU `-m`
//! the config needs to `build/<arch>/<config>/qemu-memory`.
//! See docs/CONFIG.md.

use std::env;
use std::path::{Path, PathBuf};
use std::process::exit;

use tessera_config::build::{load, Images, Source, DEFAULT_CONFIG};

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let bare_metal = target_os == "none";

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TESSERA_CONFIG");
    let config =
        env::var_os("TESSERA_CONFIG").map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from);

    // Host builds (unit tests of the kernel crate) run without guest images.
    let images = if bare_metal {
        Images::Require
    } else {
        Images::AllowMissing
    };
    let loaded = load(&config, &root, images);
    for input in &loaded.inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    let config = match loaded.result {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "error: {} problem(s) in the system config; nothing was generated",
                errors.len()
            );
            exit(1);
        }
    };

    write(&out.join("system_config.rs"), &config.system_rs());
    write(&out.join("board_layout.ld"), &config.board_layout_ld());
    if bare_metal {
        // QEMU's -m for this config, beside the image the Makefile makes
        // (build/<arch>/<config>/), so scripts can read it.
        let dir = root.join("build").join(&target_arch).join(&config.name);
        if std::fs::create_dir_all(&dir).is_ok() {
            write(
                &dir.join("qemu-memory"),
                &format!("{}\n", config.qemu_memory()),
            );
            // Each Linux VM's generated device tree, as the VM gets it: the
            // boot benchmark boots the same tree without the hypervisor.
            for (vm, plan) in config.system.vms.iter().zip(&config.plan.vms) {
                for image in plan.images.iter().filter(|i| i.name == "dtb") {
                    if let Some(Source::Bytes(bytes)) =
                        config.plan.blobs.get(image.blob).map(|b| &b.source)
                    {
                        let path = dir.join(format!("{}.dtb", vm.name));
                        if let Err(e) = std::fs::write(&path, bytes) {
                            eprintln!("error: cannot write {}: {e}", path.display());
                            exit(1);
                        }
                    }
                }
            }
        }
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-env=TESSERA_CONFIG_NAME={}", config.name);
    if bare_metal && (target_arch == "aarch64" || target_arch == "x86_64") {
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            root.join(format!("linker/{target_arch}.ld")).display()
        );
    }
    if bare_metal && target_arch == "x86_64" {
        println!("cargo:rerun-if-changed=boot/x86_64/entry.S");
    }
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("error: cannot write {}: {e}", path.display());
        exit(1);
    }
}
