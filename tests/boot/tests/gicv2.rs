//! Boot tests on QEMU `virt` with a GICv2 (`gic-version=2`, virtualization
//! extensions on): the physical GICv2 driver, the GICv2 distributor
//! front-end and the guest's CPU interface on the GICV frame.

use std::time::Duration;
use tessera_boot_tests::*;

/// One Linux boot under TCG with other tests running beside.
const LINUX_DEADLINE: Duration = Duration::from_secs(600);

/// A 2-vCPU Linux VM boots to userspace through the virtual GICv2: its
/// timer interrupts advance, its vCPUs exchange IPIs (GICD_SGIR emulated
/// within the VM), its passthrough disk and UART interrupts (forwarded
/// SPIs) work, and it powers off cleanly.
#[test]
fn linux_vm_runs_on_a_gicv2() {
    let image = build_ok("configs/qemu-virt-gicv2-linux.toml");
    let dir = std::env::temp_dir().join(format!("tessera-gicv2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let disk = dir.join("disk.img");
    let mut pattern = b"TESSERA-DISK-PATTERN\n".to_vec();
    pattern.resize(4 << 20, 0);
    std::fs::write(&disk, &pattern).expect("write disk image");
    let uart1 = dir.join("uart1.log");
    let serial = format!("file:{}", uart1.display());
    let drive = format!("file={},if=none,format=raw,id=d0", disk.display());
    let run = boot_machine_until_all(
        &image,
        GICV2_MACHINE,
        DEFAULT_CPU,
        &[
            "-serial",
            &serial,
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=d0",
        ],
        LINUX_DEADLINE,
        &[],
    );
    run.check(!run.timed_out, "the run ends by itself in time");
    run.expect_line("[tessera] Tessera 0.1.0 on qemu-virt-gicv2 (4 CPUs, 1 VMs)");
    let fact = |key: &str| -> String {
        let prefix = format!("[linux] TESSERA {key} ");
        let i = run.expect_prefix(&prefix);
        run.lines()[i][prefix.len()..].trim().to_string()
    };
    // The guest found a GICv2 (not a GICv3) and used it.
    run.expect_absent("GICv3");
    run.expect_absent("Oops");
    run.check(fact("nproc") == "2", "both vCPUs came up");
    run.check(
        fact("timer-irqs-advance") == "yes",
        "timer interrupts advance through the list registers",
    );
    let ipis: u64 = fact("ipi-count").parse().unwrap_or(0);
    run.check(ipis > 0, "IPIs between the two vCPUs are delivered");
    // Forwarded SPIs: the disk (virtio, edge) and the second UART (level).
    run.check(fact("vda") == "pattern-ok", "the VM reads its disk");
    run.check(fact("ttyAMA1") == "present", "the VM has uart1");
    let uart1_text = std::fs::read_to_string(&uart1).unwrap_or_default();
    run.check(
        uart1_text.contains("TESSERA passthrough-uart hello"),
        "the VM's line reached QEMU's second serial port",
    );
    run.expect_line("[linux] TESSERA init-done");
    run.expect_line("[tessera] vm linux: powered off");
    run.expect_line("[tessera] all VMs powered off; system off");
    run.check(run.status == Some(0), "QEMU exits with status 0");
}

/// Generous for TCG on a loaded 2-core machine; a healthy run takes seconds.
const DEADLINE: Duration = Duration::from_secs(180);

/// The irq guest's checks through the GICv2 registers (it picks them from
/// the distributor's ICPIDR2): timer twice through the HW link, an SGI to
/// the other vCPU via GICD_SGIR, SGIs to CPUs beyond the VM ignored,
/// unowned SPIs/PPIs (enable, pend, priority, ITARGETSR) ignored, odd
/// widths refused, ISV=0 pair and writeback; the test guest beside it.
#[test]
fn irq_guest_checks_pass_on_a_gicv2() {
    let image = build_ok("tests/configs/vgic-gicv2.toml");
    let run = boot_machine_until_all(&image, GICV2_MACHINE, DEFAULT_CPU, &[], DEADLINE, &[]);
    for check in [
        "vgic-identity",
        "vtimer-interrupt",
        "sgi-to-other-vcpu",
        "sgi-to-foreign-cpus-ignored",
        "unowned-interrupts-ignored",
        "gicd-odd-widths",
        "gicd-isv0-pair-writeback",
    ] {
        run.expect_line(&format!("[irq] TEST {check}: PASS"));
    }
    run.expect_line("[irq] RESULT: pass=7 fail=0");
    expect_testguest_pass(&run, "beta", 1);
    run.check(run.status == Some(0), "QEMU exits 0");
}
