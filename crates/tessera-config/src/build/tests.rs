//! Host tests of parsing, validation and code generation. They work on
//! strings; the few that read `configs/` need no guest images.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::*;

pub(super) const SYS: &str = "configs/test.toml";
pub(super) const BRD: &str = "configs/boards/test.toml";

pub(super) const BOARD: &str = r#"
name = "qemu-virt"
cpu_mpidrs = [0x0, 0x1, 0x2, 0x3]
semihosting_exit = true

[[memory]]
base = 0x4000_0000
size = 0x4000_0000

[hypervisor]
base = 0x4000_0000
size = 0x0400_0000

[console]
base = 0x0900_0000
size = 0x1000

[gic]
version = 3
gicd_base = 0x0800_0000
gicr_base = 0x080A_0000

[[devices]]
name = "uart1"
base = 0x0904_0000
size = 0x1000
irqs = [40]

[[devices]]
name = "uart2"
base = 0x0905_0000
size = 0x1000
irqs = [41, 42]
"#;

/// A valid `[[vm]]` table.
pub(super) fn vm(id: u16, name: &str, cpus: &str, hpa: u64) -> String {
    format!(
        r#"
[[vm]]
[vm.base]
id = {id}
name = "{name}"
phys_cpu_ids = {cpus}

[vm.kernel]
kernel_path = "build/guests/aarch64/testguest.bin"
kernel_load_addr = 0x4000_0000
entry_point = 0x4000_0000

[[vm.memory_regions]]
gpa = 0x4000_0000
hpa = {hpa:#x}
size = 0x0200_0000

[vm.devices]
emu_devices = [{{ kind = "pl011", gpa = 0x0900_0000, size = 0x1000 }}]
"#
    )
}

pub(super) fn demo() -> String {
    format!(
        "board = \"boards/test.toml\"\n{}{}",
        vm(0, "alpha", "[0, 1]", 0x4400_0000),
        vm(1, "beta", "[2]", 0x4600_0000)
    )
}

/// A `[[vm]]` booting Linux from `build/linux/Image` with an initramfs;
/// `ram` is the body of its one memory region, `extra` more `[vm.kernel]`
/// lines.
pub(super) fn linux_vm(id: u16, name: &str, cpus: &str, ram: &str, extra: &str) -> String {
    format!(
        r#"
[[vm]]
[vm.base]
id = {id}
name = "{name}"
phys_cpu_ids = {cpus}

[vm.kernel]
kind = "linux"
kernel_path = "build/linux/Image"
initramfs_path = "build/linux/initramfs.cpio.gz"
bootargs = "console=ttyAMA0 tessera.name={name}"
{extra}

[[vm.memory_regions]]
{ram}

[vm.devices]
emu_devices = [{{ kind = "pl011", gpa = 0x0900_0000, size = 0x1000, irq = 33 }}]
"#
    )
}

/// An arm64 Image of `len` bytes with the given header fields.
pub(super) fn fake_image(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len.max(64)];
    v[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
    v[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
    v[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
    v[0x38..0x3c].copy_from_slice(b"ARM\x64");
    v
}

pub(super) fn small_images(_: &str) -> Result<Option<Vec<u8>>, String> {
    Ok(Some(vec![0; 4096]))
}

pub(super) fn check(sys: &str, board: &str) -> Result<(SystemSpec, BoardSpec), Vec<String>> {
    check_strs(SYS, sys, BRD, board, &small_images)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

/// Every error line for a system text (with the standard board).
pub(super) fn errors(sys: &str) -> Vec<String> {
    errors_with(sys, BOARD)
}

pub(super) fn errors_with(sys: &str, board: &str) -> Vec<String> {
    match check(sys, board) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

#[track_caller]
pub(super) fn assert_error(errors: &[String], needle: &str) {
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "no error contains {needle:?}; got:\n{}",
        errors.join("\n")
    );
}

/// The demo with the first occurrence of `from` replaced by `to`.
pub(super) fn demo_with(from: &str, to: &str) -> String {
    let d = demo();
    assert!(d.contains(from), "fixture has no {from:?}");
    d.replacen(from, to, 1)
}

pub(super) fn board_with(from: &str, to: &str) -> String {
    assert!(BOARD.contains(from), "board fixture has no {from:?}");
    BOARD.replacen(from, to, 1)
}

// --- Valid input ------------------------------------------------------------

#[test]
fn demo_is_valid() {
    let (sys, board) = check(&demo(), BOARD).expect("valid");
    assert_eq!(sys.vms.len(), 2);
    assert_eq!(sys.vms[0].name, "alpha");
    assert_eq!(sys.vms[0].phys_cpu_ids, vec![0, 1]);
    assert_eq!(sys.vms[1].memory_regions[0].hpa, 0x4600_0000);
    assert_eq!(sys.vms[0].on_unhandled, crate::UnhandledPolicy::InjectAbort);
    assert_eq!(board.cpu_mpidrs.len(), 4);
    assert_eq!(board.gic.gicr_or_gicc_base, 0x080A_0000);
    assert!(board.semihosting_exit);
}

#[test]
fn optional_fields_take_defaults() {
    let board = board_with("semihosting_exit = true\n", "");
    let (sys, board) = check(&demo(), &board).expect("valid");
    assert!(!board.semihosting_exit);
    assert_eq!(sys.vms[0].memory_regions[0].kind, crate::RegionKind::Ram);
}

#[test]
fn passthrough_and_policy_parse() {
    let sys = demo_with(
        "emu_devices = [",
        "passthrough_devices = [{ name = \"uart1\" }, { name = \"uart2\", gpa = 0x0a00_0000, irqs = [42] }]\nemu_devices = [",
    )
    .replacen("name = \"alpha\"", "name = \"alpha\"\non_unhandled = \"stop-vm\"", 1);
    let (sys, _) = check(&sys, BOARD).expect("valid");
    let pt = &sys.vms[0].passthrough_devices;
    assert_eq!(pt[0].gpa, None);
    assert_eq!(pt[1].irqs, Some(vec![42]));
    assert_eq!(sys.vms[0].on_unhandled, crate::UnhandledPolicy::StopVm);
}

#[test]
fn restart_policy_parses_and_unknown_policy_is_named() {
    let sys = demo().replacen(
        "name = \"alpha\"",
        "name = \"alpha\"\non_unhandled = \"restart-vm\"",
        1,
    );
    let (sys, _) = check(&sys, BOARD).expect("valid");
    assert_eq!(sys.vms[0].on_unhandled, crate::UnhandledPolicy::RestartVm);
    let bad = demo().replacen(
        "name = \"alpha\"",
        "name = \"alpha\"\non_unhandled = \"reboot\"",
        1,
    );
    let errors = check(&bad, BOARD).expect_err("unknown policy");
    let text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("on_unhandled") && text.contains("\"restart-vm\""),
        "{text}"
    );
}

#[test]
fn fault_policy_defaults_to_stop_parses_restart_and_names_an_unknown_one() {
    let (sys, _) = check(&demo(), BOARD).expect("valid");
    assert_eq!(sys.vms[0].on_fault, crate::FaultPolicy::StopVm);
    let restart = demo().replacen(
        "name = \"alpha\"",
        "name = \"alpha\"\non_fault = \"restart-vm\"",
        1,
    );
    let (sys, _) = check(&restart, BOARD).expect("valid");
    assert_eq!(sys.vms[0].on_fault, crate::FaultPolicy::RestartVm);
    let bad = demo().replacen(
        "name = \"alpha\"",
        "name = \"alpha\"\non_fault = \"inject-abort\"",
        1,
    );
    let text = check(&bad, BOARD)
        .expect_err("inject-abort is no fault policy")
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("vm.base.on_fault") && text.contains("\"restart-vm\""),
        "{text}"
    );
}

#[test]
fn pmu_grant_parses_defaults_off_and_is_generated() {
    let (sys, _) = check(&demo(), BOARD).expect("valid");
    assert!(!sys.vms[0].pmu, "no PMU unless granted");
    let granted = demo().replacen("name = \"alpha\"", "name = \"alpha\"\npmu = true", 1);
    let (sys, _) = check(&granted, BOARD).expect("valid");
    assert!(sys.vms[0].pmu);
    let bad = demo().replacen("name = \"alpha\"", "name = \"alpha\"\npmu = \"yes\"", 1);
    let errors = check(&bad, BOARD).expect_err("pmu must be a boolean");
    assert!(errors.iter().any(|e| e.to_string().contains("vm.base.pmu")));
}

#[test]
fn console_interrupt_is_optional_and_must_be_an_spi() {
    let (_, board) = check(&demo(), BOARD).expect("valid");
    assert_eq!(board.console_irq, None, "no interrupt: input is polled");
    let with_irq = board_with("size = 0x1000\n\n[gic]", "size = 0x1000\nirq = 33\n\n[gic]");
    let (_, board) = check(&demo(), &with_irq).expect("valid");
    assert_eq!(board.console_irq, Some(33));
    let ppi = board_with("size = 0x1000\n\n[gic]", "size = 0x1000\nirq = 27\n\n[gic]");
    let errors = errors_with(&demo(), &ppi);
    assert_error(&errors, "console.irq: 27 is not an SPI INTID (32..1019)");
}

// --- Rule 1: shape ------------------------------------------------------------

#[test]
fn syntax_error_names_the_line() {
    let e = errors(&demo_with("id = 1", "id = = 1"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("error: configs/test.toml: line 24, column"),
        "{e:?}"
    );
}

#[test]
fn unknown_field_gives_full_path_and_expected_names() {
    let e = errors(&demo_with("id = 1", "id = 1\ncpu_count = 2"));
    assert_error(
        &e,
        "error: configs/test.toml: vm \"beta\": vm.base.cpu_count: unknown field `cpu_count`, \
         expected one of `id`, `name`, `phys_cpu_ids`, `on_unhandled`",
    );
}

#[test]
fn unknown_fields_everywhere_are_reported() {
    let sys = demo_with("size = 0x0200_0000", "size = 0x0200_0000\nflags = 1")
        .replacen("board =", "colour = 1\nboard =", 1)
        .replacen("size = 0x1000 }", "size = 0x1000, irqq = 33 }", 1);
    let e = errors_with(&sys, &board_with("[gic]\n", "[gic]\nits = 1\n"));
    assert_error(&e, "configs/test.toml: colour: unknown field");
    assert_error(
        &e,
        "vm \"alpha\": vm.memory_regions[0].flags: unknown field",
    );
    assert_error(
        &e,
        "vm \"alpha\": vm.devices.emu_devices[0].irqq: unknown field",
    );
    assert_error(
        &e,
        "configs/boards/test.toml: board: gic.its: unknown field",
    );
}

#[test]
fn missing_required_fields() {
    let e = errors(&demo_with("entry_point = 0x4000_0000\n", ""));
    assert_error(
        &e,
        "vm \"alpha\": vm.kernel.entry_point: missing required field (expected an integer)",
    );
    let e = errors_with(&demo(), &board_with("name = \"qemu-virt\"\n", ""));
    assert_error(&e, "board: name: missing required field");
    let e = errors(&demo().replacen("board = \"boards/test.toml\"\n", "", 1));
    assert_error(
        &e,
        "error: configs/test.toml: board: missing required field",
    );
}

#[test]
fn wrong_types() {
    let e = errors(&demo_with(
        "phys_cpu_ids = [0, 1]",
        "phys_cpu_ids = [0, \"1\"]",
    ));
    assert_error(
        &e,
        "vm.base.phys_cpu_ids[1]: expected an integer, found string",
    );
    let e = errors(&demo_with("hpa = 0x44000000", "hpa = -4"));
    assert_error(&e, "vm.memory_regions[0].hpa: -4 is negative");
    let e = errors_with(
        &demo(),
        &board_with("semihosting_exit = true", "semihosting_exit = 1"),
    );
    assert_error(
        &e,
        "board: semihosting_exit: expected a boolean, found integer",
    );
    let e = errors(&demo_with("id = 0", "id = 70000"));
    assert_error(&e, "vm.base.id: 70000 does not fit a VM id");
}

#[test]
fn unknown_enum_values() {
    let e = errors(&demo_with("kind = \"pl011\"", "kind = \"16550\""));
    assert_error(
        &e,
        "devices.emu_devices[0].kind: unknown emulated device \"16550\"",
    );
    let sys = demo_with(
        "name = \"alpha\"",
        "name = \"alpha\"\non_unhandled = \"panic\"",
    );
    assert_error(
        &errors(&sys),
        "vm.base.on_unhandled: unknown policy \"panic\"",
    );
    let sys = demo_with("size = 0x0200_0000", "size = 0x0200_0000\nkind = \"rom\"");
    assert_error(
        &errors(&sys),
        "memory_regions[0].kind: unknown region kind \"rom\"",
    );
}

#[test]
fn vm_without_name_is_named_by_index() {
    let e = errors(&demo_with("name = \"beta\"\n", ""));
    assert_error(&e, "vm[1]: vm.base.name: missing required field");
}

// --- Rule 2: identity ---------------------------------------------------------

#[test]
fn vm_count_limits() {
    let e = errors("board = \"b\"\nvm = []\n");
    assert_error(&e, "vm: 0 VMs given, expected 1 to 8");
    let mut many = String::from("board = \"b\"\n");
    for i in 0..9u16 {
        many += &vm(
            i,
            &format!("v{i}"),
            &format!("[{}]", i % 4),
            0x4400_0000 + u64::from(i) * 0x0200_0000,
        );
    }
    assert_error(&errors(&many), "vm: 9 VMs given, expected 1 to 8");
}

#[test]
fn ids_unique_and_small() {
    let e = errors(&demo_with("id = 1", "id = 0"));
    assert_error(
        &e,
        "vm \"alpha\" and vm \"beta\": id: id 0 is given to both",
    );
    let e = errors(&demo_with("id = 1", "id = 8"));
    assert_error(&e, "vm \"beta\": id: 8 is too large (ids are 0 to 7)");
}

#[test]
fn names_checked() {
    let e = errors(&demo_with("\"beta\"", "\"alpha\""));
    assert_error(
        &e,
        "vm \"alpha\" and vm \"alpha\": name: name \"alpha\" is given to both",
    );
    for bad in ["Beta", "be ta", "a-very-long-name-x", "bé"] {
        let e = errors(&demo_with("\"beta\"", &format!("{bad:?}")));
        assert_error(&e, "name: ");
        assert_error(&e, "must be 1 to 15 characters of [a-z0-9_-]");
    }
    assert_error(
        &errors(&demo_with("\"beta\"", "\"\"")),
        "vm \"\": name: must not be empty",
    );
    assert!(errors(&demo_with("\"beta\"", "\"b_2-x\"")).is_empty());
}

// --- Rule 3: CPUs -------------------------------------------------------------

#[test]
fn cpus_checked() {
    let e = errors(&demo_with("phys_cpu_ids = [2]", "phys_cpu_ids = []"));
    assert_error(
        &e,
        "vm \"beta\": phys_cpu_ids: at least one CPU is required",
    );
    let e = errors(&demo_with("phys_cpu_ids = [2]", "phys_cpu_ids = [4]"));
    assert_error(
        &e,
        "vm \"beta\": phys_cpu_ids[0]: CPU 4 does not exist (board \"qemu-virt\" has 4 CPUs)",
    );
    let e = errors(&demo_with("phys_cpu_ids = [2]", "phys_cpu_ids = [2, 3, 2]"));
    assert_error(&e, "vm \"beta\": phys_cpu_ids[2]: CPU 2 is listed twice");
}

#[test]
fn shared_cpu_names_both_vms() {
    let e = errors(&demo_with("phys_cpu_ids = [2]", "phys_cpu_ids = [1]"));
    assert_eq!(
        e,
        vec!["error: configs/test.toml: vm \"alpha\" and vm \"beta\": phys_cpu_ids: CPU 1 is given to both"]
    );
}

// --- Rule 4: memory -----------------------------------------------------------

#[test]
fn misaligned_hpa_message() {
    let e = errors(&demo_with("hpa = 0x44000000", "hpa = 0x44000800"));
    assert_error(
        &e,
        "vm \"alpha\": memory_regions[0].hpa: 0x44000800 is not 4 KiB aligned",
    );
    let e = errors(&demo_with("size = 0x0200_0000", "size = 0x0200_0800"));
    assert_error(
        &e,
        "memory_regions[0].size: 0x2000800 is not a multiple of 4 KiB",
    );
    let e = errors(&demo_with("size = 0x0200_0000", "size = 0"));
    assert_error(&e, "memory_regions[0].size: size must be greater than 0");
}

#[test]
fn host_range_must_be_ram_and_not_the_hypervisor() {
    let e = errors(&demo_with("hpa = 0x44000000", "hpa = 0x7f000000"));
    assert_error(
        &e,
        "memory_regions[0]: host range [0x7f000000, 0x81000000) is not inside one board RAM bank",
    );
    let e = errors(&demo_with("hpa = 0x44000000", "hpa = 0x43000000"));
    assert_error(&e, "host range [0x43000000, 0x45000000) overlaps the hypervisor region [0x40000000, 0x44000000)");
}

#[test]
fn host_overlap_between_vms_names_both() {
    let e = errors(&demo_with("hpa = 0x46000000", "hpa = 0x45000000"));
    assert_eq!(
        e,
        vec![
            "error: configs/test.toml: vm \"alpha\" and vm \"beta\": memory_regions: host ranges \
              [0x44000000, 0x46000000) and [0x45000000, 0x47000000) overlap"
        ]
    );
}

#[test]
fn regions_of_one_vm_do_not_overlap() {
    let sys = demo_with(
        "[vm.devices]",
        "[[vm.memory_regions]]\ngpa = 0x4100_0000\nhpa = 0x4800_0000\nsize = 0x1000\n\n[vm.devices]",
    );
    assert_error(&errors(&sys), "vm \"alpha\": memory_regions[1]: guest range [0x41000000, 0x41001000) overlaps memory_regions[0]");
    let sys = demo_with(
        "[vm.devices]",
        "[[vm.memory_regions]]\ngpa = 0x8000_0000\nhpa = 0x4400_0000\nsize = 0x1000\n\n[vm.devices]",
    );
    assert_error(
        &errors(&sys),
        "memory_regions[1]: host range [0x44000000, 0x44001000) overlaps memory_regions[0]",
    );
}

#[test]
fn ipa_limit() {
    let sys = demo_with(
        "[vm.devices]",
        "[[vm.memory_regions]]\ngpa = 0x7F_FFFF_F000\nhpa = 0x4800_0000\nsize = 0x2000\n\n[vm.devices]",
    );
    assert_error(&errors(&sys), "memory_regions[1]: guest range [0x7ffffff000, 0x8000001000) ends above the 39-bit IPA limit");
}

#[test]
fn memory_regions_required() {
    let sys = demo()
        .replacen(
            "[[vm.memory_regions]]\ngpa = 0x4000_0000\nhpa = 0x44000000\nsize = 0x0200_0000\n",
            "",
            1,
        )
        .replacen(
            "[[vm]]\n[vm.base]",
            "[[vm]]\nmemory_regions = []\n[vm.base]",
            1,
        );
    let e = errors(&sys);
    assert_error(
        &e,
        "vm \"alpha\": memory_regions: at least one RAM region is required",
    );
    assert_error(&e, "vm \"alpha\": kernel.kernel_load_addr: 0x40000000 is not inside any of the VM's memory_regions");
}

// --- Rule 5: kernel -----------------------------------------------------------

#[test]
fn kernel_addresses_inside_ram() {
    let e = errors(&demo_with(
        "kernel_load_addr = 0x4000_0000",
        "kernel_load_addr = 0x4200_0000",
    ));
    assert_error(&e, "vm \"alpha\": kernel.kernel_load_addr: 0x42000000 is not inside any of the VM's memory_regions");
    let e = errors(&demo_with(
        "entry_point = 0x4000_0000",
        "entry_point = 0x1000",
    ));
    assert_error(
        &e,
        "vm \"alpha\": kernel.entry_point: 0x1000 is not inside any of the VM's memory_regions",
    );
}

#[test]
fn image_must_fit_its_region() {
    let big = |_: &str| Ok(Some(vec![0; 0x0200_0001]));
    let e = check_strs(SYS, &demo(), BRD, BOARD, &big).unwrap_err();
    let e: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_error(&e, "vm \"alpha\": kernel.kernel_path: image \"build/guests/aarch64/testguest.bin\" is 33554433 bytes but only 33554432 fit");
    let sys = demo_with(
        "kernel_load_addr = 0x4000_0000",
        "kernel_load_addr = 0x41FF_F000",
    );
    let e = check_strs(SYS, &sys, BRD, BOARD, &small_images);
    assert!(e.is_ok(), "4096 bytes fit in the last page: {e:?}");
    let e = check_strs(SYS, &sys, BRD, BOARD, &|_| Ok(Some(vec![0; 4097]))).unwrap_err();
    assert!(
        e[0].to_string().contains("is 4097 bytes but only 4096 fit"),
        "{e:?}"
    );
}

#[test]
fn missing_image_is_an_error_only_when_required() {
    let required = |p: &str| Err(format!("cannot read image {p:?}"));
    let e = check_strs(SYS, &demo(), BRD, BOARD, &required).unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0].to_string(),
        "error: configs/test.toml: vm \"alpha\": kernel.kernel_path: cannot read image \
         \"build/guests/aarch64/testguest.bin\""
    );
    assert!(check_strs(SYS, &demo(), BRD, BOARD, &|_| Ok(None)).is_ok());
}

// --- Rule 6: emulated devices ---------------------------------------------------

#[test]
fn emu_devices_checked() {
    let e = errors(&demo_with(
        "gpa = 0x0900_0000, size = 0x1000",
        "gpa = 0x0900_0800, size = 0",
    ));
    assert_error(
        &e,
        "vm \"alpha\": devices.emu_devices[0].gpa: 0x9000800 is not 4 KiB aligned",
    );
    assert_error(
        &e,
        "vm \"alpha\": devices.emu_devices[0].size: size must be greater than 0",
    );
    let e = errors(&demo_with("gpa = 0x0900_0000", "gpa = 0x4100_0000"));
    assert_error(&e, "devices.emu_devices[0]: guest window [0x41000000, 0x41001000) overlaps RAM memory_regions[0]");
    let e = errors(&demo_with(
        "size = 0x1000 }]",
        "size = 0x1000 }, { kind = \"pl011\", gpa = 0x0900_0000, size = 0x2000 }]",
    ));
    assert_error(&e, "devices.emu_devices[1]: guest window [0x9000000, 0x9002000) overlaps devices.emu_devices[0]");
}

// --- Rule 7: passthrough --------------------------------------------------------

pub(super) fn with_passthrough(alpha: &str, beta: &str) -> String {
    let d = demo();
    let mut parts = d.splitn(3, "[vm.devices]\n");
    let (head, a, b) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    format!(
        "{head}[vm.devices]\npassthrough_devices = [{alpha}]\n{a}[vm.devices]\npassthrough_devices = [{beta}]\n{b}"
    )
}

#[test]
fn passthrough_valid_and_resolved() {
    let sys = with_passthrough("{ name = \"uart1\" }", "{ name = \"uart2\", irqs = [41] }");
    assert!(errors(&sys).is_empty(), "{:?}", errors(&sys));
}

#[test]
fn passthrough_unknown_device() {
    let e = errors(&with_passthrough("{ name = \"uart9\" }", ""));
    assert_error(&e, "vm \"alpha\": devices.passthrough_devices[0].name: board \"qemu-virt\" has no device named \"uart9\"");
}

#[test]
fn passthrough_device_in_two_vms_names_both() {
    let e = errors(&with_passthrough(
        "{ name = \"uart1\" }",
        "{ name = \"uart1\", gpa = 0x0a00_0000 }",
    ));
    assert_eq!(
        e,
        vec!["error: configs/test.toml: vm \"alpha\" and vm \"beta\": devices.passthrough_devices: device \"uart1\" is given to both"]
    );
}

#[test]
fn irq_in_two_vms_names_both() {
    let board = board_with("irqs = [41, 42]", "irqs = [40, 42]");
    let sys = with_passthrough("{ name = \"uart1\" }", "{ name = \"uart2\" }");
    let e = errors_with(&sys, &board);
    assert_error(
        &e,
        "vm \"alpha\" and vm \"beta\": devices.passthrough_devices: INTID 40 is given to both",
    );
    // Routing only the other IRQ resolves the conflict.
    let sys = with_passthrough("{ name = \"uart1\" }", "{ name = \"uart2\", irqs = [42] }");
    assert!(errors_with(&sys, &board).is_empty());
}

#[test]
fn passthrough_irqs_subset_and_window() {
    let e = errors(&with_passthrough(
        "{ name = \"uart2\", irqs = [40, 41, 41] }",
        "",
    ));
    assert_error(
        &e,
        "devices.passthrough_devices[0].irqs[0]: INTID 40 is not an IRQ of board device \"uart2\"",
    );
    assert_error(
        &e,
        "devices.passthrough_devices[0].irqs[2]: INTID 41 is listed twice",
    );
    let e = errors(&with_passthrough(
        "{ name = \"uart1\", gpa = 0x0a00_0800 }",
        "",
    ));
    assert_error(
        &e,
        "devices.passthrough_devices[0].gpa: 0xa000800 is not 4 KiB aligned",
    );
    let e = errors(&with_passthrough(
        "{ name = \"uart1\", gpa = 0x4000_0000 }",
        "",
    ));
    assert_error(
        &e,
        "devices.passthrough_devices[0]: guest window [0x40000000, 0x40001000) overlaps RAM",
    );
    let e = errors(&with_passthrough(
        "{ name = \"uart1\", gpa = 0x0900_0000 }",
        "",
    ));
    assert_error(&e, "devices.passthrough_devices[0]: guest window [0x9000000, 0x9001000) overlaps devices.emu_devices[0]");
    let e = errors(&with_passthrough(
        "{ name = \"uart1\" }, { name = \"uart1\", gpa = 0x0a00_0000 }",
        "",
    ));
    assert_error(
        &e,
        "devices.passthrough_devices[1].name: \"uart1\" is already given in passthrough_devices[0]",
    );
}

// --- Rule 8: board --------------------------------------------------------------

pub(super) fn board_errors(board: &str) -> Vec<String> {
    errors_with(&demo(), board)
}

#[test]
fn board_cpu_count() {
    let e = board_errors(&board_with(
        "cpu_mpidrs = [0x0, 0x1, 0x2, 0x3]",
        "cpu_mpidrs = []",
    ));
    assert_error(
        &e,
        "error: configs/boards/test.toml: board: cpu_mpidrs: 0 CPUs listed, expected 1 to 8",
    );
    let e = board_errors(&board_with(
        "[0x0, 0x1, 0x2, 0x3]",
        "[0, 1, 2, 3, 4, 5, 6, 7, 8]",
    ));
    assert_error(&e, "board: cpu_mpidrs: 9 CPUs listed");
    let e = board_errors(&board_with("[0x0, 0x1, 0x2, 0x3]", "[0x0, 0x1, 0x2, 0x1]"));
    assert_error(&e, "board: cpu_mpidrs[3]: MPIDR 0x1 is listed twice");
}

#[test]
fn board_memory_banks() {
    let e = board_errors(&board_with(
        "[hypervisor]",
        "[[memory]]\nbase = 0x7000_0800\nsize = 0x1000_0000\n\n[hypervisor]",
    ));
    assert_error(&e, "board: memory[1].base: 0x70000800 is not 4 KiB aligned");
    assert_error(
        &e,
        "board: memory[1]: [0x70000800, 0x80000800) overlaps memory[0] [0x40000000, 0x80000000)",
    );
}

#[test]
fn board_hypervisor_region() {
    let e = board_errors(&board_with("size = 0x0400_0000", "size = 0x0030_0000"));
    assert_error(
        &e,
        "board: hypervisor.size: 0x300000 is not a multiple of 2 MiB",
    );
    assert_error(
        &e,
        "board: hypervisor.size: 0x300000 is less than the minimum 4 MiB",
    );
    let e = board_errors(&board_with(
        "base = 0x4000_0000\nsize = 0x0400_0000",
        "base = 0x3000_0000\nsize = 0x0400_0000",
    ));
    assert_error(
        &e,
        "board: hypervisor: [0x30000000, 0x34000000) is not inside one RAM bank",
    );
    let e = board_errors(&board_with(
        "base = 0x4000_0000\nsize = 0x0400_0000",
        "base = 0x4010_0000\nsize = 0x0400_0000",
    ));
    assert_error(
        &e,
        "board: hypervisor.base: 0x40100000 is not 2 MiB aligned",
    );
}

#[test]
fn board_devices() {
    let e = board_errors(&board_with("name = \"uart2\"", "name = \"uart1\""));
    assert_error(
        &e,
        "board: devices[1].name: \"uart1\" is also the name of devices[0]",
    );
    let e = board_errors(&board_with("base = 0x0905_0000", "base = 0x4100_0000"));
    assert_error(
        &e,
        "board: devices[1]: \"uart2\" [0x41000000, 0x41001000) overlaps RAM",
    );
    let e = board_errors(&board_with("base = 0x0905_0000", "base = 0x0904_0000"));
    assert_error(
        &e,
        "board: devices[1]: \"uart2\" [0x9040000, 0x9041000) overlaps devices[0] \"uart1\"",
    );
    let e = board_errors(&board_with("irqs = [40]", "irqs = [27]"));
    assert_error(&e, "board: devices[0].irqs[0]: INTID 27 is not an SPI");
}

#[test]
fn board_gic() {
    let e = board_errors(&board_with("version = 3", "version = 4"));
    assert_error(
        &e,
        "board: gic.version: 4 is not supported (expected 2 or 3)",
    );
    let e = board_errors(&board_with("version = 3", "version = 2"));
    assert_error(
        &e,
        "board: gic.gicr_base: not used by a version 2 GIC (give `gicc_base`)",
    );
    assert_error(&e, "board: gic.gicc_base: missing required field");
    assert_error(&e, "board: gic.gich_base: missing required field");
    assert_error(&e, "board: gic.gicv_base: missing required field");
    // A well-formed GICv2 board (QEMU virt's GICv2 addresses) is valid.
    let v2 = gicv2_board();
    let b = parse_board(BRD, &v2).expect("GICv2 board parses");
    assert_eq!(b.gic.version, crate::GicVersion::V2);
    assert_eq!(
        (b.gic.gicr_or_gicc_base, b.gic.gich_base, b.gic.gicv_base),
        (0x0801_0000, 0x0803_0000, 0x0804_0000)
    );
    assert_eq!(board_errors(&v2), Vec::<String>::new());
    // The GICv2 frames are 4 KiB pages that must not overlap; a GICv3
    // board has no GICH/GICV.
    let bad = v2.replace("gicv_base = 0x0804_0000", "gicv_base = 0x0801_0800");
    let e = board_errors(&bad);
    assert_error(&e, "board: gic.gicv_base: 0x8010800 is not 4 KiB aligned");
    assert_error(
        &e,
        "board: gic.gicv_base: [0x8010800, 0x8012800) overlaps gic.gicc_base",
    );
    let e = board_errors(&board_with(
        "gicr_base = 0x080A_0000",
        "gicr_base = 0x080A_0000\ngich_base = 0x0803_0000",
    ));
    assert_error(&e, "board: gic.gich_base: not used by a version 3 GIC");
}

/// The test board with QEMU virt's GICv2 (`gic-version=2`).
pub(super) fn gicv2_board() -> String {
    board_with(
        "version = 3",
        "version = 2\ngicc_base = 0x0801_0000\ngich_base = 0x0803_0000\ngicv_base = 0x0804_0000",
    )
    .replace("gicr_base = 0x080A_0000\n", "")
}

// --- All errors at once -------------------------------------------------------

#[test]
fn every_error_is_reported() {
    let sys = demo_with("hpa = 0x44000000", "hpa = 0x44000800")
        .replacen("phys_cpu_ids = [2]", "phys_cpu_ids = [1, 9]", 1)
        .replacen("id = 1", "id = 0", 1)
        .replacen("entry_point = 0x4000_0000", "entry_point = 0x10", 1);
    let e = errors(&sys);
    // The misaligned region also slides into beta's host range: 6 in all.
    assert_eq!(e.len(), 6, "{}", e.join("\n"));
    for needle in [
        "memory_regions[0].hpa: 0x44000800 is not 4 KiB aligned",
        "kernel.entry_point: 0x10",
        "CPU 9 does not exist",
        "id 0 is given to both",
        "CPU 1 is given to both",
        "host ranges [0x44000800, 0x46000800) and [0x46000000, 0x48000000) overlap",
    ] {
        assert_error(&e, needle);
    }
    let both = errors_with(
        &demo_with("id = 1", "id = 1\nx = 1"),
        &board_with("name", "nam"),
    );
    assert_eq!(both.len(), 3, "shape errors of both files: {both:?}");
}

// --- Code generation ------------------------------------------------------------

#[test]
fn hex_groups_digits() {
    assert_eq!(hex(0), "0x0");
    assert_eq!(hex(0x1000), "0x1000");
    assert_eq!(hex(0x4_0000), "0x4_0000");
    assert_eq!(hex(0x4000_0000), "0x4000_0000");
    assert_eq!(hex(0x7F_FFFF_F000), "0x7f_ffff_f000");
}

fn demo_with_passthrough_src() -> String {
    with_passthrough(
        "{ name = \"uart1\" }",
        "{ name = \"uart2\", gpa = 0x0a00_0000, irqs = [42] }",
    )
}

fn demo_with_passthrough() -> (SystemSpec, BoardSpec) {
    check(&demo_with_passthrough_src(), BOARD).expect("valid")
}

/// The plan of a checked config whose every file holds `bytes`, embedded
/// from `/img/<path>`.
pub(super) fn plan_all(sys: &SystemSpec, board: &BoardSpec, bytes: Option<&[u8]>) -> Plan {
    let files = |_: &str| Ok(bytes.map(<[u8]>::to_vec));
    plan((SYS, BRD), sys, board, &files, &|rel| {
        Path::new("/img").join(rel)
    })
    .expect("plan")
}

#[test]
fn generated_source_has_every_field() {
    let (sys, board) = demo_with_passthrough();
    let rs = system_rs(&board, &sys, &plan_all(&sys, &board, Some(&[1; 12])), "`t`");
    assert_eq!(
        rs.matches("pub static SYSTEM: tessera_config::SystemConfig")
            .count(),
        1
    );
    for needle in [
        "name: \"qemu-virt\"",
        "memory: &[tessera_config::MemRange { base: 0x4000_0000, size: 0x4000_0000 }]",
        "cpu_mpidrs: &[0x0, 0x1, 0x2, 0x3]",
        "hypervisor: tessera_config::MemRange { base: 0x4000_0000, size: 0x400_0000 }",
        "version: tessera_config::GicVersion::V3, gicd_base: 0x800_0000, gicr_or_gicc_base: 0x80a_0000",
        "irqs: &[41, 42], dma: false, compatible: &[]",
        "semihosting_exit: true",
        "name: \"alpha\"",
        "phys_cpu_ids: &[0, 1]",
        "tessera_config::MemoryRegion { gpa: 0x4000_0000, hpa: 0x4400_0000, size: 0x200_0000, kind: tessera_config::RegionKind::Ram }",
        "static BLOB_0: &[u8] = include_bytes!(\"/img/build/guests/aarch64/testguest.bin\");",
        "kind: tessera_config::GuestKind::BareMetal",
        "images: &[tessera_config::GuestImage { name: \"kernel\", gpa: 0x4000_0000, data: BLOB_0, sha256: [0x",
        "entry_point: 0x4000_0000",
        "boot_arg: 0x0",
        "vgic: tessera_config::VgicLayout { gicd_gpa: 0x800_0000, gicr_gpa: 0x80a_0000 }",
        "tessera_config::EmuDevice { kind: tessera_config::EmuDeviceKind::Pl011, gpa: 0x900_0000, size: 0x1000, irq: None }",
        "tessera_config::PassthroughDevice { name: \"uart1\", gpa: 0x904_0000, hpa: 0x904_0000, size: 0x1000, irqs: &[40] }",
        "tessera_config::PassthroughDevice { name: \"uart2\", gpa: 0xa00_0000, hpa: 0x905_0000, size: 0x1000, irqs: &[42] }",
        "on_unhandled: tessera_config::UnhandledPolicy::InjectAbort",
        "on_fault: tessera_config::FaultPolicy::StopVm",
        "pmu: false",
    ] {
        assert!(rs.contains(needle), "missing {needle:?} in:\n{rs}");
    }
    // Both VMs use the same file: embedded once, referenced twice.
    assert_eq!(rs.matches("include_bytes!(").count(), 1, "{rs}");
    assert_eq!(rs.matches("data: BLOB_0").count(), 2, "{rs}");

    let rs = system_rs(&board, &sys, &plan_all(&sys, &board, None), "`t`");
    assert!(rs.contains("static BLOB_0: &[u8] = &[];"), "{rs}");
}

#[test]
fn linker_fragment() {
    let (_, board) = demo_with_passthrough();
    let ld = board_layout_ld(&board, "b.toml", 0);
    assert!(ld.contains("HYPERVISOR_LOAD_ADDR = 0x40200000;\n"), "{ld}");
    assert!(ld.contains("HYPERVISOR_END = 0x44000000;\n"), "{ld}");
}

/// Compiles the generated source against this crate's types with `rustc`
/// and runs it, so a change to the types or the generator cannot drift.
/// Two bare-metal VMs share one file; a Linux VM boots a synthetic Image
/// with an initramfs and a generated device tree.
#[test]
fn generated_source_compiles_and_holds_the_values() {
    let dir = std::env::temp_dir().join(format!("tessera-config-codegen-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("build/linux")).unwrap();
    std::fs::create_dir_all(dir.join("build/guests/aarch64")).unwrap();
    let guest = [0xAAu8; 12];
    let kernel = fake_image(0, 0x1_0000, 0xa, 0x8000);
    let initramfs = vec![0x55u8; 3000];
    std::fs::write(dir.join("build/guests/aarch64/testguest.bin"), guest).unwrap();
    std::fs::write(dir.join("build/linux/Image"), &kernel).unwrap();
    std::fs::write(dir.join("build/linux/initramfs.cpio.gz"), &initramfs).unwrap();

    let sys_src = format!(
        "{}{}",
        demo_with_passthrough_src(),
        linux_vm(
            2,
            "linux0",
            "[3]",
            "gpa = 0x5000_0000\nsize = 0x0400_0000\nidentity = true",
            ""
        )
    );
    let read = |rel: &str| Ok(std::fs::read(dir.join(rel)).ok());
    let (sys, board) = check_strs(SYS, &sys_src, BRD, BOARD, &read).expect("valid");
    let plan = plan((SYS, BRD), &sys, &board, &read, &|rel| dir.join(rel)).expect("plan");
    let dtb_len = plan
        .blobs
        .iter()
        .find(|b| b.what.starts_with("dtb of"))
        .unwrap()
        .len;
    let rs = system_rs(&board, &sys, &plan, "`t`");
    std::fs::write(dir.join("system_config.rs"), rs).unwrap();
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let sha = |b: &[u8]| format!("{:?}", <[u8; 32]>::from(sha2::Sha256::digest(b)));
    let main = format!(
        r#"#![allow(unused_attributes, dead_code)]
#[path = {lib:?}]
mod tessera_config;
include!("system_config.rs");
fn main() {{
    let s = &SYSTEM;
    assert_eq!(s.vms.len(), 3);
    let a = &s.vms[0].images[0];
    assert_eq!(a.data, &[0xAAu8; 12][..]);
    assert_eq!(a.sha256, {guest_sha});
    assert_eq!(a.data.as_ptr(), s.vms[1].images[0].data.as_ptr());
    assert_eq!(s.vms[1].passthrough_devices[0].irqs, &[42]);
    assert_eq!(s.board.devices[0].mmio.end(), 0x0904_1000);
    assert_eq!(s.board.gic.version, tessera_config::GicVersion::V3);
    let l = &s.vms[2];
    assert_eq!(l.kind, tessera_config::GuestKind::Linux);
    let names: Vec<&str> = l.images.iter().map(|i| i.name).collect();
    assert_eq!(names, ["kernel", "initramfs", "dtb"]);
    assert_eq!(l.entry_point, 0x5000_0000);
    assert_eq!(l.images[0].gpa, 0x5000_0000);
    assert_eq!(l.images[0].sha256, {kernel_sha});
    assert_eq!(l.images[1].gpa, 0x5001_0000);
    assert_eq!(l.images[1].data.len(), 3000);
    assert_eq!(l.boot_arg, 0x53e0_0000);
    assert_eq!(l.images[2].gpa, l.boot_arg);
    assert_eq!(l.images[2].data.len(), {dtb_len});
    assert_eq!(&l.images[2].data[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
    println!("ok {{}}", l.name);
}}
"#,
        guest_sha = sha(&guest),
        kernel_sha = sha(&kernel),
    );
    std::fs::write(dir.join("main.rs"), main).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let exe = dir.join("gen-test");
    let out = std::process::Command::new(rustc)
        .args(["--edition", "2021", "-o"])
        .arg(&exe)
        .arg(dir.join("main.rs"))
        .output()
        .expect("rustc runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::process::Command::new(&exe).output().expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "ok linux0\n",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

// --- Files in the repository ----------------------------------------------------

pub(super) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn shipped_configs_are_valid() {
    for name in ["qemu-virt-demo", "qemu-virt-single", "qemu-virt-bench"] {
        let loaded = load(
            Path::new(&format!("configs/{name}.toml")),
            &repo_root(),
            Images::AllowMissing,
        );
        let config = loaded.result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(config.name, name);
        assert_eq!(config.board_file, "configs/boards/qemu-virt.toml");
        // System file, board file, one image (the demo's VMs share theirs).
        assert_eq!(loaded.inputs.len(), 3, "{:?}", loaded.inputs);
        assert!(config.system_rs().contains("pub static SYSTEM"));
    }
}

#[test]
fn shipped_bad_configs_fail_as_documented() {
    let run = |f: &str| -> Vec<String> {
        let loaded = load(Path::new(f), &repo_root(), Images::AllowMissing);
        loaded
            .result
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        run("tests/configs/bad-shared-cpu.toml"),
        vec!["error: tests/configs/bad-shared-cpu.toml: vm \"alpha\" and vm \"beta\": phys_cpu_ids: CPU 1 is given to both"]
    );
    assert_eq!(
        run("tests/configs/bad-overlap-memory.toml"),
        vec!["error: tests/configs/bad-overlap-memory.toml: vm \"alpha\" and vm \"beta\": memory_regions: host ranges [0x48000000, 0x4a000000) and [0x49000000, 0x4b000000) overlap"]
    );
}

#[test]
fn missing_files_are_reported() {
    let loaded = load(
        Path::new("configs/no-such.toml"),
        &repo_root(),
        Images::AllowMissing,
    );
    let e = loaded.result.unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("error: configs/no-such.toml: cannot read the system config"),
        "{e:?}"
    );
    let loaded = load(
        Path::new("configs/qemu-virt-demo.toml"),
        Path::new("/nonexistent-root"),
        Images::Require,
    );
    assert!(loaded.result.is_err());
}

#[test]
fn required_images_must_exist() {
    let dir = std::env::temp_dir().join(format!("tessera-config-load-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("configs/boards")).unwrap();
    std::fs::write(dir.join("configs/boards/test.toml"), BOARD).unwrap();
    std::fs::write(dir.join("configs/test.toml"), demo()).unwrap();
    let e = load(Path::new("configs/test.toml"), &dir, Images::Require)
        .result
        .unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].to_string().contains(
            "vm \"alpha\": kernel.kernel_path: cannot read \"build/guests/aarch64/testguest.bin\""
        ),
        "{e:?}"
    );
    assert!(
        e[0].to_string()
            .ends_with("build the guest images first (make guests)"),
        "{e:?}"
    );

    std::fs::create_dir_all(dir.join("build/guests/aarch64")).unwrap();
    std::fs::write(dir.join("build/guests/aarch64/testguest.bin"), [1u8; 64]).unwrap();
    let config = load(Path::new("configs/test.toml"), &dir, Images::Require)
        .result
        .unwrap();
    assert!(config
        .plan
        .blobs
        .iter()
        .all(|b| matches!(b.source, Source::File(_))));
    assert!(config.system_rs().contains("include_bytes!("));
    let _ = std::fs::remove_dir_all(&dir);
}
