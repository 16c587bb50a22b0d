//! Host tests of what Linux VMs need: the Image header and the boot-protocol
//! placement, generated device trees (parsed back with the `fdt` crate),
//! identity mapping and DMA masters, and the board rules the boot relies on
//! (GIC frames, EL2 map, MPIDRs, hypervisor room).

use std::path::Path;

use sha2::Digest as _;

use super::tests::{
    assert_error, board_errors, board_with, check, demo, demo_with, errors, errors_with,
    fake_image, linux_vm, repo_root, BOARD, BRD, SYS,
};
use super::*;
use crate::{MemoryRegion, RegionKind};

/// The shipped qemu-virt board (so its virtio and UART entries are tested).
const QEMU_VIRT: &str = include_str!("../../../../configs/boards/qemu-virt.toml");
const MIB: u64 = 1 << 20;

fn ram(gpa: u64, size: u64) -> MemoryRegion {
    MemoryRegion {
        gpa,
        hpa: gpa,
        size,
        kind: RegionKind::Ram,
    }
}

/// Files for a Linux VM: `build/linux/Image` is `kernel`, the initramfs is
/// `initramfs`, anything else 4 KiB of zeroes.
fn linux_files(
    kernel: Vec<u8>,
    initramfs: Vec<u8>,
) -> impl Fn(&str) -> Result<Option<Vec<u8>>, String> {
    move |p: &str| {
        Ok(Some(match p {
            "build/linux/Image" => kernel.clone(),
            "build/linux/initramfs.cpio.gz" => initramfs.clone(),
            _ => vec![0; 4096],
        }))
    }
}

fn linux_errors(sys: &str, board: &str, kernel: Vec<u8>) -> Vec<String> {
    match check_strs(SYS, sys, BRD, board, &linux_files(kernel, vec![7; 1000])) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// A one-VM Linux system on the shipped board: 2 vCPUs, 256 MiB identity
/// RAM at 0x5000_0000, `devices` appended to `[vm.devices]`.
fn linux_system(devices: &str) -> String {
    let vm = linux_vm(
        0,
        "linux0",
        "[0, 1]",
        "gpa = 0x5000_0000\nsize = 0x1000_0000\nidentity = true",
        "",
    );
    format!("board = \"boards/qemu-virt.toml\"\n{vm}{devices}\n")
}

// --- Image header --------------------------------------------------------------

#[test]
fn image_header_fields() {
    let h = parse_image_header(&fake_image(0x8_0000, 0x1234_0000, 0b1010, 64)).unwrap();
    assert_eq!(h.text_offset, 0x8_0000);
    assert_eq!(h.image_size, 0x1234_0000);
    assert!(!h.big_endian);
    assert_eq!(h.page_size, KernelPageSize::K4);
    assert!(h.anywhere);
    let h = parse_image_header(&fake_image(0, 1, 0b0111, 64)).unwrap();
    assert!(h.big_endian);
    assert_eq!(h.page_size, KernelPageSize::K64);
    assert!(!h.anywhere);
}

#[test]
fn image_header_refusals() {
    let err = |b: &[u8]| parse_image_header(b).unwrap_err();
    assert!(err(&[0x1f, 0x8b, 8, 0]).contains("gzip-compressed"));
    assert!(err(&[0; 10]).contains("too short"));
    assert!(err(&[0; 64]).contains("no \"ARM\\x64\" magic at offset 0x38"));
    assert!(err(&fake_image(0, 0, 0, 64)).contains("image_size 0"));
    assert!(err(&fake_image(0, 1, 0x10, 64)).contains("reserved"));
}

// --- Placement -------------------------------------------------------------------

#[test]
fn placement_follows_the_boot_protocol() {
    let h = parse_image_header(&fake_image(0x8_0000, 0x200_0000, 0, 64)).unwrap();
    // RAM not 2 MiB aligned: the kernel goes to the next 2 MiB boundary
    // plus text_offset; the lowest region is used whatever the order.
    let regions = [ram(0x6000_0000, 64 * MIB), ram(0x4010_0000, 64 * MIB - MIB)];
    let p = place_linux(&regions, &h, 0x10_0000, Some(0x1801)).unwrap();
    assert_eq!(p.region, 1);
    assert_eq!(p.kernel, 0x4020_0000 + 0x8_0000);
    assert_eq!(
        p.kernel_end,
        p.kernel + 0x200_0000,
        "image_size, BSS included"
    );
    assert_eq!(p.initramfs, Some((p.kernel_end, p.kernel_end + 0x1801)));
    // The device tree: the region's last whole 2 MiB block, 8-byte aligned.
    assert_eq!(p.dtb, 0x4400_0000 - 2 * MIB);
    assert_eq!(p.dtb % 8, 0);
    assert!(p.initramfs.unwrap().1 <= p.dtb);

    // A file longer than image_size counts with its length.
    let p = place_linux(&regions, &h, 0x300_0000, None).unwrap();
    assert_eq!(p.kernel_end, p.kernel + 0x300_0000);
    assert_eq!(p.initramfs, None);
}

#[test]
fn placement_that_does_not_fit_says_why() {
    let h = parse_image_header(&fake_image(0, 0x3e0_0000, 0, 64)).unwrap();
    let regions = [ram(0x4000_0000, 64 * MIB)];
    // 62 MiB kernel + 2 MiB device-tree block = 64 MiB: fits exactly.
    assert!(place_linux(&regions, &h, 64, None).is_ok());
    let e = place_linux(&regions, &h, 64, Some(1)).unwrap_err();
    assert!(
        e.contains("the kernel (0x3e00000 bytes), the initramfs (0x1 bytes) and a 2 MiB device-tree block do not fit in memory_regions[0]"),
        "{e}"
    );
}

// --- Kernel table by kind ------------------------------------------------------------

#[test]
fn kernel_fields_depend_on_kind() {
    let linux = linux_system("").replace(
        "kind = \"linux\"",
        "kind = \"linux\"\nkernel_load_addr = 0x5000_0000\nentry_point = 0x5000_0000",
    );
    let e = linux_errors(&linux, QEMU_VIRT, fake_image(0, MIB, 0, 64));
    assert_error(&e, "vm \"linux0\": vm.kernel.kernel_load_addr: not allowed: the load address comes from the Image header for kind = \"linux\"");
    assert_error(&e, "vm \"linux0\": vm.kernel.entry_point: not allowed");

    let bare = demo_with(
        "entry_point = 0x4000_0000",
        "entry_point = 0x4000_0000\nbootargs = \"quiet\"",
    );
    assert_error(
        &errors(&bare),
        "vm \"alpha\": vm.kernel.bootargs: not allowed: only for kind = \"linux\"",
    );
    let e = errors(&demo_with("kernel_path", "kind = \"windows\"\nkernel_path"));
    assert_error(
        &e,
        "vm \"alpha\": vm.kernel.kind: unknown kernel kind \"windows\", expected \"bare-metal\" or \"linux\"",
    );
    let explicit = demo_with("kernel_path", "kind = \"bare-metal\"\nkernel_path");
    assert!(errors(&explicit).is_empty());
}

#[test]
fn linux_kernel_checked_at_build() {
    let sys = linux_system("");
    assert!(linux_errors(&sys, QEMU_VIRT, fake_image(0, 16 * MIB, 0xa, 4096)).is_empty());

    let e = linux_errors(&sys, QEMU_VIRT, vec![0; 4096]);
    assert_error(&e, "error: configs/test.toml: vm \"linux0\": kernel.kernel_path: \"build/linux/Image\" is not an arm64 Image");
    let e = linux_errors(&sys, QEMU_VIRT, fake_image(0, MIB, 1, 4096));
    assert_error(
        &e,
        "vm \"linux0\": kernel.kernel_path: \"build/linux/Image\" is a big-endian kernel",
    );
    // image_size (BSS included) larger than the VM's RAM.
    let e = linux_errors(&sys, QEMU_VIRT, fake_image(0, 0x1000_0000, 0, 4096));
    assert_error(
        &e,
        "vm \"linux0\": kernel.kernel_path: the kernel (0x10000000 bytes)",
    );

    let missing =
        |p: &str| -> Result<Option<Vec<u8>>, String> { Err(format!("cannot read {p:?}")) };
    let e: Vec<String> = check_strs(SYS, &sys, BRD, QEMU_VIRT, &missing)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_error(
        &e,
        "vm \"linux0\": kernel.kernel_path: cannot read \"build/linux/Image\"",
    );
    assert_error(
        &e,
        "vm \"linux0\": kernel.initramfs_path: cannot read \"build/linux/initramfs.cpio.gz\"",
    );
}

#[test]
fn linux_console_needs_an_interrupt() {
    let sys = linux_system("").replace(", irq = 33", "");
    let e = linux_errors(&sys, QEMU_VIRT, fake_image(0, MIB, 0, 64));
    assert_error(
        &e,
        "vm \"linux0\": devices.emu_devices[0].irq: a Linux VM's PL011 needs an `irq`",
    );
}

#[test]
fn emulated_device_interrupts_checked() {
    let e = errors(&demo_with("size = 0x1000 }", "size = 0x1000, irq = 20 }"));
    assert_error(
        &e,
        "vm \"alpha\": devices.emu_devices[0].irq: INTID 20 is not an SPI",
    );
    let sys = demo_with(
        "size = 0x1000 }",
        "size = 0x1000, irq = 40 }]\npassthrough_devices = [{ name = \"uart1\" }",
    );
    assert_error(
        &errors(&sys),
        "vm \"alpha\": devices.passthrough_devices[0].irqs: INTID 40 is also the interrupt of devices.emu_devices[0].irq",
    );
}

// --- Identity mapping and DMA ------------------------------------------------------------

#[test]
fn identity_regions() {
    let sys = demo_with("hpa = 0x44000000", "identity = true");
    let s = parse_system(SYS, &sys).expect("hpa may be left out");
    assert_eq!(s.vms[0].memory_regions[0].hpa, 0x4000_0000);
    // Identity at gpa 0x4000_0000 is host 0x4000_0000: the hypervisor's.
    assert_error(
        &errors(&sys),
        "vm \"alpha\": memory_regions[0]: host range [0x40000000, 0x42000000) overlaps the hypervisor region",
    );
    let sys = demo_with(
        "gpa = 0x4000_0000\nhpa = 0x44000000",
        "gpa = 0x5000_0000\nhpa = 0x5000_1000\nidentity = true",
    );
    assert_error(
        &errors(&sys),
        "vm \"alpha\": vm.memory_regions[0].hpa: 0x50001000 differs from gpa 0x50000000 but identity = true",
    );
}

#[test]
fn dma_master_needs_identity_mapped_ram() {
    let sys = format!(
        "board = \"boards/qemu-virt.toml\"\n{}",
        super::tests::vm(0, "alpha", "[0]", 0x4800_0000)
    )
    .replace(
        "emu_devices",
        "passthrough_devices = [{ name = \"virtio-mmio3\" }]\nemu_devices",
    );
    let e = linux_errors(&sys, QEMU_VIRT, Vec::new());
    assert_eq!(
        e,
        vec![
            "error: configs/test.toml: vm \"alpha\": devices.passthrough_devices[0].name: \
              \"virtio-mmio3\" is a DMA master (board `dma = true`) but memory_regions[0] is \
              not identity-mapped (gpa 0x40000000 != hpa 0x48000000); without an IOMMU every \
              RAM region of its VM needs gpa == hpa (`identity = true`)"
        ]
    );
    let fixed = sys
        .replace(
            "gpa = 0x4000_0000\nhpa = 0x48000000",
            "gpa = 0x4800_0000\nidentity = true",
        )
        .replace(
            "kernel_load_addr = 0x4000_0000\nentry_point = 0x4000_0000",
            "kernel_load_addr = 0x4800_0000\nentry_point = 0x4800_0000",
        );
    assert_eq!(
        linux_errors(&fixed, QEMU_VIRT, Vec::new()),
        Vec::<String>::new()
    );
    // A device that is not a DMA master needs nothing of the kind.
    let uart = sys.replace("virtio-mmio3", "uart1");
    assert!(linux_errors(&uart, QEMU_VIRT, Vec::new()).is_empty());
}

// --- Board rules the boot relies on --------------------------------------------------------

#[test]
fn gicv2_vm_windows_are_4k_frames_and_at_most_8_vcpus() {
    let v2 = super::tests::gicv2_board();
    let sys = demo_with(
        "[vm.devices]",
        "[vm.devices]\nvgic = { gicd_gpa = 0x0800_0800, gicr_gpa = 0x0801_0000 }",
    );
    let e = errors_with(&sys, &v2);
    assert_error(&e, "devices.vgic.gicd_gpa: 0x8000800 is not 4 KiB aligned");
    let ok = demo_with(
        "[vm.devices]",
        "[vm.devices]\nvgic = { gicd_gpa = 0x0800_1000, gicr_gpa = 0x0801_0000 }",
    );
    assert!(
        errors_with(&ok, &v2).is_empty(),
        "{:?}",
        errors_with(&ok, &v2)
    );
}

#[test]
fn ram_banks_fit_the_el2_map() {
    let e = board_errors(&board_with(
        "base = 0x4000_0000\nsize = 0x4000_0000",
        "base = 0x4000_0000\nsize = 0x4010_0000",
    ));
    assert_error(
        &e,
        "board: memory[0]: [0x40000000, 0x80100000) is not 2 MiB aligned",
    );
    // RAM above 4 GiB is mapped (the 8 GB Raspberry Pi 4); the 39-bit map
    // ends at 512 GiB.
    let e = board_errors(&board_with(
        "base = 0x4000_0000\nsize = 0x4000_0000",
        "base = 0x4000_0000\nsize = 0xC020_0000",
    ));
    assert!(e.is_empty(), "{e:?}");
    let e = board_errors(&board_with(
        "base = 0x4000_0000\nsize = 0x4000_0000",
        "base = 0x4000_0000\nsize = 0x7F_C020_0000",
    ));
    assert_error(
        &e,
        "board: memory[0]: [0x40000000, 0x8000200000) ends above 0x8000000000, the end of the hypervisor's 39-bit EL2 map",
    );
}

#[test]
fn board_devices_stay_off_the_gic_frames() {
    // Redistributors of 4 CPUs: [0x080a_0000, 0x0812_0000).
    let e = board_errors(&board_with("base = 0x0905_0000", "base = 0x0811_0000"));
    assert_error(
        &e,
        "board: devices[1]: \"uart2\" [0x8110000, 0x8111000) overlaps the GIC frames of gic.gicr_base [0x80a0000, 0x8120000)",
    );
    let e = board_errors(&board_with("base = 0x0905_0000", "base = 0x0800_f000"));
    assert_error(
        &e,
        "overlaps the GIC frames of gic.gicd_base [0x8000000, 0x8010000)",
    );
    let e = board_errors(&board_with(
        "gicr_base = 0x080A_0000",
        "gicr_base = 0x0800_0000",
    ));
    assert_error(
        &e,
        "board: gic.gicr_base: redistributors [0x8000000, 0x8080000) overlap the distributor",
    );
    let e = board_errors(&board_with(
        "gicd_base = 0x0800_0000",
        "gicd_base = 0x0800_1000",
    ));
    assert_error(&e, "board: gic.gicd_base: 0x8001000 is not 64 KiB aligned");
    let e = board_errors(&board_with(
        "[console]\nbase = 0x0900_0000",
        "[console]\nbase = 0x080B_0000",
    ));
    assert_error(
        &e,
        "board: console: [0x80b0000, 0x80b1000) overlaps the GIC frames of gic.gicr_base",
    );
}

#[test]
fn vm_devices_stay_off_the_virtual_gic() {
    // alpha has 2 vCPUs: its redistributors are [0x080a_0000, 0x080e_0000).
    let e = errors(&demo_with("gpa = 0x0900_0000", "gpa = 0x080D_0000"));
    assert_error(
        &e,
        "vm \"alpha\": devices.emu_devices[0]: guest window [0x80d0000, 0x80d1000) overlaps devices.vgic.gicr_gpa [0x80a0000, 0x80e0000)",
    );
    // beta has 1 vCPU: the same window is free.
    let beta = demo();
    let beta = {
        let at = beta.rfind("gpa = 0x0900_0000").unwrap();
        format!("{}gpa = 0x080D_0000{}", &beta[..at], &beta[at + 17..])
    };
    assert!(errors(&beta).is_empty(), "{:?}", errors(&beta));
    // A VM may move its virtual GIC; the frames stay 64 KiB aligned.
    let moved = demo_with(
        "emu_devices",
        "vgic = { gicd_gpa = 0x0900_0000, gicr_gpa = 0x0a00_8000 }\nemu_devices",
    );
    let e = errors(&moved);
    assert_error(
        &e,
        "vm \"alpha\": devices.vgic.gicr_gpa: 0xa008000 is not 64 KiB aligned",
    );
    assert_error(
        &e,
        "vm \"alpha\": devices.emu_devices[0]: guest window [0x9000000, 0x9001000) overlaps devices.vgic.gicd_gpa [0x9000000, 0x9010000)",
    );
    let (s, b) = check(
        &demo_with(
            "emu_devices",
            "vgic = { gicd_gpa = 0x0600_0000, gicr_gpa = 0x0610_0000 }\nemu_devices",
        ),
        BOARD,
    )
    .expect("valid");
    assert_eq!(s.vms[0].vgic_layout(&b).gicr_gpa, 0x0610_0000);
    assert_eq!(s.vms[1].vgic_layout(&b).gicd_gpa, 0x0800_0000);
}

#[test]
fn mpidrs_the_routing_code_can_target() {
    let ok = board_with(
        "cpu_mpidrs = [0x0, 0x1, 0x2, 0x3]",
        "cpu_mpidrs = [0x0, 0x100, 0x1_0000, 0x1_0000_0000]",
    );
    assert!(board_errors(&ok).is_empty(), "{:?}", board_errors(&ok));
    let e = board_errors(&board_with(
        "cpu_mpidrs = [0x0, 0x1, 0x2, 0x3]",
        "cpu_mpidrs = [0x0, 0x1, 0x10, 0x8000_0000]",
    ));
    assert_error(&e, "board: cpu_mpidrs[2]: 0x10 has Aff0 16 > 15");
    assert_error(
        &e,
        "board: cpu_mpidrs[3]: 0x80000000 has bits outside Aff0..Aff3",
    );
}

#[test]
fn device_tree_fields_of_board_devices() {
    let b = board_with("irqs = [41, 42]", "irqs = [41, 42]\ndt_stride = 0x800");
    assert_error(
        &board_errors(&b),
        "board: devices[1].dt_stride: needs `compatible`",
    );
    let b = board_with(
        "irqs = [41, 42]",
        "irqs = [41, 42]\ncompatible = [\"x,y\"]\ndt_stride = 0x300",
    );
    assert_error(
        &board_errors(&b),
        "board: devices[1].dt_stride: 0x300 does not divide size 0x1000",
    );
    let b = board_with(
        "irqs = [41, 42]",
        "irqs = [41, 42]\ncompatible = [\"x,y\"]\ndt_stride = 0x400",
    );
    assert_error(
        &board_errors(&b),
        "board: devices[1].dt_stride: 4 devices of 0x400 bytes but 2 irqs",
    );
    let b = board_with("irqs = [41, 42]", "irqs = [41, 42]\ndma_coherent = true");
    assert_error(
        &board_errors(&b),
        "board: devices[1].dma_coherent: only meaningful for a DMA master",
    );
    let b = board_with("irqs = [41, 42]", "irqs = [41, 42]\nirq_trigger = \"both\"");
    assert_error(
        &board_errors(&b),
        "board: devices[1].irq_trigger: unknown trigger \"both\"",
    );
    let b = board_with("name = \"uart2\"", "name = \"uart 2\"").replacen(
        "irqs = [41, 42]",
        "irqs = [41, 42]\ncompatible = [\"arm,pl011\"]",
        1,
    );
    assert_error(
        &board_errors(&b),
        "board: devices[1].name: \"uart 2\" names its device-tree node",
    );
}

#[test]
fn hypervisor_region_holds_images_and_heap() {
    // 64 MiB region: 2 MiB offset + 4 MiB code + 8 MiB heap leave 50 MiB.
    let (sys, board) = check(&demo(), BOARD).unwrap();
    let files = |_: &str| Ok(Some(vec![0; 50 << 20]));
    assert!(plan((SYS, BRD), &sys, &board, &files, &|p| p.into()).is_ok());
    let files = |_: &str| Ok(Some(vec![0; (50 << 20) + 1]));
    let e = plan((SYS, BRD), &sys, &board, &files, &|p| p.into()).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "error: configs/boards/test.toml: board: hypervisor.size: 0x4000000 (64 MiB) cannot \
         hold what configs/test.toml needs: 2 MiB below the image + 4 MiB code and stacks + \
         51 MiB of embedded guest images + a 8 MiB heap = 65 MiB; grow the region (and \
         QEMU's -m with it)"
    );
}

// --- Embedding ---------------------------------------------------------------------------

#[test]
fn blobs_are_hashed_and_shared() {
    let sys = format!(
        "{}{}",
        linux_system(""),
        linux_vm(
            1,
            "linux1",
            "[2]",
            "gpa = 0x4000_0000\nhpa = 0x6000_0000\nsize = 0x1000_0000",
            ""
        )
    );
    let kernel = fake_image(0, 16 * MIB, 0, 4096);
    let files = linux_files(kernel.clone(), b"abc".to_vec());
    let (s, b) = check_strs(SYS, &sys, BRD, QEMU_VIRT, &files).expect("valid");
    let p = plan((SYS, BRD), &s, &b, &files, &|p| Path::new("/r").join(p)).unwrap();
    // Kernel and initramfs once each, one device tree per VM.
    let whats: Vec<&str> = p.blobs.iter().map(|b| b.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "build/linux/Image",
            "build/linux/initramfs.cpio.gz",
            "dtb of vm \"linux0\"",
            "dtb of vm \"linux1\""
        ]
    );
    assert_eq!(p.vms[0].images[0].blob, p.vms[1].images[0].blob);
    // SHA-256("abc"), FIPS 180-2 test vector.
    assert_eq!(
        hex_bytes(&p.blobs[1].sha256),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        p.blobs[0].sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(&kernel))
    );
    assert_eq!(
        p.blobs[0].source,
        Source::File("/r/build/linux/Image".into())
    );
    assert!(matches!(p.blobs[2].source, Source::Bytes(_)));
    // linux1's RAM starts at 0x4000_0000: its own placement.
    assert_eq!(p.vms[1].entry_point, 0x4000_0000);
    assert_eq!(p.vms[1].boot_arg, 0x4fe0_0000);
    assert_eq!(p.vms[0].entry_point, 0x5000_0000);
    assert_eq!(
        p.vms[0].images[1].gpa, 0x5100_0000,
        "initramfs after image_size"
    );
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn user_dtb_replaces_the_generated_one() {
    let sys = linux_system("").replace(
        "kind = \"linux\"",
        "kind = \"linux\"\ndtb_path = \"my.dtb\"",
    );
    let mut dtb = vec![0xd0, 0x0d, 0xfe, 0xed];
    dtb.resize(100, 0);
    let kernel = fake_image(0, MIB, 0, 64);
    let files = {
        let dtb = dtb.clone();
        let k = kernel.clone();
        move |p: &str| -> Result<Option<Vec<u8>>, String> {
            Ok(Some(match p {
                "my.dtb" => dtb.clone(),
                "build/linux/Image" => k.clone(),
                _ => vec![1; 10],
            }))
        }
    };
    let (s, b) = check_strs(SYS, &sys, BRD, QEMU_VIRT, &files).expect("valid");
    let p = plan((SYS, BRD), &s, &b, &files, &|p| p.into()).unwrap();
    let dtb_image = p.vms[0].images.iter().find(|i| i.name == "dtb").unwrap();
    assert_eq!(p.blobs[dtb_image.blob].what, "my.dtb");
    assert_eq!(p.vms[0].boot_arg, dtb_image.gpa);
    assert!(!p.blobs.iter().any(|b| b.what.starts_with("dtb of")));

    let bad = move |p: &str| -> Result<Option<Vec<u8>>, String> {
        Ok(Some(match p {
            "my.dtb" => vec![0; (2 << 20) + 1],
            "build/linux/Image" => kernel.clone(),
            _ => vec![1; 10],
        }))
    };
    let e: Vec<String> = check_strs(SYS, &sys, BRD, QEMU_VIRT, &bad)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_error(
        &e,
        "vm \"linux0\": kernel.dtb_path: \"my.dtb\" is not a flattened device tree",
    );
    assert_error(&e, "vm \"linux0\": kernel.dtb_path: \"my.dtb\" is 2097153 bytes; the arm64 boot protocol allows at most 2 MiB");
}

// --- The generated device tree --------------------------------------------------------------

fn be32s(v: &[u8]) -> Vec<u32> {
    v.chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn be64(v: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(v);
    u64::from_be_bytes(w)
}

/// The generated tree of the shipped Linux system's VM `vm`, parsed back.
fn shipped_dtb(vm: usize) -> (Vec<u8>, VmPlan) {
    let sys = std::fs::read_to_string(repo_root().join("configs/qemu-virt-linux.toml")).unwrap();
    let files = linux_files(fake_image(0, 20 * MIB, 0xa, 4096), vec![9; 5000]);
    let (s, b) = check_strs(SYS, &sys, BRD, QEMU_VIRT, &files).expect("valid");
    let p = plan((SYS, BRD), &s, &b, &files, &|p| p.into()).unwrap();
    let vp = p.vms[vm].clone();
    let dtb = vp.images.iter().find(|i| i.name == "dtb").unwrap();
    match &p.blobs[dtb.blob].source {
        Source::Bytes(bytes) => (bytes.clone(), vp),
        other => panic!("generated tree expected, got {other:?}"),
    }
}

#[test]
fn generated_tree_describes_linux0() {
    let (bytes, vp) = shipped_dtb(0);
    assert_eq!(vp.kind, crate::GuestKind::Linux);
    let fdt = fdt::Fdt::new(&bytes).expect("valid FDT");
    let root = fdt.find_node("/").unwrap();
    let prop = |node: &str, name: &str| {
        fdt.find_node(node)
            .unwrap_or_else(|| panic!("no node {node}"))
            .property(name)
            .unwrap_or_else(|| panic!("no {node} {name}"))
            .value
    };
    assert_eq!(root.property("#address-cells").unwrap().as_usize(), Some(2));
    assert_eq!(root.property("#size-cells").unwrap().as_usize(), Some(2));
    assert_eq!(fdt.root().compatible().first(), "linux,dummy-virt");
    assert_eq!(be32s(prop("/", "interrupt-parent")), [1]);

    // Memory: the VM's one region.
    let mem: Vec<_> = fdt.memory().regions().collect();
    assert_eq!(mem.len(), 1);
    assert_eq!(mem[0].starting_address as u64, 0x5000_0000);
    assert_eq!(mem[0].size, Some(0x1000_0000));

    // CPUs: one per vCPU, reg = vCPU index = virtual MPIDR Aff0, PSCI.
    let cpus: Vec<_> = fdt.cpus().collect();
    assert_eq!(cpus.len(), 2);
    for (i, c) in cpus.iter().enumerate() {
        assert_eq!(c.ids().first(), i);
        assert_eq!(c.property("enable-method").unwrap().as_str(), Some("psci"));
        assert_eq!(c.property("device_type").unwrap().as_str(), Some("cpu"));
    }
    let psci = fdt.find_node("/psci").unwrap();
    let compat: Vec<_> = psci.compatible().unwrap().all().collect();
    assert_eq!(compat, ["arm,psci-1.0", "arm,psci-0.2"]);
    assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));

    // GICv3 at the VM's layout: distributor 64 KiB, 2 redistributors.
    let gic = fdt.find_node("/intc@8000000").unwrap();
    assert_eq!(gic.compatible().unwrap().first(), "arm,gic-v3");
    assert!(gic.property("interrupt-controller").is_some());
    assert_eq!(
        gic.property("#interrupt-cells").unwrap().as_usize(),
        Some(3)
    );
    assert_eq!(
        gic.property("#redistributor-regions").unwrap().as_usize(),
        Some(1)
    );
    assert_eq!(be32s(gic.property("phandle").unwrap().value), [1]);
    let reg: Vec<_> = gic
        .reg()
        .unwrap()
        .map(|r| (r.starting_address as u64, r.size))
        .collect();
    assert_eq!(
        reg,
        [
            (0x0800_0000, Some(0x1_0000)),
            (0x080a_0000, Some(2 * 0x2_0000))
        ]
    );
    assert_eq!(vp.vgic.gicr_gpa, 0x080a_0000);

    // Timer: the four PPIs as QEMU gives them (secure, non-secure, virtual,
    // hypervisor), level high.
    let timer = fdt.find_node("/timer").unwrap();
    assert_eq!(timer.compatible().unwrap().first(), "arm,armv8-timer");
    assert_eq!(
        be32s(timer.property("interrupts").unwrap().value),
        [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
    );

    // The emulated console: PL011 + primecell, SPI 1 (INTID 33), both clocks
    // from the fixed clock.
    let clk = fdt.find_node("/apb-pclk").unwrap();
    assert_eq!(clk.compatible().unwrap().first(), "fixed-clock");
    assert_eq!(be32s(clk.property("phandle").unwrap().value), [2]);
    let uart = fdt.find_node("/pl011@9000000").unwrap();
    let compat: Vec<_> = uart.compatible().unwrap().all().collect();
    assert_eq!(compat, ["arm,pl011", "arm,primecell"]);
    assert_eq!(be32s(prop("/pl011@9000000", "interrupts")), [0, 1, 4]);
    assert_eq!(be32s(prop("/pl011@9000000", "clocks")), [2, 2]);
    assert_eq!(
        prop("/pl011@9000000", "clock-names"),
        b"uartclk\0apb_pclk\0"
    );
    let r = uart.reg().unwrap().next().unwrap();
    assert_eq!(
        (r.starting_address as u64, r.size),
        (0x0900_0000, Some(0x1000))
    );

    // virtio-mmio3: 8 transports of 0x200, INTIDs 72..=79 (SPI 40..=47),
    // rising edge, DMA-coherent; the disk's one at 0x0a00_3e00, INTID 79.
    let virtio: Vec<_> = fdt
        .all_nodes()
        .filter(|n| n.name.starts_with("virtio-mmio3@"))
        .collect();
    assert_eq!(virtio.len(), 8);
    for (i, n) in virtio.iter().enumerate() {
        let r = n.reg().unwrap().next().unwrap();
        assert_eq!(r.starting_address as u64, 0x0a00_3000 + i as u64 * 0x200);
        assert_eq!(r.size, Some(0x200));
        assert_eq!(n.compatible().unwrap().first(), "virtio,mmio");
        assert_eq!(
            be32s(n.property("interrupts").unwrap().value),
            [0, 40 + i as u32, 1]
        );
        assert!(n.property("dma-coherent").is_some());
    }
    assert!(fdt.find_node("/virtio-mmio3@a003e00").is_some());
    // Nothing of what linux1 owns.
    assert!(fdt.find_node("/uart1@9040000").is_none());

    // aliases and chosen.
    let aliases = fdt.aliases().unwrap();
    assert_eq!(aliases.resolve("serial0"), Some("/pl011@9000000"));
    assert_eq!(aliases.resolve("serial1"), None);
    let chosen = fdt.chosen();
    assert_eq!(
        chosen.bootargs(),
        Some("console=ttyAMA0 tessera.name=linux0")
    );
    assert_eq!(prop("/chosen", "stdout-path"), b"/pl011@9000000\0");
    let initramfs = vp.images.iter().find(|i| i.name == "initramfs").unwrap();
    assert_eq!(be64(prop("/chosen", "linux,initrd-start")), initramfs.gpa);
    assert_eq!(
        be64(prop("/chosen", "linux,initrd-end")),
        initramfs.gpa + 5000
    );
    // Entry and x0 as the boot protocol wants them.
    assert_eq!(vp.entry_point, 0x5000_0000);
    assert_eq!(vp.boot_arg, 0x5fe0_0000);
}

#[test]
fn generated_tree_describes_linux1_passthrough_uart() {
    let (bytes, _) = shipped_dtb(1);
    let fdt = fdt::Fdt::new(&bytes).expect("valid FDT");
    assert_eq!(fdt.cpus().count(), 1);
    let gic = fdt.find_node("/intc@8000000").unwrap();
    let reg: Vec<_> = gic.reg().unwrap().map(|r| r.size).collect();
    assert_eq!(reg, [Some(0x1_0000), Some(0x2_0000)]);
    let uart = fdt.find_node("/uart1@9040000").unwrap();
    let compat: Vec<_> = uart.compatible().unwrap().all().collect();
    assert_eq!(compat, ["arm,pl011", "arm,primecell"]);
    assert_eq!(be32s(uart.property("interrupts").unwrap().value), [0, 8, 4]);
    assert_eq!(be32s(uart.property("clocks").unwrap().value), [2, 2]);
    assert!(uart.property("dma-coherent").is_none());
    let aliases = fdt.aliases().unwrap();
    assert_eq!(aliases.resolve("serial0"), Some("/pl011@9000000"));
    assert_eq!(aliases.resolve("serial1"), Some("/uart1@9040000"));
    assert!(!fdt.all_nodes().any(|n| n.name.starts_with("virtio")));
    assert_eq!(
        fdt.chosen().bootargs(),
        Some("console=ttyAMA0 tessera.name=linux1")
    );
}

#[test]
fn stride_nodes_follow_the_routed_interrupts() {
    let sys = linux_system("passthrough_devices = [{ name = \"virtio-mmio3\", irqs = [79] }]");
    let files = linux_files(fake_image(0, MIB, 0, 64), vec![1; 10]);
    let (s, b) = check_strs(SYS, &sys, BRD, QEMU_VIRT, &files).expect("valid");
    let dtb = generate_dtb(&b, &s.vms[0], &Chosen::default()).unwrap();
    let fdt = fdt::Fdt::new(&dtb).unwrap();
    let names: Vec<_> = fdt
        .all_nodes()
        .filter(|n| n.name.starts_with("virtio"))
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["virtio-mmio3@a003e00"]);
    assert!(fdt
        .find_node("/chosen")
        .unwrap()
        .property("bootargs")
        .is_none());
}

// --- Shipped configs -------------------------------------------------------------------------

#[test]
fn shipped_linux_configs_are_valid() {
    for (name, vms) in [("qemu-virt-linux", 3), ("qemu-virt-linux-single", 1)] {
        let loaded = load(
            Path::new(&format!("configs/{name}.toml")),
            &repo_root(),
            Images::AllowMissing,
        );
        let config = loaded.result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(config.plan.vms.len(), vms);
        assert_eq!(config.qemu_memory(), "1024M");
        assert!(loaded
            .inputs
            .iter()
            .any(|p| p.ends_with("build/linux/initramfs.cpio.gz")));
        assert!(config
            .system_rs()
            .contains("kind: tessera_config::GuestKind::Linux"));
    }
}

#[test]
fn missing_linux_files_name_the_file_and_the_script() {
    let dir = std::env::temp_dir().join(format!("tessera-config-linux-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("configs/boards")).unwrap();
    std::fs::write(dir.join("configs/boards/qemu-virt.toml"), QEMU_VIRT).unwrap();
    std::fs::write(dir.join("configs/l.toml"), linux_system("")).unwrap();
    let e = load(Path::new("configs/l.toml"), &dir, Images::Require)
        .result
        .unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let e: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("error: configs/l.toml: vm \"linux0\": kernel.kernel_path: cannot read \"build/linux/Image\""), "{e:?}");
    assert!(
        e[0].ends_with(
            "fetch the Linux kernel and initramfs first (scripts/fetch-linux.sh; make does it)"
        ),
        "{e:?}"
    );
    assert!(
        e[1].contains("kernel.initramfs_path: cannot read \"build/linux/initramfs.cpio.gz\""),
        "{e:?}"
    );
}

#[test]
fn generated_tree_describes_a_gicv2_vm() {
    // The Linux VM of the fixture system on the GICv2 board, generated
    // directly.
    let board = crate::build::parse::parse_board(BRD, &super::tests::gicv2_board())
        .expect("GICv2 board parses");
    let sys = crate::build::parse::parse_system(SYS, &linux_system("")).expect("system parses");
    let vm = &sys.vms[0];
    let bytes = crate::build::dtb::generate(&board, vm, &Default::default()).unwrap();
    let fdt = fdt::Fdt::new(&bytes).expect("valid FDT");
    let gic = fdt.find_node("/intc@8000000").unwrap();
    let compat: Vec<_> = gic.compatible().unwrap().all().collect();
    assert_eq!(compat, ["arm,gic-400", "arm,cortex-a15-gic"]);
    assert!(gic.property("#redistributor-regions").is_none());
    let reg: Vec<_> = gic
        .reg()
        .unwrap()
        .map(|r| (r.starting_address as u64, r.size))
        .collect();
    assert_eq!(
        reg,
        [(0x0800_0000, Some(0x1000)), (0x0801_0000, Some(0x2000))]
    );
    // Two vCPUs: CPU mask 0b11 in bits 15:8 of each timer PPI's flags.
    let timer = fdt.find_node("/timer").unwrap();
    assert_eq!(
        be32s(timer.property("interrupts").unwrap().value),
        [1, 13, 0x304, 1, 14, 0x304, 1, 11, 0x304, 1, 10, 0x304]
    );
}
