//! Boot tests of inter-VM channels (docs/IVC.md): two bare-metal VMs play
//! ping-pong over a static channel with doorbells, and a `ro` member's
//! write aborts in that VM alone while its peer carries on; channels
//! allocated at run time from a pool, with a VM outside the grant refused
//! and a VM reset releasing its channels.

use std::time::Duration;
use tessera_boot_tests::*;

/// Generous for TCG on a loaded 2-core machine; a healthy run takes seconds.
const DEADLINE: Duration = Duration::from_secs(180);

/// On a GICv3 board whose spare SPIs carry the doorbells
/// (`configs/boards/qemu-virt.toml`).
#[test]
fn two_vms_play_ping_pong_and_a_read_only_write_aborts() {
    let image = build_ok("tests/configs/ivc.toml");
    check_ping_pong(&boot(&image, &[], DEADLINE));
}

/// The same on a GICv2 board, its spare SPIs carrying the doorbells through
/// the GICv2 path (GICD_ISPENDR, GICC acknowledge, GICH list registers;
/// each line routed to its core once that core's CPU interface is known).
#[test]
fn two_vms_play_ping_pong_on_a_gicv2() {
    let image = build_ok("tests/configs/ivc-gicv2.toml");
    check_ping_pong(&boot_machine_until_all(
        &image,
        GICV2_MACHINE,
        DEFAULT_CPU,
        &[],
        DEADLINE,
        &[],
    ));
}

/// Ping and pong ran every check, 1,000 rounds and the latency bench;
/// pong's read-only write aborted pong alone; pong reset itself and the
/// channel survived.
fn check_ping_pong(run: &Run) {
    for check in [
        "doorbell-identity",
        "channel-scrubbed",
        "peer-ready",
        "ping-1000-rounds",
        "view-unchanged-by-ro-peer",
        "latency-runs",
        "peer-reset-keeps-channel",
        "no-stray-interrupts",
    ] {
        run.expect_line(&format!("[ping] TEST {check}: PASS"));
    }
    run.expect_line("[ping] RESULT: pass=8 fail=0");
    for check in [
        "doorbell-identity",
        "far-end-of-4mib-channel",
        "ro-view-write-aborts",
        "pong-1000-rounds",
        "no-stray-interrupts",
    ] {
        run.expect_line(&format!("[pong] TEST {check}: PASS"));
    }
    run.expect_line("[pong] RESULT: pass=5 fail=0");
    // Pong then resets its own VM: the channel keeps what both wrote and
    // the doorbells work both ways on its second boot.
    run.expect_line("[tessera] vm pong: reset #1");
    for check in ["channel-survives-reset", "doorbell-after-reset"] {
        run.expect_line(&format!("[pong] TEST {check}: PASS"));
    }
    run.expect_line("[pong] RESULT: pass=4 fail=0");
    // The write was reported as what it is (not as an MMIO access), and
    // got pong's outcome: an abort, pong alone.
    run.check(
        run.console
            .contains("WARN: vm pong: stage-2 permission fault: write at ipa 0x51000000"),
        "permission fault reported",
    );
    run.check(
        !run.console.contains("WARN: vm ping:"),
        "nothing unhandled in ping",
    );
    // The latency bench ran (its numbers mean instructions only under
    // `-icount`: `make bench` checks them).
    run.expect_prefix("[ping] BENCH ivc-latency-wfi ");
    run.expect_prefix("[ping] BENCH ivc-latency-spin ");
    // 1,000 ping-pong rounds, 64 latency repetitions and one ring after
    // the reset: 1,065 doorbell interrupts for ping, every one delivered.
    run.check(
        run.lines().iter().any(|l| {
            l.contains("summary vm ping (powered-off, resets=0)")
                && l.contains(" irq=1065 unhandled=0")
        }),
        "ping powered off after 1065 interrupts",
    );
    run.check(
        run.lines().iter().any(|l| {
            l.contains("summary vm pong (powered-off, resets=1)") && l.contains(" unhandled=1")
        }),
        "pong powered off after one reset and one abort",
    );
    run.check(run.status == Some(0), "QEMU exits 0");
}

#[test]
fn bad_channel_config_fails_the_build_naming_file_channel_vm_and_field() {
    let b = build("tests/configs/bad-ivc.toml");
    assert!(!b.success, "the build must fail:\n{}", b.log);
    for line in [
        "error: tests/configs/bad-ivc.toml: channel \"pingpong\", vm \"pong\": members[1].gpa: \
         guest window [0x41000000, 0x41400000) overlaps the VM's memory_regions[0]",
        "error: tests/configs/bad-ivc.toml: channel \"view\", vm \"pong\": members[1].irq: \
         INTID 48 is also the interrupt of channel \"pingpong\" members[1].irq",
        "error: tests/configs/bad-ivc.toml: channel_pool \"dyn\", vm \"ping\": members[0].window: \
         guest window [0x50000000, 0x50100000) overlaps channel \"pingpong\" members[0].gpa \
         [0x50000000, 0x50400000)",
        "error: tests/configs/bad-ivc.toml: channel_pool \"dyn\": max_per_vm: 3 is not in \
         1..=max_channels (2)",
    ] {
        assert!(b.log.contains(line), "missing {line:?} in:\n{}", b.log);
    }
}

/// A Linux VM and a bare-metal VM exchange 20 messages over a channel from
/// Linux userspace through the stock `uio_pci_generic` driver: the VM's
/// `ivc-pci` bridge presents the channel as a PCI function, its init binds
/// the driver (`guests/linux/ivc bind`) and blocks in `read()` on
/// `/dev/uio0` for each answer (a round counts only if the interrupt came
/// within 10 s and the answer is right), then acknowledges PENDING and
/// re-enables INTx through the config space.
#[test]
fn linux_userspace_exchanges_messages_with_a_bare_metal_vm() {
    let image = build_ok("tests/configs/ivc-linux.toml");
    let run = boot(&image, &[], Duration::from_secs(600));
    run.expect_line(
        "[linux] TESSERA ivc-channel uio0 channel=0 members=2 self=0 size=0x10000 \
         doorbell=0xa800000 shm=0x50000000",
    );
    run.expect_line("[linux] TESSERA ivc-echo 20/20 irqs=20");
    run.expect_line("[echo] TEST doorbell-identity: PASS");
    run.expect_line("[echo] TEST linux-echo: PASS");
    run.expect_line("[echo] RESULT: pass=2 fail=0");
    run.check(
        run.lines().iter().any(|l| {
            l.contains("summary vm echo (powered-off, resets=0)")
                && l.contains(" irq=20 unhandled=0")
        }),
        "echo took 20 doorbell interrupts",
    );
    run.check(run.status == Some(0), "QEMU exits 0");
}

/// Channels allocated at run time (`tests/configs/ivc-dynamic.toml`,
/// `guests/dynguest`): 1,000 allocate / attach / exchange / release
/// rounds with doorbells, every bad argument's code, the pool exhausted by
/// the per-VM limit, slots and bytes, a VM outside the grant refused, and
/// the owner's reset releasing its channels while the peer, rung, sees
/// `PEER_GONE`; after it the pool is back to its start.
#[test]
fn dynamic_channels_allocate_attach_release_and_a_reset_releases_them() {
    let image = build_ok("tests/configs/ivc-dynamic.toml");
    // A healthy run takes about 2 s of QEMU; a lost doorbell leaves a
    // guest in WFI, so the deadline is what bounds a failure.
    let run = boot(&image, &[], Duration::from_secs(90));
    run.expect_line("[outsider] TEST not-granted-vm-refused: PASS");
    run.expect_line("[outsider] RESULT: pass=1 fail=0");
    for check in [
        "pool-doorbell-identity",
        "pool-info",
        "bad-arguments",
        "alloc-attach-exchange-release-1000",
        "per-vm-limit",
        "owner-release-and-double-release",
        "peer-attached-before-reset",
        "no-stray-interrupts",
    ] {
        run.expect_line(&format!("[owner] TEST {check}: PASS"));
    }
    run.expect_line("[owner] RESULT: pass=8 fail=0");
    run.expect_line("[tessera] vm owner: reset #1");
    for check in [
        "reset-released-own-channels",
        "realloc-after-reset",
        "pool-back-to-start",
    ] {
        run.expect_line(&format!("[owner] TEST {check}: PASS"));
    }
    run.expect_line("[owner] RESULT: pass=5 fail=0");
    for check in [
        "pool-doorbell-identity",
        "attach-read-answer-release-1000",
        "pool-exhaustion",
        "attach-owners-channel",
        "peer-sees-owner-reset",
        "realloc-after-reset",
        "pool-back-to-start",
        "no-stray-interrupts",
    ] {
        run.expect_line(&format!("[peer] TEST {check}: PASS"));
    }
    run.expect_line("[peer] RESULT: pass=8 fail=0");
    // Reading a released channel's page aborted, once per boot in each
    // member (the page left stage 2 and the TLBs); nothing else was
    // unhandled.
    for (vm, resets) in [("owner", 1), ("peer", 0)] {
        run.check(
            run.lines().iter().any(|l| {
                l.contains(&format!("summary vm {vm} (powered-off, resets={resets})"))
                    && l.contains(" unhandled=2")
            }),
            &format!("{vm} powered off after two aborts"),
        );
    }
    run.check(
        run.lines().iter().any(|l| {
            l.contains("summary vm outsider (powered-off, resets=0)") && l.contains(" unhandled=0")
        }),
        "outsider powered off",
    );
    run.check(run.status == Some(0), "QEMU exits 0");
}
