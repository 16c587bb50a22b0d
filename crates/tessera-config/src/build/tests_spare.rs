//! Host tests of the board's spare SPIs (`gic.spare_spis`): parsing, the
//! board rules, their assignment to static channel members (in config
//! order, 0 beyond the range) and the generated tables.

use super::tests::{
    assert_error, board_errors, board_with, check, demo, errors_with, gicv2_board, repo_root,
    small_images, with_passthrough, BOARD, BRD, SYS,
};
use super::*;
use crate::Arch;

/// The test board with `spare_spis = <value>` in its `[gic]` table.
fn spare(value: &str) -> String {
    board_with(
        "gicr_base = 0x080A_0000",
        &format!("gicr_base = 0x080A_0000\nspare_spis = {value}"),
    )
}

/// `n` two-member channels between alpha and beta, each in its own guest
/// window with its own doorbell page and interrupt.
fn channels(n: u64) -> String {
    let mut o = demo();
    for i in 0..n {
        let (gpa, bell, irq) = (
            0x5000_0000 + i * 0x10_0000,
            0x0a00_0000 + i * 0x1000,
            48 + i,
        );
        o.push_str(&format!(
            "\n[[channel]]\nname = \"c{i}\"\nsize = 0x1000\nmembers = [\n\
             {{ vm = \"alpha\", gpa = {gpa:#x}, access = \"rw\", irq = {irq}, doorbell = {bell:#x} }},\n\
             {{ vm = \"beta\", gpa = {gpa:#x}, access = \"rw\", irq = {irq}, doorbell = {bell:#x} }},\n]\n"
        ));
    }
    o
}

#[test]
fn spare_spis_parse_on_gicv3_and_gicv2_boards_and_default_to_none() {
    let b = parse_board(BRD, &spare("{ first = 208, count = 80 }")).expect("parses");
    assert_eq!((b.gic.spare_spi_first, b.gic.spare_spi_count), (208, 80));
    assert_eq!(
        board_errors(&spare("{ first = 208, count = 80 }")),
        Vec::<String>::new()
    );
    let v2 = gicv2_board().replace(
        "gicv_base = 0x0804_0000",
        "gicv_base = 0x0804_0000\nspare_spis = { first = 500, count = 4 }",
    );
    let b = parse_board(BRD, &v2).expect("GICv2 board parses");
    assert_eq!((b.gic.spare_spi_first, b.gic.spare_spi_count), (500, 4));
    assert_eq!(board_errors(&v2), Vec::<String>::new());
    let b = parse_board(BRD, BOARD).expect("parses");
    assert_eq!((b.gic.spare_spi_first, b.gic.spare_spi_count), (0, 0));
}

#[test]
fn shipped_qemu_virt_boards_declare_intids_208_to_287() {
    for name in ["qemu-virt", "qemu-virt-gicv2"] {
        let file = format!("configs/boards/{name}.toml");
        let src = std::fs::read_to_string(repo_root().join(&file)).expect("board file");
        let b = parse_board(&file, &src).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!((b.gic.spare_spi_first, b.gic.spare_spi_count), (208, 80));
        assert!(validate_board(&file, &b).is_empty(), "{name}");
    }
}

#[test]
fn spare_spis_shape_errors_name_the_board_file_and_field() {
    let e = board_errors(&spare("{ first = 208, count = 8, last = 215 }"));
    assert_error(
        &e,
        "error: configs/boards/test.toml: board: gic.spare_spis.last: unknown field `last`, \
         expected one of `first`, `count`",
    );
    let e = board_errors(&spare("{ count = 8 }"));
    assert_error(
        &e,
        "error: configs/boards/test.toml: board: gic.spare_spis.first: missing required field",
    );
    let e = board_errors(&spare("{ first = 208 }"));
    assert_error(&e, "board: gic.spare_spis.count: missing required field");
    let e = board_errors(&spare("{ first = 208, count = 0 }"));
    assert_eq!(
        e,
        vec![
            "error: configs/boards/test.toml: board: gic.spare_spis.count: 0 spare SPIs; give at \
             least one, or leave `spare_spis` out"
        ]
    );
    let e = board_errors(&spare("{ first = -1, count = 8 }"));
    assert_error(&e, "board: gic.spare_spis.first: -1 is negative");
    let e = board_errors(&spare("208"));
    assert_error(&e, "board: gic.spare_spis: expected a table, found integer");
    let e = board_errors(&spare("{ first = 208, count = 0x1_0000_0000 }"));
    assert_error(&e, "board: gic.spare_spis.count: 4294967296 does not fit");
}

#[test]
fn spare_spis_must_be_spis() {
    let e = board_errors(&spare("{ first = 16, count = 8 }"));
    assert_eq!(
        e,
        vec![
            "error: configs/boards/test.toml: board: gic.spare_spis.first: INTID 16 is not an \
             SPI (expected 32..=1019)"
        ]
    );
    let e = board_errors(&spare("{ first = 1000, count = 21 }"));
    assert_eq!(
        e,
        vec![
            "error: configs/boards/test.toml: board: gic.spare_spis.count: spare SPIs \
             1000..=1020 end past the last SPI, INTID 1019"
        ]
    );
    // The last SPI itself is fine, and the largest count cannot overflow.
    assert!(board_errors(&spare("{ first = 1000, count = 20 }")).is_empty());
    let e = board_errors(&spare("{ first = 1000, count = 4294967295 }"));
    assert_error(&e, "spare SPIs 1000..=4294968294 end past the last SPI");
}

#[test]
fn spare_spis_must_not_hold_a_device_interrupt() {
    // uart1 raises 40, uart2 41 and 42.
    let e = board_errors(&spare("{ first = 36, count = 6 }"));
    assert_eq!(
        e,
        vec![
            "error: configs/boards/test.toml: board: gic.spare_spis: spare SPIs 36..=41 include \
             devices[0] \"uart1\" irqs [40]: a spare SPI must be one no device drives",
            "error: configs/boards/test.toml: board: gic.spare_spis: spare SPIs 36..=41 include \
             devices[1] \"uart2\" irqs [41]: a spare SPI must be one no device drives",
        ]
    );
    // Just past them is fine.
    assert!(board_errors(&spare("{ first = 43, count = 6 }")).is_empty());
}

#[test]
fn spare_spis_must_not_hold_the_console_interrupt() {
    let board = spare("{ first = 32, count = 4 }").replace(
        "[console]\nbase = 0x0900_0000\nsize = 0x1000\n",
        "[console]\nbase = 0x0900_0000\nsize = 0x1000\nirq = 33\n",
    );
    let e = board_errors(&board);
    assert_eq!(
        e,
        vec![
            "error: configs/boards/test.toml: board: gic.spare_spis: spare SPIs 32..=35 include \
             console.irq 33: a spare SPI must be one no device drives"
        ]
    );
}

#[test]
fn a_passthrough_interrupt_cannot_be_a_spare_spi() {
    // A VM's passthrough interrupts are its board devices' interrupts, so
    // the board rule refuses the range before any VM can be given one.
    let sys = with_passthrough("{ name = \"uart1\" }", "");
    let board = spare("{ first = 40, count = 1 }");
    let e = errors_with(&sys, &board);
    assert_error(
        &e,
        "error: configs/boards/test.toml: board: gic.spare_spis: spare SPIs 40..=40 include \
         devices[0] \"uart1\" irqs [40]",
    );
    assert!(errors_with(&sys, &spare("{ first = 43, count = 1 }")).is_empty());
}

#[test]
fn doorbell_lines_follow_config_order_and_fall_back_to_zero_beyond_the_range() {
    let (s, b) = check(&channels(3), &spare("{ first = 208, count = 5 }")).expect("valid");
    // Channel by channel, member by member; the sixth member gets none.
    assert_eq!(
        doorbell_lines(&b, &s.channels),
        vec![vec![208, 209], vec![210, 211], vec![212, 0]]
    );
    // Exactly as many lines as members: all assigned, none left over.
    let (s, b) = check(&channels(2), &spare("{ first = 300, count = 4 }")).expect("valid");
    assert_eq!(
        doorbell_lines(&b, &s.channels),
        vec![vec![300, 301], vec![302, 303]]
    );
    // No spare SPIs on the board: every member takes the software path.
    let (s, b) = check(&channels(2), BOARD).expect("valid");
    assert_eq!(
        doorbell_lines(&b, &s.channels),
        vec![vec![0, 0], vec![0, 0]]
    );
    // x86 boards have no GIC: no lines whatever the table holds.
    let (s, mut b) = check(&channels(1), &spare("{ first = 208, count = 5 }")).expect("valid");
    b.arch = Arch::X86_64;
    assert_eq!(doorbell_lines(&b, &s.channels), vec![vec![0, 0]]);
    assert!(doorbell_lines(&b, &[]).is_empty());
}

/// The generated `system_config.rs` of a checked config.
fn generated(s: &SystemSpec, b: &BoardSpec) -> String {
    let plan = plan((SYS, BRD), s, b, &small_images, &|p| p.into()).expect("plan");
    system_rs(b, s, &plan, "x")
}

#[test]
fn generated_tables_hold_the_spare_range_and_each_members_line() {
    let (s, b) = check(&channels(2), &spare("{ first = 208, count = 3 }")).expect("valid");
    let rs = generated(&s, &b);
    assert!(
        rs.contains("gicv_base: 0x0, spare_spi_first: 208, spare_spi_count: 3 },"),
        "{rs}"
    );
    for (vm, line) in [(0, 208), (1, 209), (0, 210), (1, 0)] {
        assert!(
            rs.contains(&format!("ChannelMember {{ vm_id: {vm}, gpa: ")),
            "{rs}"
        );
        assert!(rs.contains(&format!(", line: {line} }}")), "{rs}");
    }
    // In order: the second channel's members are 210 and 0.
    let c1 = rs.find("name: \"c1\"").expect("channel c1");
    assert!(
        rs[c1..].contains("line: 210 }, tessera_config::ChannelMember { vm_id: 1"),
        "{rs}"
    );
    assert!(rs[c1..].contains("line: 0 }]"), "{rs}");
    // A board without spare SPIs generates zeros.
    let (s, b) = check(&channels(1), BOARD).expect("valid");
    let rs = generated(&s, &b);
    assert!(
        rs.contains("spare_spi_first: 0, spare_spi_count: 0 }"),
        "{rs}"
    );
    assert_eq!(rs.matches(", line: 0 }").count(), 2, "{rs}");
}
