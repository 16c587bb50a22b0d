//! The compiled-in system configuration, generated and validated by `build.rs`
//! from the TOML files under `configs/`.

pub use tessera_config::*;

include!(concat!(env!("OUT_DIR"), "/system_config.rs"));
