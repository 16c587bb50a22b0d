//! Host tests of the x86_64 additions: x86 board files, port devices,
//! interrupt lines (GSIs) and their rules.

use super::*;
use std::path::Path;

const SYS: &str = "configs/x86.toml";
const BRD: &str = "configs/boards/x86.toml";

const BOARD: &str = r#"
name = "pc"
arch = "x86_64"
apic_ids = [0, 2]

[[memory]]
base = 0x0020_0000
size = 0x0fc0_0000

[hypervisor]
base = 0x0100_0000
size = 0x0100_0000

[console]
port = 0x3f8
"#;

fn vm(id: u16, name: &str, cpu: usize, hpa: u64, devices: &str) -> String {
    format!(
        r#"
[[vm]]
[vm.base]
id = {id}
name = "{name}"
phys_cpu_ids = [{cpu}]

[vm.kernel]
kernel_path = "build/guests/x86_64/x86guest.bin"
kernel_load_addr = 0x20_0000
entry_point = 0x20_0000

[[vm.memory_regions]]
gpa = 0
hpa = {hpa:#x}
size = 0x0100_0000

[vm.devices]
{devices}
"#
    )
}

fn system(vms: &[String]) -> String {
    format!("board = \"boards/x86.toml\"\n{}", vms.concat())
}

fn check(sys: &str, board: &str) -> Result<(SystemSpec, BoardSpec), Vec<String>> {
    check_strs(SYS, sys, BRD, board, &super::tests::small_images)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[track_caller]
fn assert_error(sys: &str, board: &str, needle: &str) {
    let errors = check(sys, board).expect_err("must be refused");
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "no error contains {needle:?}; got:\n{}",
        errors.join("\n")
    );
}

const COM1: &str = r#"emu_ports = [{ kind = "uart16550", port = 0x3f8 }]"#;

#[test]
fn x86_board_and_port_devices_parse() {
    let sys = system(&[
        vm(
            0,
            "a",
            0,
            0x0200_0000,
            &format!("{COM1}\npassthrough_ports = [{{ base = 0x80, size = 1 }}]"),
        ),
        vm(1, "b", 1, 0x0300_0000, COM1),
    ]);
    let (sys, board) = check(&sys, BOARD).expect("valid");
    assert_eq!(board.arch, crate::Arch::X86_64);
    assert_eq!(board.cpu_mpidrs, vec![0, 2], "APIC ids are the CPU ids");
    assert_eq!(
        board.console,
        crate::MemRange {
            base: 0x3f8,
            size: 8
        }
    );
    assert_eq!(
        sys.vms[0].emu_ports[0].range(),
        crate::PortRange {
            base: 0x3f8,
            size: 8
        }
    );
    assert_eq!(
        sys.vms[0].passthrough_ports[0].range,
        crate::PortRange {
            base: 0x80,
            size: 1
        }
    );
    assert!(sys.vms[0].passthrough_ports[0].irqs.is_empty());
    assert!(sys.vms[1].passthrough_ports.is_empty());
}

#[test]
fn arm_boards_keep_their_default_arch() {
    let arm = r#"
name = "arm"
arch = "aarch64"
cpu_mpidrs = [0]
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
"#;
    let b = parse_board(BRD, arm).expect("valid");
    assert_eq!(b.arch, crate::Arch::Aarch64);
    let b = parse_board(BRD, &arm.replace("arch = \"aarch64\"\n", "")).expect("valid");
    assert_eq!(b.arch, crate::Arch::Aarch64);
    let e = parse_board(BRD, &arm.replace("\"aarch64\"", "\"riscv64\"")).expect_err("bad arch");
    assert!(
        e[0].to_string()
            .contains("arch: expected \"aarch64\" or \"x86_64\""),
        "{}",
        e[0]
    );
    // Ports on an Arm board are refused, naming the field.
    let sys = format!(
        "board = \"b.toml\"\n{}",
        vm(0, "a", 0, 0x4400_0000, COM1).replace("gpa = 0\n", "gpa = 0x4000_0000\n")
    );
    let errors = check(&sys, arm).expect_err("ports on arm");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("devices.emu_ports[0]: I/O ports exist only on x86_64 boards")),
        "{errors:?}"
    );
}

#[test]
fn x86_board_shape_errors() {
    let e = parse_board(BRD, &BOARD.replace("port = 0x3f8", "port = 0x1_0000")).unwrap_err();
    assert!(
        e[0].to_string()
            .contains("console.port: 65536 does not fit an I/O port"),
        "{}",
        e[0]
    );
    let e = parse_board(BRD, &BOARD.replace("apic_ids", "cpu_mpidrs")).unwrap_err();
    assert!(e
        .iter()
        .any(|e| e.to_string().contains("unknown field `cpu_mpidrs`")));
    let e = parse_board(BRD, &format!("{BOARD}\n[gic]\nversion = 3\n")).unwrap_err();
    assert!(e
        .iter()
        .any(|e| e.to_string().contains("unknown field `gic`")));
}

#[test]
fn passthrough_port_given_to_two_vms_is_refused() {
    let pt = "passthrough_ports = [{ base = 0x60, size = 5 }]";
    let sys = system(&[
        vm(0, "a", 0, 0x0200_0000, pt),
        vm(
            1,
            "b",
            1,
            0x0300_0000,
            "passthrough_ports = [{ base = 0x64, size = 1 }]",
        ),
    ]);
    assert_error(
        &sys,
        BOARD,
        "vm \"a\" and vm \"b\": devices.passthrough_ports[0]: ports 0x60..0x65 and ports 0x64..0x65 are given to both",
    );
    // The same emulated COM1 in two VMs is fine: each VM has its own.
    let sys = system(&[
        vm(0, "a", 0, 0x0200_0000, COM1),
        vm(1, "b", 1, 0x0300_0000, COM1),
    ]);
    check(&sys, BOARD).expect("per-VM emulated ports may repeat");
}

#[test]
fn ports_overlapping_the_console_or_each_other_are_refused() {
    let sys = system(&[vm(
        0,
        "a",
        0,
        0x0200_0000,
        "passthrough_ports = [{ base = 0x3f8, size = 8 }]",
    )]);
    assert_error(
        &sys,
        BOARD,
        "devices.passthrough_ports[0]: ports 0x3f8..0x400 overlap the hypervisor console",
    );
    let both = format!("{COM1}\npassthrough_ports = [{{ base = 0x3fc, size = 2 }}]");
    let sys = system(&[vm(0, "a", 0, 0x0200_0000, &both)]);
    // The emulated COM1 is per VM, so only the passthrough overlap matters
    // against the console; the two claims overlap each other too.
    assert_error(&sys, BOARD, "devices.passthrough_ports[0]: ports 0x3fc..0x3fe overlap devices.emu_ports[0] ports 0x3f8..0x400");
    let sys = system(&[vm(
        0,
        "a",
        0,
        0x0200_0000,
        "passthrough_ports = [{ base = 0xfff0, size = 0x20 }]",
    )]);
    assert_error(&sys, BOARD, "are not a range inside 0x0..=0xffff");
    let sys = system(&[vm(
        0,
        "a",
        0,
        0x0200_0000,
        "emu_ports = [{ kind = \"ne2000\", port = 0x300 }]",
    )]);
    assert_error(&sys, BOARD, "unknown emulated port device \"ne2000\"");
}

#[test]
fn x86_generated_source_names_the_arch_and_ports() {
    let sys = system(&[vm(
        0,
        "a",
        0,
        0x0200_0000,
        &format!("{COM1}\npassthrough_ports = [{{ base = 0x80, size = 1 }}]"),
    )]);
    let (sys, board) = check(&sys, BOARD).expect("valid");
    let src = system_rs(
        &board,
        &sys,
        &super::tests::plan_all(&sys, &board, None),
        "test",
    );
    assert!(src.contains("arch: tessera_config::Arch::X86_64,"), "{src}");
    assert!(
        src.contains(
            "tessera_config::EmuPort { kind: tessera_config::EmuPortKind::Uart16550, port: 0x3f8 }"
        ),
        "{src}"
    );
    assert!(
        src.contains("tessera_config::PortRange { base: 0x80, size: 0x1 }"),
        "{src}"
    );
}

#[test]
fn the_bochs_configs_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = load(
        Path::new("configs/bochs-x86-demo.toml"),
        &root,
        Images::AllowMissing,
    );
    let config = loaded.result.expect("configs/bochs-x86-demo.toml is valid");
    assert_eq!(config.board.arch, crate::Arch::X86_64);
}

/// [`BOARD`] with the console's line (IRQ 4) and a 24-input I/O APIC.
fn irq_board() -> String {
    format!("{BOARD}irq = 4\n\n[ioapic]\nbase = 0xfec0_0000\npins = 24\n")
}

const COM2: &str = "passthrough_ports = [{ base = 0x2f8, size = 8, irqs = [3] }]";

#[test]
fn gsis_of_passthrough_ports_parse_and_are_generated() {
    let board = irq_board();
    let sys = system(&[
        vm(0, "a", 0, 0x0200_0000, &format!("{COM1}\n{COM2}")),
        vm(1, "b", 1, 0x0300_0000, COM1),
    ]);
    let (sys, board) = check(&sys, &board).expect("valid");
    assert_eq!(
        board.ioapic,
        Some(crate::IoApicDesc {
            base: 0xfec0_0000,
            pins: 24
        })
    );
    assert_eq!(board.console_irq, Some(4));
    assert_eq!(sys.vms[0].passthrough_ports[0].irqs, vec![3]);
    let src = system_rs(
        &board,
        &sys,
        &super::tests::plan_all(&sys, &board, None),
        "test",
    );
    assert!(
        src.contains("ioapic: Some(tessera_config::IoApicDesc { base: 0xfec0_0000, pins: 24 }),"),
        "{src}"
    );
    assert!(src.contains("passthrough_gsis: &[3],"), "{src}");
    assert!(src.contains("passthrough_gsis: &[],"), "{src}");
    assert!(src.contains("console_irq: Some(4),"), "{src}");
}

#[test]
fn a_gsi_given_to_two_vms_is_refused() {
    let sys = system(&[
        vm(0, "a", 0, 0x0200_0000, COM2),
        vm(
            1,
            "b",
            1,
            0x0300_0000,
            "passthrough_ports = [{ base = 0x80, size = 1 }, { base = 0x3e8, size = 8, irqs = [5, 3] }]",
        ),
    ]);
    assert_error(
        &sys,
        &irq_board(),
        "error: configs/x86.toml: vm \"a\" and vm \"b\": devices.passthrough_ports[1].irqs[1]: GSI 3 is given to both (vm \"a\": devices.passthrough_ports[0].irqs[0])",
    );
    // Twice in one VM.
    let twice = "passthrough_ports = [{ base = 0x2f8, size = 8, irqs = [3] }, { base = 0x2e8, size = 8, irqs = [3] }]";
    assert_error(
        &system(&[vm(0, "a", 0, 0x0200_0000, twice)]),
        &irq_board(),
        "error: configs/x86.toml: vm \"a\": devices.passthrough_ports[1].irqs[0]: GSI 3 is also given by devices.passthrough_ports[0].irqs[0]",
    );
}

#[test]
fn a_gsi_the_io_apic_does_not_have_is_refused() {
    let beyond = "passthrough_ports = [{ base = 0x2f8, size = 8, irqs = [24] }]";
    assert_error(
        &system(&[vm(0, "a", 0, 0x0200_0000, beyond)]),
        &irq_board(),
        "error: configs/x86.toml: vm \"a\": devices.passthrough_ports[0].irqs[0]: GSI 24 is not an input of the board's I/O APIC (it has 24: 0..=23)",
    );
    // A board without an [ioapic] has no GSIs to give.
    assert_error(
        &system(&[vm(0, "a", 0, 0x0200_0000, COM2)]),
        BOARD,
        "error: configs/x86.toml: vm \"a\": devices.passthrough_ports[0].irqs[0]: GSI 3: board \"pc\" describes no I/O APIC (add an [ioapic] table)",
    );
    // GSIs exist only on x86 boards: the parser bounds them to 0..=255.
    assert_error(
        &system(&[vm(0, "a", 0, 0x0200_0000, &COM2.replace("[3]", "[256]"))]),
        &irq_board(),
        "devices.passthrough_ports[0].irqs[0]: 256 does not fit a GSI",
    );
}

#[test]
fn the_consoles_gsi_is_refused() {
    let console = "passthrough_ports = [{ base = 0x2f8, size = 8, irqs = [4] }]";
    assert_error(
        &system(&[vm(0, "a", 0, 0x0200_0000, console)]),
        &irq_board(),
        "error: configs/x86.toml: vm \"a\": devices.passthrough_ports[0].irqs[0]: GSI 4 is the hypervisor console's interrupt (board console.irq)",
    );
}

#[test]
fn x86_board_interrupt_lines_are_checked() {
    let board = irq_board().replace("pins = 24", "pins = 0");
    let e = validate_board(BRD, &parse_board(BRD, &board).expect("parses"));
    let e: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert!(
        e.iter()
            .any(|e| e.contains("board: ioapic.pins: 0 inputs, expected 1 to 192")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.contains("board: console.irq: GSI 4 is not an input")),
        "{e:?}"
    );
    // Board devices' irqs are GSIs on x86 (not GIC SPIs).
    let dev = format!(
        "{}\n[[devices]]\nname = \"hpet\"\nbase = 0xfed0_0000\nsize = 0x1000\nirqs = [2, 30]\n",
        irq_board()
    );
    let e = validate_board(BRD, &parse_board(BRD, &dev).expect("parses"));
    let e: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert!(
        e.iter()
            .any(|e| e.contains("devices[0].irqs[1]: GSI 30 is not an input")),
        "{e:?}"
    );
    assert!(
        !e.iter().any(|e| e.contains("irqs[0]")),
        "GSI 2 is fine: {e:?}"
    );
}

#[test]
fn gsis_of_passthrough_devices_count_too() {
    let board = format!(
        "{}\n[[devices]]\nname = \"hpet\"\nbase = 0xfed0_0000\nsize = 0x1000\nirqs = [3]\n",
        irq_board()
    );
    let sys = system(&[
        vm(0, "a", 0, 0x0200_0000, COM2),
        vm(
            1,
            "b",
            1,
            0x0300_0000,
            "passthrough_devices = [{ name = \"hpet\" }]",
        ),
    ]);
    assert_error(
        &sys,
        &board,
        "vm \"a\" and vm \"b\": devices.passthrough_devices[0] (device \"hpet\"): GSI 3 is given to both",
    );
}

#[test]
fn the_interrupt_controllers_stay_the_hypervisors() {
    // A board device on the I/O APIC or the local APIC page.
    for base in ["0xfec0_0000", "0xfee0_0000"] {
        let board = format!(
            "{}\n[[devices]]\nname = \"ctl\"\nbase = {base}\nsize = 0x1000\n",
            irq_board()
        );
        let e = validate_board(BRD, &parse_board(BRD, &board).expect("parses"));
        assert!(
            e.iter().any(|e| e
                .to_string()
                .contains("board: devices[0]: \"ctl\" overlaps the")),
            "{base}: {e:?}"
        );
    }
    // A passed-through device placed over the VM's own I/O APIC.
    let board = format!(
        "{}\n[[devices]]\nname = \"nic\"\nbase = 0xfebf_0000\nsize = 0x1000\n",
        irq_board()
    );
    let sys = system(&[vm(
        0,
        "a",
        0,
        0x0200_0000,
        "passthrough_devices = [{ name = \"nic\", gpa = 0xfec0_0000 }]",
    )]);
    assert_error(
        &sys,
        &board,
        "error: configs/x86.toml: vm \"a\": devices.passthrough_devices[0]: overlaps the VM's I/O APIC (0xfec00000)",
    );
}

/// On x86 a channel member's `irq` is the vector its doorbell raises in
/// vCPU 0's local APIC: 32..=255, and not compared with GSIs.
#[test]
fn x86_channel_doorbells_are_vectors() {
    let channel = |irq: u32| {
        format!(
            "\n[[channel]]\nname = \"ping\"\nsize = 0x1000\nmembers = [\n\
             {{ vm = \"a\", gpa = 0x0200_0000, access = \"rw\", irq = {irq}, doorbell = 0x0210_0000 }},\n\
             {{ vm = \"b\", gpa = 0x0200_0000, access = \"rw\", irq = 0x50, doorbell = 0x0210_0000 }},\n]\n"
        )
    };
    let vms = [
        vm(
            0,
            "a",
            0,
            0x0200_0000,
            &format!("{COM1}\npassthrough_ports = [{{ base = 0x2f8, size = 8, irqs = [3] }}]"),
        ),
        vm(1, "b", 1, 0x0300_0000, COM1),
    ];
    let board = irq_board();
    // Vector 3 is not GSI 3.
    for ok in [0x50, 0xff, 32] {
        let sys = format!("{}{}", system(&vms), channel(ok));
        assert!(check(&sys, &board).is_ok(), "{:?}", check(&sys, &board));
    }
    for bad in [3, 31, 256, 1000] {
        let sys = format!("{}{}", system(&vms), channel(bad));
        assert_eq!(
            check(&sys, &board).expect_err("refused"),
            [format!(
                "error: configs/x86.toml: channel \"ping\", vm \"a\": members[0].irq: {bad} is \
                 not an interrupt vector a VM can be given (expected 32..=255)"
            )]
        );
    }
}
