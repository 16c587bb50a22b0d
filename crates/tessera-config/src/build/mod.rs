//! Build-time side of the config: parse the TOML files, validate them, and
//! generate the Rust tables and linker-script values the kernel is built
//! with. Used by the repository's root `build.rs`; see `docs/CONFIG.md`.
//!
//! Everything works on strings ([`check_strs`]) so tests need no files;
//! [`load`] is the thin file-reading layer on top.

mod channel;
mod codegen;
mod dtb;
mod ivc_pci;
mod layout;
mod model;
mod parse;
mod plan;
mod pool;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_channel;
#[cfg(test)]
mod tests_ivc_pci;
#[cfg(test)]
mod tests_linux;
#[cfg(test)]
mod tests_pool;
#[cfg(test)]
mod tests_rpi4;
#[cfg(test)]
mod tests_spare;
#[cfg(test)]
mod x86_tests;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::MemRange;

pub use channel::{
    channel_bytes, channel_hpas, doorbell_lines, dt_channels, ivc_bytes, validate_channels, Access,
    ChannelSpec, MemberSpec, MAX_CHANNEL_NAME_LEN,
};
pub use codegen::{board_layout_ld, hex, system_rs, HYPERVISOR_IMAGE_OFFSET};
pub use dtb::{generate as generate_dtb, Chosen, DtChannel};
pub use ivc_pci::validate_ivc_pci;
pub use layout::{
    parse_image_header, place_linux, ImageHeader, KernelPageSize, LinuxPlacement, DTB_MAX,
    IMAGE_HEADER_LEN,
};
pub use model::{
    BoardSpec, DeviceSpec, KernelSpec, LinuxSpec, PassthroughSpec, SystemSpec, Trigger, VmSpec,
};
pub use parse::{board_path_of, parse_board, parse_system, resolve_board_extends};
pub use plan::{plan, Blob, Placed, Plan, Source, VmPlan, HEAP_MIN, HYP_CODE_RESERVE};
pub use pool::{pool_hpas, validate_pools, PoolMemberSpec, PoolSpec};
pub use validate::{validate_board, validate_system, Files, IPA_LIMIT, MAX_NAME_LEN};

/// The system config used when `TESSERA_CONFIG` is not set.
pub const DEFAULT_CONFIG: &str = "configs/qemu-virt-demo.toml";

/// One problem found in a config file. Displays as one line:
/// `error: <file>: <scope>: <field>: <message>` (empty parts left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File as shown to the user (relative to the repository when inside it).
    pub file: String,
    /// `board`, `vm "alpha"`, `vm "alpha" and vm "beta"`, or empty.
    pub scope: String,
    /// Field path, or `line L, column C` for TOML syntax errors.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// Builds an error; see the field docs.
    pub fn new(file: &str, scope: &str, field: String, message: String) -> Self {
        Self {
            file: file.to_owned(),
            scope: scope.to_owned(),
            field,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.file)?;
        for part in [&self.scope, &self.field] {
            if !part.is_empty() {
                write!(f, ": {part}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses and validates a system file and its board file given as strings.
/// Returns every error found: shape errors of both files first; value rules
/// run once a file has the right shape (the system rules need the board).
pub fn check_strs(
    system_file: &str,
    system_src: &str,
    board_file: &str,
    board_src: &str,
    files: Files<'_>,
) -> Result<(SystemSpec, BoardSpec), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let board = parse_board(board_file, board_src)
        .map_err(|e| errors.extend(e))
        .ok();
    let system = parse_system(system_file, system_src)
        .map_err(|e| errors.extend(e))
        .ok();
    if let Some(b) = &board {
        errors.extend(validate_board(board_file, b));
        if let Some(s) = &system {
            errors.extend(validate_system(system_file, s, b, files));
            errors.extend(validate_channels(system_file, s, b));
            errors.extend(validate_pools(system_file, s, b));
            errors.extend(validate_ivc_pci(system_file, s, b));
        }
    }
    match (system, board) {
        (Some(s), Some(b)) if errors.is_empty() => Ok((s, b)),
        _ => Err(errors),
    }
}

/// What to do about guest images that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// A missing image is an error (the bare-metal build).
    Require,
    /// A missing image becomes an empty slice (host builds and tests).
    AllowMissing,
}

/// A validated configuration, ready for code generation.
#[derive(Debug, Clone)]
pub struct Config {
    /// System file as shown in messages.
    pub system_file: String,
    /// Board file as shown in messages.
    pub board_file: String,
    /// The parsed system file.
    pub system: SystemSpec,
    /// The parsed board file.
    pub board: BoardSpec,
    /// Each VM's images, entry and x0, and the blobs to embed.
    pub plan: Plan,
    /// File stem of the system file (`qemu-virt-demo`).
    pub name: String,
}

impl Config {
    /// Text of `system_config.rs`; see [`system_rs`].
    pub fn system_rs(&self) -> String {
        system_rs(&self.board, &self.system, &self.plan, &self.sources())
    }

    /// The QEMU `-m` value this config needs (e.g. `1024M`): the board's RAM
    /// from its lowest to its highest byte, since the hypervisor refuses to
    /// boot on a machine that lacks any board RAM.
    pub fn qemu_memory(&self) -> String {
        let lo = self.board.memory.iter().map(|m| m.base).min().unwrap_or(0);
        let hi = self
            .board
            .memory
            .iter()
            .map(MemRange::end)
            .max()
            .unwrap_or(0);
        format!("{}M", (hi - lo).div_ceil(1 << 20))
    }

    /// Text of `board_layout.ld`; see [`board_layout_ld`].
    pub fn board_layout_ld(&self) -> String {
        board_layout_ld(&self.board, &self.board_file, ivc_bytes(&self.system))
    }

    fn sources(&self) -> String {
        format!("`{}` and `{}`", self.system_file, self.board_file)
    }
}

/// Outcome of [`load`]: the files it read (for `cargo:rerun-if-changed`,
/// given even when validation fails) and the result.
#[derive(Debug)]
pub struct Loaded {
    /// Every file the result depends on: system file, board file, images.
    pub inputs: Vec<PathBuf>,
    /// The validated config, or every error found.
    pub result: Result<Config, Vec<ConfigError>>,
}

/// Reads, parses and validates `config` (absolute, or relative to
/// `repo_root`), its board file (relative to `config`'s directory) and the
/// images (relative to `repo_root`).
pub fn load(config: &Path, repo_root: &Path, images: Images) -> Loaded {
    let system_path = repo_root.join(config);
    let system_file = shown(&system_path, repo_root);
    let mut inputs = vec![system_path.clone()];
    let fail = |inputs, field: &str, message: String| Loaded {
        inputs,
        result: Err(vec![ConfigError::new(
            &system_file,
            "",
            field.to_owned(),
            message,
        )]),
    };

    let system_src = match std::fs::read_to_string(&system_path) {
        Ok(s) => s,
        Err(e) => return fail(inputs, "", format!("cannot read the system config: {e}")),
    };
    let Some(board_rel) = board_path_of(&system_src) else {
        // Parse again only to report why (syntax, missing or mistyped `board`).
        let errors = match parse_system(&system_file, &system_src) {
            Err(errors) => errors,
            Ok(_) => Vec::new(),
        };
        return Loaded {
            inputs,
            result: Err(errors),
        };
    };
    let dir = system_path.parent().unwrap_or(repo_root);
    let board_path = dir.join(&board_rel);
    inputs.push(board_path.clone());
    let board_file = shown(&board_path, repo_root);
    let board_src = match std::fs::read_to_string(&board_path) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot read board file {}: {e}", board_path.display());
            return fail(inputs, "board", msg);
        }
    };
    // A board variant (`extends = "<file>"`) starts from a sibling board.
    let board_dir = board_path.parent().unwrap_or(dir).to_path_buf();
    let read_sibling = |name: &str| {
        std::fs::read_to_string(board_dir.join(name)).map_err(|e| {
            format!(
                "extends: cannot read {}: {e}",
                board_dir.join(name).display()
            )
        })
    };
    let board_src = match resolve_board_extends(&board_src, read_sibling) {
        Ok((merged, base)) => {
            if let Some(base) = base {
                inputs.push(board_dir.join(base));
            }
            merged
        }
        Err(msg) => return fail(inputs, "board", format!("{board_file}: {msg}")),
    };

    let image_path = |rel: &str| normalize(&repo_root.join(rel));
    let files = |rel: &str| -> Result<Option<Vec<u8>>, String> {
        let path = image_path(rel);
        match (std::fs::read(&path), images) {
            (Ok(bytes), _) => Ok(Some(bytes)),
            (Err(_), Images::AllowMissing) => Ok(None),
            (Err(e), Images::Require) => Err(format!(
                "cannot read {rel:?} ({}): {e}; {}",
                path.display(),
                how_to_make(rel)
            )),
        }
    };
    inputs.extend(image_inputs(&system_src, repo_root));
    let checked = check_strs(&system_file, &system_src, &board_file, &board_src, &files);
    let (system, board) = match checked {
        Err(errors) => {
            return Loaded {
                inputs,
                result: Err(errors),
            }
        }
        Ok(pair) => pair,
    };
    let plan = match plan(
        (&system_file, &board_file),
        &system,
        &board,
        &files,
        &image_path,
    ) {
        Ok(p) => p,
        Err(errors) => {
            return Loaded {
                inputs,
                result: Err(errors),
            }
        }
    };
    let name = system_path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Loaded {
        inputs,
        result: Ok(Config {
            system_file,
            board_file,
            system,
            board,
            plan,
            name,
        }),
    }
}

/// What to run to make a missing guest file.
fn how_to_make(rel: &str) -> &'static str {
    if rel.starts_with("build/linux/") {
        "fetch the Linux kernel and initramfs first (scripts/fetch-linux.sh; make does it)"
    } else if rel.starts_with("build/guests/") {
        "build the guest images first (make guests)"
    } else {
        "give an existing file (paths are relative to the repository root)"
    }
}

/// Guest file paths of a system file (which may not validate), best effort,
/// each once, so a build is re-run when one changes or appears.
fn image_inputs(system_src: &str, repo_root: &Path) -> Vec<PathBuf> {
    let Ok(root) = toml::from_str::<toml::Table>(system_src) else {
        return Vec::new();
    };
    let Some(vms) = root.get("vm").and_then(toml::Value::as_array) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = Vec::new();
    for kernel in vms.iter().filter_map(|vm| vm.get("kernel")) {
        for key in ["kernel_path", "initramfs_path", "dtb_path"] {
            if let Some(p) = kernel.get(key).and_then(toml::Value::as_str) {
                let path = normalize(&repo_root.join(p));
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// `path` relative to `root` when inside it, for short messages.
fn shown(path: &Path, root: &Path) -> String {
    let normal = normalize(path);
    normal
        .strip_prefix(normalize(root))
        .unwrap_or(&normal)
        .display()
        .to_string()
}

/// Removes `.` and `name/..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
