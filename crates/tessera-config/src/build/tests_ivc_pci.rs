//! Host tests of the `ivc-pci` emulated device: its rules (each error
//! naming file, VM or channel member, and field) and the PCI host bridge
//! node it puts in the VM's device tree.

use super::tests::{check, demo_with, errors, BOARD};
use super::*;

const PL011: &str = r#"emu_devices = [{ kind = "pl011", gpa = 0x0900_0000, size = 0x1000 }]"#;

/// The demo with alpha given the emulated devices `devices` (TOML inline
/// tables after its PL011) and a channel of `size` bytes between alpha
/// (at `gpa`, doorbell `bell`) and beta.
fn system(devices: &str, size: &str, gpa: &str, bell: &str) -> String {
    let alpha_devices = format!(
        "emu_devices = [{{ kind = \"pl011\", gpa = 0x0900_0000, size = 0x1000 }}, {devices}]"
    );
    format!(
        "{}\n[[channel]]\nname = \"ping\"\nsize = {size}\nmembers = [\n\
         {{ vm = \"alpha\", gpa = {gpa}, access = \"rw\", irq = 48, doorbell = {bell} }},\n\
         {{ vm = \"beta\", gpa = 0x5000_0000, access = \"ro\", irq = 49, doorbell = 0x0a00_0000 }},\n]\n",
        demo_with(PL011, &alpha_devices)
    )
}

const BRIDGE: &str = r#"{ kind = "ivc-pci", gpa = 0x3f00_0000, size = 0x10_0000 }"#;
const VM_SCOPE: &str = "error: configs/test.toml: vm \"alpha\": devices.emu_devices[1]";

fn cells(p: &[u8]) -> Vec<u32> {
    p.chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn bridge_node_describes_each_channel_as_a_function() {
    let sys = system(BRIDGE, "0x3000", "0x5000_0000", "0x0a80_0000");
    let (s, b) = check(&sys, BOARD).expect("valid");
    let chosen = Chosen {
        channels: dt_channels(&s, "alpha"),
        ..Chosen::default()
    };
    let dtb = generate_dtb(&b, &s.vms[0], &chosen).unwrap();
    let fdt = fdt::Fdt::new(&dtb).unwrap();
    let pci = fdt.find_node("/pcie@3f000000").expect("bridge node");
    assert_eq!(pci.compatible().unwrap().first(), "pci-host-ecam-generic");
    let reg: Vec<_> = pci.reg().unwrap().collect();
    assert_eq!(reg[0].starting_address as u64, 0x3f00_0000);
    assert_eq!(reg[0].size, Some(0x10_0000));
    assert_eq!(cells(pci.property("bus-range").unwrap().value), [0, 0]);
    // Doorbell page (64-bit memory), then the memory rounded up to 16 KiB
    // (64-bit prefetchable), each at the member's own address.
    assert_eq!(
        cells(pci.property("ranges").unwrap().value),
        [
            0x0300_0000,
            0,
            0x0a80_0000,
            0,
            0x0a80_0000,
            0,
            0x1000, //
            0x4300_0000,
            0,
            0x5000_0000,
            0,
            0x5000_0000,
            0,
            0x4000,
        ]
    );
    // Device 0, INTA -> SPI 48 - 32, level-high.
    assert_eq!(
        cells(pci.property("interrupt-map").unwrap().value),
        [0, 0, 0, 1, 1, 0, 16, 4]
    );
    assert_eq!(
        cells(pci.property("interrupt-map-mask").unwrap().value),
        [0xf800, 0, 0, 7]
    );
    let chosen = fdt.find_node("/chosen").unwrap();
    assert_eq!(
        cells(chosen.property("linux,pci-probe-only").unwrap().value),
        [1]
    );
    let gic = fdt.find_node("/intc@8000000").expect("gic");
    assert_eq!(cells(gic.property("#address-cells").unwrap().value), [0]);
    // The channel is not also described as a platform device.
    assert!(fdt.find_node("/ivc-ping@a800000").is_none());
    assert!(fdt.find_node("/reserved-memory").is_none());
}

#[test]
fn without_a_bridge_the_channel_stays_a_platform_device() {
    let sys = system(BRIDGE, "0x3000", "0x5000_0000", "0x0a80_0000");
    let (s, b) = check(&sys, BOARD).expect("valid");
    let chosen = Chosen {
        channels: dt_channels(&s, "beta"),
        ..Chosen::default()
    };
    let dtb = generate_dtb(&b, &s.vms[1], &chosen).unwrap();
    let fdt = fdt::Fdt::new(&dtb).unwrap();
    assert!(fdt.find_node("/ivc-ping@a000000").is_some());
    assert!(fdt.all_nodes().all(|n| !n.name.starts_with("pcie")));
    let chosen = fdt.find_node("/chosen").unwrap();
    assert!(chosen.property("linux,pci-probe-only").is_none());
}

#[test]
fn bridge_rules_name_the_field() {
    for (devices, field, message) in [
        (
            r#"{ kind = "ivc-pci", gpa = 0x3f00_0000, size = 0x2000 }"#,
            "size",
            "0x2000: an ivc-pci bridge's ECAM window is bus 0 only, 0x100000 bytes",
        ),
        (
            r#"{ kind = "ivc-pci", gpa = 0x3f08_0000, size = 0x10_0000 }"#,
            "gpa",
            "0x3f080000 is not 1 MiB aligned",
        ),
        (
            r#"{ kind = "ivc-pci", gpa = 0x3f00_0000, size = 0x10_0000, irq = 50 }"#,
            "irq",
            "an ivc-pci bridge has no interrupt of its own",
        ),
    ] {
        let e = errors(&system(devices, "0x4000", "0x5000_0000", "0x0a80_0000"));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with(&format!("{VM_SCOPE}.{field}: {message}")),
            "{e:#?}"
        );
    }
    let two = format!(r#"{BRIDGE}, {{ kind = "ivc-pci", gpa = 0x3e00_0000, size = 0x10_0000 }}"#);
    let e = errors(&system(&two, "0x4000", "0x5000_0000", "0x0a80_0000"));
    assert_eq!(
        e,
        [
            "error: configs/test.toml: vm \"alpha\": devices.emu_devices[2].kind: a VM has at \
          most one ivc-pci bridge; emu_devices[1] is one"
        ]
    );
}

#[test]
fn shared_memory_bar_must_be_aligned_and_its_tail_free() {
    let scope = "error: configs/test.toml: channel \"ping\", vm \"alpha\": members[0].gpa:";
    // 0x3000 bytes make a 0x4000-byte BAR: 0x5000_1000 is not aligned to it.
    let e = errors(&system(BRIDGE, "0x3000", "0x5000_1000", "0x0a80_0000"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(&format!(
            "{scope} 0x50001000: the VM presents its channels as PCI functions (ivc-pci), and \
             the shared-memory BAR (0x4000 bytes"
        )),
        "{e:#?}"
    );
    // The BAR's last page [0x5000_3000, 0x5000_4000) is the doorbell.
    let e = errors(&system(BRIDGE, "0x3000", "0x5000_0000", "0x5000_3000"));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(&format!(
            "{scope} the shared-memory BAR's tail [0x50003000, 0x50004000) (the size rounded up \
             to a power of two) overlaps channel \"ping\" doorbell [0x50003000, 0x50004000)"
        )),
        "{e:#?}"
    );
    // Without a bridge neither rule applies.
    let plain =
        system(BRIDGE, "0x3000", "0x5000_1000", "0x5000_4000").replace(&format!(", {BRIDGE}"), "");
    assert!(errors(&plain).is_empty(), "{:#?}", errors(&plain));
}
