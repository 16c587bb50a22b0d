//! Host tests of the Raspberry Pi 4 boards and their rules: board variants
//! (`extends`), RAM above 4 GiB, devices smaller than a page and the rule
//! that a VM is given a device only if its whole page is safe to give.

use std::path::Path;

use super::tests::{assert_error, repo_root};
use super::*;
use crate::{GicVersion, MemRange};

const GIB: u64 = 1 << 30;

fn load_repo(config: &str) -> Result<Config, Vec<String>> {
    load(Path::new(config), &repo_root(), Images::AllowMissing)
        .result
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

/// A system on `board` (a file under configs/boards/) whose one VM gets
/// `passthrough`, written next to the shipped boards so `board` resolves.
fn with_passthrough(board: &str, passthrough: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!(
        "tessera-rpi4-{}-{}",
        std::process::id(),
        passthrough.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sys = dir.join("sys.toml");
    let boards = repo_root().join("configs/boards");
    std::fs::write(
        &sys,
        format!(
            r#"board = "{}/{board}"
[[vm]]
[vm.base]
id = 0
name = "alpha"
phys_cpu_ids = [0]
[vm.kernel]
kernel_path = "build/guests/aarch64/testguest.bin"
kernel_load_addr = 0x2000_0000
entry_point = 0x2000_0000
[[vm.memory_regions]]
gpa = 0x2000_0000
size = 0x0200_0000
identity = true
[vm.devices]
passthrough_devices = [{passthrough}]
"#,
            boards.display()
        ),
    )
    .unwrap();
    let r = load(&sys, &repo_root(), Images::AllowMissing).result;
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_default_pi_config_is_valid() {
    let config = load_repo("configs/rpi4.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(config.board.name, "rpi4");
    assert_eq!(config.board.gic.version, GicVersion::V2);
    let p = config.board.bcm2711.expect("[bcm2711]");
    assert_eq!(p.pm.base, 0xfe10_0000);
    assert_eq!((p.uart_clock_hz, p.baud), (48_000_000, 115_200));
    // The console is UART0's 0x200 bytes, not a page.
    assert_eq!(
        config.board.console,
        MemRange {
            base: 0xfe20_1000,
            size: 0x200
        }
    );
    let rs = config.system_rs();
    assert!(
        rs.contains("bcm2711: Some(tessera_config::Bcm2711 {"),
        "{rs}"
    );
    // A sub-page board device is described to the kernel by its page.
    assert!(
        rs.contains(
            "name: \"uart2\", mmio: tessera_config::MemRange { base: 0xfe20_1000, size: 0x1000 }"
        ),
        "{rs}"
    );
}

#[test]
fn ram_variants_extend_the_1g_board_and_map_above_4_gib() {
    let expect: [(&str, usize, u64); 3] = [
        ("rpi4-2g", 2, 0x8000_0000),
        ("rpi4-4g", 2, 0xfc00_0000),
        ("rpi4-8g", 3, 0x2_0000_0000),
    ];
    let dir = std::env::temp_dir().join(format!("tessera-rpi4-variants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, banks, top) in expect {
        let sys = dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(repo_root().join("configs/rpi4.toml"))
            .unwrap()
            .replace(
                "board = \"boards/rpi4.toml\"",
                &format!(
                    "board = \"{}/configs/boards/{name}.toml\"",
                    repo_root().display()
                ),
            );
        std::fs::write(&sys, text).unwrap();
        let loaded = load(&sys, &repo_root(), Images::AllowMissing);
        let config = loaded.result.unwrap_or_else(|e| panic!("{name}: {:#?}", e));
        assert_eq!(config.board.name, name);
        assert_eq!(config.board.memory.len(), banks, "{name}");
        let end = config.board.memory.iter().map(MemRange::end).max();
        assert_eq!(end, Some(top), "{name}");
        // Everything else comes from rpi4.toml, which is an input too.
        assert_eq!(config.board.devices.len(), 10, "{name}");
        assert!(config.board.bcm2711.is_some(), "{name}");
        assert!(
            loaded
                .inputs
                .iter()
                .any(|p| p.ends_with("boards/rpi4.toml")),
            "{name}: {:?}",
            loaded.inputs
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let eight = [
        MemRange {
            base: 0,
            size: 0x3b40_0000,
        },
        MemRange {
            base: GIB,
            size: 0xbc00_0000,
        },
        MemRange {
            base: 4 * GIB,
            size: 4 * GIB,
        },
    ];
    assert!(eight.iter().all(|m| m.end() <= crate::EL2_RAM_LIMIT));
}

#[test]
fn extends_replaces_whole_keys_one_level_only() {
    let base = "name = \"a\"\ncpu_mpidrs = [0]\n[[memory]]\nbase = 0\nsize = 0x20_0000\n";
    let read = |n: &str| match n {
        "base.toml" => Ok(base.to_owned()),
        "deep.toml" => Ok(format!("extends = \"base.toml\"\n{base}")),
        _ => Err(format!("no {n}")),
    };
    let (merged, from) = resolve_board_extends(
        "extends = \"base.toml\"\nname = \"b\"\n[[memory]]\nbase = 0x4000_0000\nsize = 0x20_0000\n",
        read,
    )
    .unwrap();
    assert_eq!(from.as_deref(), Some("base.toml"));
    let t: toml::Table = toml::from_str(&merged).unwrap();
    assert_eq!(t["name"].as_str(), Some("b"));
    assert_eq!(t["cpu_mpidrs"].as_array().map(Vec::len), Some(1));
    let mem = t["memory"].as_array().unwrap();
    assert_eq!(mem.len(), 1, "arrays are replaced, not appended");
    assert_eq!(mem[0]["base"].as_integer(), Some(0x4000_0000));
    assert!(!t.contains_key("extends"));

    let (same, none) = resolve_board_extends("name = \"x\"\n", read).unwrap();
    assert_eq!((same.as_str(), none), ("name = \"x\"\n", None));
    let err = resolve_board_extends("extends = \"deep.toml\"\n", read).unwrap_err();
    assert!(err.contains("one level only"), "{err}");
    let err = resolve_board_extends("extends = \"gone.toml\"\n", read).unwrap_err();
    assert!(err.contains("no gone.toml"), "{err}");
    let err = resolve_board_extends("extends = 3\n", read).unwrap_err();
    assert!(err.contains("expected a file name"), "{err}");
}

#[test]
fn a_device_that_shares_its_page_is_not_given_and_the_build_says_why() {
    // UART2 is in the page of the hypervisor console (UART0).
    let e = with_passthrough("rpi4.toml", "{ name = \"uart2\" }");
    assert_error(
        &e,
        "devices.passthrough_devices[0].name: \"uart2\" [0xfe201400, 0xfe201600) shares its 4 KiB page \
         [0xfe201000, 0xfe202000) with device \"uart3\" [0xfe201600, 0xfe201800), device \"uart4\" \
         [0xfe201800, 0xfe201a00), device \"uart5\" [0xfe201a00, 0xfe201c00), the hypervisor console \
         [0xfe201000, 0xfe201200): a VM is given whole pages, so it would reach those too; no VM can \
         be given \"uart2\"",
    );
    // The mini UART shares the AUX page with SPI1/SPI2 and the enables.
    let e = with_passthrough("rpi4.toml", "{ name = \"miniuart\" }");
    assert_error(
        &e,
        "with device \"aux\" [0xfe215000, 0xfe215008), device \"spi1\"",
    );
    // A device alone in its page is given (emmc2 is a DMA master: the VM
    // is identity-mapped).
    let e = with_passthrough("rpi4.toml", "{ name = \"i2c1\" }, { name = \"emmc2\" }");
    assert!(e.is_empty(), "{e:#?}");
}

#[test]
fn hypervisor_pages_and_sub_page_registers_are_checked() {
    let board = |extra: &str| {
        format!(
            "name = \"p\"\ncpu_mpidrs = [0]\n[[memory]]\nbase = 0\nsize = 0x4000_0000\n\
             [hypervisor]\nbase = 0\nsize = 0x0400_0000\n[console]\nbase = 0xfe20_1000\nsize = 0x200\n\
             [gic]\nversion = 2\ngicd_base = 0xff84_1000\ngicc_base = 0xff84_2000\n\
             gich_base = 0xff84_4000\ngicv_base = 0xff84_6000\n{extra}"
        )
    };
    let errors = |src: &str| -> Vec<String> {
        match parse_board("b.toml", src) {
            Ok(b) => validate_board("b.toml", &b)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    };
    assert!(errors(&board("")).is_empty(), "{:?}", errors(&board("")));
    let e = errors(&board(
        "[[devices]]\nname = \"d\"\nbase = 0xfe21_5042\nsize = 0x40\n",
    ));
    assert_error(&e, "devices[0].base: 0xfe215042 is not 4-byte aligned");
    let e = errors(&board(
        "[[devices]]\nname = \"d\"\nbase = 0xfe21_5f00\nsize = 0x200\n",
    ));
    assert_error(&e, "devices[0].size: 0x200: give a multiple of 4 KiB");
    let e = errors(&board(
        "[bcm2711]\npm_base = 0x0010_0000\ngpio_base = 0xfe20_0800\nuart_clock_hz = 48000000\nbaud = 0\n",
    ));
    assert_error(&e, "bcm2711.baud: 0 is not in 1..=4294967295");
    let e = errors(&board(
        "[bcm2711]\npm_base = 0x0010_0000\ngpio_base = 0xfe20_0800\nuart_clock_hz = 48000000\nbaud = 9600\n",
    ));
    assert_error(&e, "bcm2711.pm_base: [0x100000, 0x101000) overlaps RAM");
    assert_error(&e, "bcm2711.gpio_base: 0xfe200800 is not 4 KiB aligned");
}

#[test]
fn a_sub_page_device_alone_in_its_page_is_given_its_page() {
    use super::tests::{check, vm};
    let board = "name = \"p\"\ncpu_mpidrs = [0, 1]\n[[memory]]\nbase = 0\nsize = 0x8000_0000\n\
                 [hypervisor]\nbase = 0x4000_0000\nsize = 0x0400_0000\n\
                 [console]\nbase = 0xfe20_1000\nsize = 0x200\n\
                 [gic]\nversion = 2\ngicd_base = 0xff84_1000\ngicc_base = 0xff84_2000\n\
                 gich_base = 0xff84_4000\ngicv_base = 0xff84_6000\n\
                 [[devices]]\nname = \"lonely\"\nbase = 0xfe80_4040\nsize = 0x40\nirqs = [149]\n";
    let sys = format!(
        "board = \"b.toml\"\n{}passthrough_devices = [{{ name = \"lonely\" }}]\n",
        vm(0, "alpha", "[0]", 0x4800_0000)
    );
    let (sys, board) = check(&sys, board).unwrap_or_else(|e| panic!("{e:#?}"));
    let dev = &board.devices[0];
    assert!(validate::page_sharers(&board, dev).is_empty());
    assert_eq!(
        dev.window(),
        MemRange {
            base: 0xfe80_4000,
            size: 0x1000
        }
    );
    assert_eq!(sys.vms[0].passthrough_devices[0].name, "lonely");
}
