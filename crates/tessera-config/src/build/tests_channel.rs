//! Host tests of `[[channel]]`: parsing, every build-time rule (each error
//! naming file, channel, VM and field), placement and generated code.

use super::tests::{check, demo, errors, small_images, BOARD, BRD, SYS};
use super::*;

/// A channel between alpha and beta with member lines `a` and `b`.
fn channel(name: &str, size: &str, members: &[&str]) -> String {
    format!(
        "\n[[channel]]\nname = \"{name}\"\nsize = {size}\nmembers = [\n{}\n]\n",
        members.join(",\n")
    )
}

fn member(vm: &str, gpa: &str, access: &str, irq: u32, doorbell: &str) -> String {
    format!(
        "{{ vm = \"{vm}\", gpa = {gpa}, access = \"{access}\", irq = {irq}, doorbell = {doorbell} }}"
    )
}

fn alpha() -> String {
    member("alpha", "0x5000_0000", "rw", 48, "0x0a00_0000")
}

fn beta() -> String {
    member("beta", "0x5000_0000", "ro", 48, "0x0a00_0000")
}

fn with(channels: &str) -> String {
    format!("{}{channels}", demo())
}

/// The one error of a config, which must start with `prefix`.
fn one_error(sys: &str, prefix: &str) {
    let e = errors(sys);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with(prefix), "{e:#?}");
}

const SCOPE: &str = "error: configs/test.toml: channel \"ping\"";

#[test]
fn valid_channel_parses_places_and_generates() {
    let sys = with(&channel("ping", "0x40_0000", &[&alpha(), &beta()]));
    let (s, b) = check(&sys, BOARD).expect("valid");
    assert_eq!(s.channels.len(), 1);
    let c = &s.channels[0];
    assert_eq!(c.size, 0x40_0000);
    assert_eq!(c.members[1].access, Access::ReadOnly);
    assert_eq!(c.members[0].irq, 48);
    // Carved from the top of the hypervisor region [0x4000_0000, +64 MiB).
    assert_eq!(channel_hpas(&b, &s.channels), vec![0x43c0_0000]);
    let plan = plan((SYS, BRD), &s, &b, &small_images, &|p| p.into()).expect("plan");
    let rs = system_rs(&b, &s, &plan, "x");
    assert!(rs.contains(
        "tessera_config::Channel { name: \"ping\", id: 0, hpa: 0x43c0_0000, size: 0x40_0000"
    ));
    assert!(rs.contains(
        "tessera_config::ChannelMember { vm_id: 1, gpa: 0x5000_0000, writable: false, irq: 48, \
         doorbell_gpa: 0xa00_0000, line: 0 }"
    ));
    assert!(rs.contains("channel_bytes: 0x40_0000,"));
    let ld = board_layout_ld(&b, "b", channel_bytes(&s.channels));
    assert!(ld.contains("HYPERVISOR_END = 0x43c00000;"), "{ld}");
}

#[test]
fn no_channels_is_fine() {
    let (s, _) = check(&demo(), BOARD).expect("valid");
    assert!(s.channels.is_empty());
}

#[test]
fn channel_overlapping_ram() {
    let a = member("alpha", "0x4100_0000", "rw", 48, "0x0a00_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&a, &beta()])),
        &format!("{SCOPE}, vm \"alpha\": members[0].gpa: guest window [0x41000000, 0x41001000) overlaps the VM's memory_regions[0]"),
    );
}

#[test]
fn doorbell_overlapping_a_device_or_the_vgic() {
    let a = member("alpha", "0x5000_0000", "rw", 48, "0x0900_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&a, &beta()])),
        &format!("{SCOPE}, vm \"alpha\": members[0].doorbell: guest window [0x9000000, 0x9001000) overlaps the VM's devices.emu_devices[0]"),
    );
    let b = member("beta", "0x0800_0000", "rw", 48, "0x0a00_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&alpha(), &b])),
        &format!("{SCOPE}, vm \"beta\": members[1].gpa: guest window [0x8000000, 0x8001000) overlaps the VM's devices.vgic.gicd_gpa"),
    );
}

#[test]
fn doorbell_inside_its_own_channel() {
    let a = member("alpha", "0x5000_0000", "rw", 48, "0x5000_1000");
    one_error(
        &with(&channel("ping", "0x2000", &[&a, &beta()])),
        &format!("{SCOPE}, vm \"alpha\": members[0].doorbell: doorbell [0x50001000, 0x50002000) overlaps"),
    );
}

#[test]
fn channel_overlapping_another_channel() {
    let first = channel("ping", "0x2000", &[&alpha(), &beta()]);
    let a = member("alpha", "0x5000_1000", "rw", 49, "0x0a00_1000");
    let b = member("beta", "0x6000_0000", "rw", 49, "0x0a00_1000");
    one_error(
        &with(&format!("{first}{}", channel("pong", "0x1000", &[&a, &b]))),
        "error: configs/test.toml: channel \"pong\", vm \"alpha\": members[0].gpa: guest window [0x50001000, 0x50002000) overlaps channel \"ping\" members[0].gpa",
    );
}

#[test]
fn unknown_vm_and_vm_listed_twice() {
    let g = member("gamma", "0x5000_0000", "rw", 48, "0x0a00_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&alpha(), &g])),
        &format!("{SCOPE}, vm \"gamma\": members[1].vm: no VM is named \"gamma\""),
    );
    let a2 = member("alpha", "0x6000_0000", "rw", 49, "0x0a00_1000");
    one_error(
        &with(&channel("ping", "0x1000", &[&alpha(), &a2])),
        &format!("{SCOPE}, vm \"alpha\": members[1].vm: the VM is already members[0]"),
    );
}

#[test]
fn interrupt_already_used_in_that_vm_or_not_an_spi() {
    let first = channel("ping", "0x1000", &[&alpha(), &beta()]);
    let a = member("alpha", "0x6000_0000", "rw", 48, "0x0a00_1000");
    let b = member("beta", "0x6000_0000", "rw", 50, "0x0a00_1000");
    one_error(
        &with(&format!("{first}{}", channel("pong", "0x1000", &[&a, &b]))),
        "error: configs/test.toml: channel \"pong\", vm \"alpha\": members[0].irq: INTID 48 is also the interrupt of channel \"ping\" members[0].irq",
    );
    let b = member("beta", "0x5000_0000", "rw", 27, "0x0a00_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&alpha(), &b])),
        &format!("{SCOPE}, vm \"beta\": members[1].irq: INTID 27 is not an SPI"),
    );
}

#[test]
fn interrupt_of_a_device_of_that_vm() {
    // alpha's console raises INTID 33 here.
    let sys = with(&channel(
        "ping",
        "0x1000",
        &[
            &member("alpha", "0x5000_0000", "rw", 33, "0x0a00_0000"),
            &beta(),
        ],
    ))
    .replace(
        "emu_devices = [{ kind = \"pl011\", gpa = 0x0900_0000, size = 0x1000 }]",
        "emu_devices = [{ kind = \"pl011\", gpa = 0x0900_0000, size = 0x1000, irq = 33 }]",
    );
    let e = errors(&sys);
    assert!(
        e.iter().any(|l| l.starts_with(&format!(
            "{SCOPE}, vm \"alpha\": members[0].irq: INTID 33 is also the interrupt of devices.emu_devices[0].irq"
        ))),
        "{e:#?}"
    );
}

#[test]
fn size_and_addresses_not_page_aligned() {
    one_error(
        &with(&channel("ping", "0x1800", &[&alpha(), &beta()])),
        &format!("{SCOPE}: size: 0x1800 is not a multiple of 4 KiB"),
    );
    one_error(
        &with(&channel("ping", "0", &[&alpha(), &beta()])),
        &format!("{SCOPE}: size: size must be greater than 0"),
    );
    let a = member("alpha", "0x5000_0800", "rw", 48, "0x0a00_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&a, &beta()])),
        &format!("{SCOPE}, vm \"alpha\": members[0].gpa: 0x50000800 is not 4 KiB aligned"),
    );
    let b = member("beta", "0x5000_0000", "rw", 48, "0x0a00_0010");
    one_error(
        &with(&channel("ping", "0x1000", &[&alpha(), &b])),
        &format!("{SCOPE}, vm \"beta\": members[1].doorbell: 0xa000010 is not 4 KiB aligned"),
    );
}

#[test]
fn fewer_than_two_vms() {
    one_error(
        &with(&channel("ping", "0x1000", &[&alpha()])),
        &format!("{SCOPE}: members: 1 member(s) given; a channel needs at least two VMs"),
    );
}

#[test]
fn backing_memory_that_does_not_fit() {
    // 64 MiB hypervisor region: 14 MiB are image, stacks and minimum heap.
    one_error(
        &with(&channel("ping", "0x0340_0000", &[&alpha(), &beta()])),
        &format!("{SCOPE}: size: the channels' backing memory up to this one (0x3400000 bytes) does not fit"),
    );
    // Several MiB fit.
    check(
        &with(&channel("ping", "0x0200_0000", &[&alpha(), &beta()])),
        BOARD,
    )
    .expect("32 MiB fit");
}

#[test]
fn shape_errors() {
    let a = member("alpha", "0x5000_0000", "wx", 48, "0x0a00_0000");
    one_error(
        &with(&channel("ping", "0x1000", &[&a, &beta()])),
        "error: configs/test.toml: channel \"ping\": members[0].access: unknown access \"wx\", expected \"rw\" or \"ro\"",
    );
    let sys = with("\n[[channel]]\nname = \"ping\"\nsize = 0x1000\ncolour = 1\n");
    let e = errors(&sys);
    assert!(
        e.iter()
            .any(|l| l.contains("channel \"ping\": colour: unknown field")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|l| l.contains("channel \"ping\": members: missing required field")),
        "{e:#?}"
    );
}

#[test]
fn duplicate_channel_names() {
    let first = channel("ping", "0x1000", &[&alpha(), &beta()]);
    let a = member("alpha", "0x6000_0000", "rw", 49, "0x0a00_1000");
    let b = member("beta", "0x6000_0000", "rw", 49, "0x0a00_1000");
    one_error(
        &with(&format!("{first}{}", channel("ping", "0x1000", &[&a, &b]))),
        &format!("{SCOPE}: name: \"ping\" is also the name of channel[0]"),
    );
}

#[test]
fn device_tree_describes_the_channel_for_uio() {
    let sys = with(&channel("ping", "0x40_0000", &[&alpha(), &beta()]));
    let (s, b) = check(&sys, BOARD).expect("valid");
    let chans = dt_channels(&s, "beta");
    assert_eq!(
        chans,
        [DtChannel {
            name: "ping".into(),
            id: 0,
            gpa: 0x5000_0000,
            size: 0x40_0000,
            doorbell: 0x0a00_0000,
            irq: 48,
            read_only: true,
        }]
    );
    let chosen = Chosen {
        channels: chans,
        ..Chosen::default()
    };
    let dtb = generate_dtb(&b, &s.vms[1], &chosen).unwrap();
    let fdt = fdt::Fdt::new(&dtb).unwrap();
    let shm = fdt
        .find_node("/reserved-memory/ivc-ping@50000000")
        .expect("reserved-memory node");
    assert!(shm.property("no-map").is_some());
    let reg: Vec<_> = shm.reg().unwrap().collect();
    assert_eq!(reg[0].starting_address as u64, 0x5000_0000);
    assert_eq!(reg[0].size, Some(0x40_0000));
    let uio = fdt.find_node("/ivc-ping@a000000").expect("uio node");
    assert_eq!(uio.compatible().unwrap().first(), "generic-uio");
    let reg: Vec<_> = uio.reg().unwrap().collect();
    assert_eq!(reg.len(), 2);
    assert_eq!(reg[0].starting_address as u64, 0x0a00_0000);
    assert_eq!(reg[0].size, Some(0x1000));
    assert_eq!(reg[1].starting_address as u64, 0x5000_0000);
    let irq = uio.property("interrupts").unwrap().value;
    let cells: Vec<u32> = irq
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(cells, [0, 16, 1], "SPI 48 - 32, rising edge");
    assert!(uio.property("tessera,read-only").is_some());
    // A VM in no channel gets neither node.
    let plain = generate_dtb(&b, &s.vms[0], &Chosen::default()).unwrap();
    let fdt = fdt::Fdt::new(&plain).unwrap();
    assert!(fdt.find_node("/reserved-memory").is_none());
}

/// On a GICv2 board a channel is checked against the VM's GICv2 frames (a
/// 4 KiB distributor, the 8 KiB CPU interface), not GICv3's larger ones.
#[test]
fn gicv2_vm_windows_are_its_own_frames() {
    let v2 = super::tests::gicv2_board();
    let next_to_gicc = member("alpha", "0x5000_0000", "rw", 48, "0x0801_2000");
    let sys = with(&channel("ping", "0x1000", &[&next_to_gicc, &beta()]));
    assert!(
        super::tests::errors_with(&sys, &v2).is_empty(),
        "{:#?}",
        super::tests::errors_with(&sys, &v2)
    );
    let inside_gicc = member("alpha", "0x5000_0000", "rw", 48, "0x0801_1000");
    let e = super::tests::errors_with(
        &with(&channel("ping", "0x1000", &[&inside_gicc, &beta()])),
        &v2,
    );
    assert_eq!(
        e,
        [format!(
            "{SCOPE}, vm \"alpha\": members[0].doorbell: guest window [0x8011000, 0x8012000) \
             overlaps the VM's devices.vgic.gicr_gpa [0x8010000, 0x8012000)"
        )]
    );
}
