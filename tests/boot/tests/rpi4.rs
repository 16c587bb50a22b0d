//! Raspberry Pi 4: the SD-card image `make image PLATFORM=rpi4` writes, and
//! boots on QEMU's `raspi4b` loaded as the Pi firmware would (EL2, the
//! board's device tree in x0, the other cores on the spin table, no PSCI).
//! What only a real board can show is listed in docs/RPI4.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tessera_boot_tests::*;

/// TCG on a loaded 2-core machine: a Linux boot with 3 vCPUs takes about a
/// minute alone.
const LINUX_DEADLINE: Duration = Duration::from_secs(600);
/// The bare-metal guests alone take seconds.
const DEADLINE: Duration = Duration::from_secs(180);

/// The board's device tree from Debian's arm64 kernel (fetched and cached
/// by scripts/fetch-rpi4.sh, which `make image` also runs).
fn pi_dtb() -> PathBuf {
    let (ok, log) = make(&["rpi4-assets"]);
    assert!(ok, "scripts/fetch-rpi4.sh failed:\n{log}");
    repo_root().join("build/rpi4/bcm2711-rpi-4-b.dtb")
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file of the card's FAT partition (mtools, no mounting).
fn fat_file(card: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("mtype")
        .args([
            "-i",
            &format!("{}@@1M", card.display()),
            &format!("::{name}"),
        ])
        .output()
        .expect("run mtype");
    assert!(out.status.success(), "no {name} on the card");
    out.stdout
}

/// `make image PLATFORM=rpi4`: one bootable FAT32 partition from 1 MiB with
/// the firmware, device tree, config.txt and the hypervisor (byte-identical
/// to the build's), and config.txt with the lines the boot depends on,
/// `kernel_address` equal to where the image is linked.
#[test]
fn sd_card_image_layout() {
    let (ok, log) = make(&["image", "PLATFORM=rpi4"]);
    assert!(ok, "make image PLATFORM=rpi4 failed:\n{log}");
    let dir = repo_root().join("build/aarch64/rpi4");
    let card = dir.join("sdcard.img");
    assert!(log.contains("sd card image:"), "{log}");
    assert_eq!(
        std::fs::metadata(&card).expect("card image").len(),
        128 << 20
    );

    // The partition table: MBR, one partition, FAT32 LBA, bootable.
    let table = tool("sfdisk", &["--dump", &card.display().to_string()]);
    assert!(table.contains("label: dos"), "{table}");
    let parts: Vec<&str> = table.lines().filter(|l| l.contains(" : start=")).collect();
    assert_eq!(parts.len(), 1, "{table}");
    let p = parts[0]
        .split(':')
        .nth(1)
        .unwrap_or_default()
        .replace(' ', "");
    assert_eq!(p, "start=2048,size=260096,type=c,bootable", "{table}");

    // The files, exactly what the firmware and the build produced.
    let listing = tool(
        "mdir",
        &["-b", "-i", &format!("{}@@1M", card.display()), "::"],
    );
    for name in [
        "start4.elf",
        "fixup4.dat",
        "bcm2711-rpi-4-b.dtb",
        "config.txt",
        "tessera.bin",
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("::/{name}"))),
            "{name} missing from the card: {listing}"
        );
    }
    let same = |on_card: &str, file: &Path| {
        let want = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            fat_file(&card, on_card) == want,
            "{on_card} on the card differs from {}",
            file.display()
        );
    };
    same("tessera.bin", &dir.join("tessera.bin"));
    let fw = repo_root().join("build/rpi4");
    same("start4.elf", &fw.join("start4.elf"));
    same("fixup4.dat", &fw.join("fixup4.dat"));
    same("bcm2711-rpi-4-b.dtb", &fw.join("bcm2711-rpi-4-b.dtb"));

    // config.txt: the lines that make the boot work.
    let config = String::from_utf8(fat_file(&card, "config.txt")).expect("text");
    let lines: Vec<&str> = config
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for want in [
        "arm_64bit=1",
        "kernel=tessera.bin",
        "kernel_address=0x200000",
        "device_tree=bcm2711-rpi-4-b.dtb",
        "device_tree_address=0x100000",
        "enable_uart=1",
        "init_uart_clock=48000000",
        "gpu_mem=76",
        "enable_gic=1",
    ] {
        assert!(
            lines.contains(&want),
            "config.txt lacks {want:?}:\n{config}"
        );
    }
    // Where the image is linked (its ELF entry) is where the firmware loads it.
    let elf = std::fs::read(dir.join("tessera.elf")).expect("tessera.elf");
    let entry = u64::from_le_bytes(elf[24..32].try_into().expect("ELF header"));
    assert_eq!(entry, 0x20_0000, "linked at board hypervisor.base + 2 MiB");
    // The arm64 Image header: branch, text_offset 0, the magic at 0x38.
    let bin = fat_file(&card, "tessera.bin");
    assert_eq!(&bin[0x38..0x3c], b"ARM\x64");
    assert_eq!(&bin[8..16], &[0; 8], "text_offset 0");
}

/// The default Pi system (configs/rpi4.toml) on QEMU raspi4b: CPUs 1-3
/// released from the spin table, the bare-metal guest's checks, and the
/// Linux VM (3 vCPUs on the virtual GIC-400) up to its shell, which answers
/// a command typed on the console.
#[test]
fn default_pi_system_boots_on_raspi4b() {
    let image = build_ok("configs/rpi4.toml");
    let dtb = pi_dtb();
    let dtb = dtb.display().to_string();
    let run = boot_machine_typing(
        &image,
        RASPI4B_MACHINE,
        &["-dtb", &dtb],
        LINUX_DEADLINE,
        &["[bm] RESULT:", "[linux] TESSERA-SHELL 42"],
        &[Typing {
            after: "[linux] BusyBox v",
            bytes: b"echo TESSERA-SHELL $((6 * 7))\n",
        }],
    );
    run.expect_line("[tessera] Tessera 0.1.0 on rpi4 (4 CPUs, 2 VMs)");
    run.expect_line("[tessera] console: PL011 UART0 on GPIO14/15 (functions 4, 4; 4 = ALT0)");
    // QEMU reports the Pi's 1 GB layout; no PSCI node, as on the Pi.
    run.expect_line("[tessera] firmware tree: 4 CPUs, memory [(0, 3c000000)], PSCI no");
    for (cpu, slot) in [(1, 0xe0), (2, 0xe8), (3, 0xf0)] {
        run.expect_line(&format!(
            "[tessera] CPU {cpu} (mpidr {cpu:#x}) released from the spin table at {slot:#x}"
        ));
    }
    expect_testguest_pass(&run, "bm", 1);
    let fact = |key: &str| -> String {
        let prefix = format!("[linux] TESSERA {key} ");
        let i = run.expect_prefix(&prefix);
        run.lines()[i][prefix.len()..].trim().to_string()
    };
    run.check(fact("nproc") == "3", "three vCPUs came up from PSCI CPU_ON");
    run.check(
        fact("timer-irqs-advance") == "yes",
        "timer interrupts advance through the GIC-400's list registers",
    );
    let ipis: u64 = fact("ipi-count").parse().unwrap_or(0);
    run.check(ipis > 0, "IPIs between the vCPUs are delivered");
    run.expect_line("[linux] TESSERA init-done");
    run.expect_line("[linux] TESSERA-SHELL 42");
    run.expect_absent("Oops");
    run.expect_absent("PANIC");
}

/// Bare-metal VMs on the Pi board under QEMU raspi4b: the irq guest's
/// virtual GIC-400 rules and the test guest's checks with two vCPUs (its
/// second core was released from the spin table); when both have powered
/// off, the hypervisor powers the machine off through the BCM2711 watchdog
/// (halt partition, full reset) and QEMU exits 0.
#[test]
fn bare_metal_vms_run_and_the_watchdog_powers_the_pi_off() {
    let image = build_ok("tests/configs/rpi4-bm.toml");
    let dtb = pi_dtb();
    let dtb = dtb.display().to_string();
    let run = boot_machine_until_all(
        &image,
        RASPI4B_MACHINE,
        DEFAULT_CPU,
        &["-dtb", &dtb],
        DEADLINE,
        &[],
    );
    run.check(!run.timed_out, "the run ends by itself in time");
    run.expect_line("[tessera] firmware tree: 4 CPUs, memory [(0, 3c000000)], PSCI no");
    for check in IRQ_GUEST_CHECKS {
        run.expect_line(&format!("[irq] TEST {check}: PASS"));
    }
    run.expect_line("[irq] RESULT: pass=7 fail=0");
    expect_testguest_pass(&run, "bm", 2);
    run.expect_line("[tessera] all VMs powered off; system off");
    run.check(
        run.status == Some(0),
        "QEMU exits 0: the watchdog's halt reached its power-management model",
    );
}

/// The 8 GB board (RAM above 4 GiB, a VM placed there) builds, and its EL2
/// map with the banks above 4 GiB installs and passes its protection
/// checks; QEMU raspi4b reports only the first GiB, so the boot then stops
/// with the firmware's memory map named, as on a Pi with less RAM than its
/// board file.
#[test]
fn eight_gb_board_maps_above_4_gib_and_refuses_a_smaller_machine() {
    let image = build_ok("tests/configs/rpi4-8g.toml");
    let dtb = pi_dtb();
    let dtb = dtb.display().to_string();
    let run = boot_machine_until_all(
        &image,
        RASPI4B_MACHINE,
        DEFAULT_CPU,
        &["-dtb", &dtb],
        DEADLINE,
        &["[tessera] boot error:"],
    );
    run.expect_line("[tessera] Tessera 0.1.0 on rpi4-8g (4 CPUs, 1 VMs)");
    run.expect_line(
        "[tessera] EL2 map: text RX, rodata R, data and all RAM RW XN, WXN on, 9 stack guard pages",
    );
    run.expect_line(
        "[tessera] boot error: board RAM [0x40000000, 0xfc000000) is not in the firmware's \
         memory map [(0, 3c000000)]",
    );
    run.expect_absent("[bm]");
}
