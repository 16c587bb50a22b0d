//! Boot tests: each builds a Tessera image for a config, boots it in QEMU
//! and checks what the guests printed. Failures print the whole console.

use std::time::Duration;
use tessera_boot_tests::*;

/// Generous for TCG on a loaded 2-core machine; a healthy run takes seconds.
const DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn single_vm_runs_every_check_and_powers_off() {
    let image = build_ok("configs/qemu-virt-single.toml");
    let run = boot(&image, &[], DEADLINE);
    run.expect_line("[solo] vm id=0 vcpus=1 ram=33554432");
    let result = expect_testguest_pass(&run, "solo", 1);
    let off = run.expect_line("[tessera] vm solo: powered off");
    assert!(off > result);
    let summary = run.expect_prefix("[tessera] summary vm solo (powered-off, resets=0):");
    let line = run.lines()[summary];
    // The guest's own abort checks are the only unhandled exits.
    run.check(
        line.contains(" unhandled=3"),
        "summary counts the three injected aborts",
    );
    run.check(
        line.contains(" hypercall=") && line.contains(" mmio_write="),
        "summary has counters by kind",
    );
    run.expect_line("[tessera] all VMs powered off; system off");
    run.check(
        run.status == Some(0),
        "QEMU exits 0 after every VM powered off",
    );
}

#[test]
fn two_vms_run_side_by_side_on_disjoint_cores() {
    let image = build_ok("configs/qemu-virt-demo.toml");
    let run = boot(&image, &[], DEADLINE);
    run.expect_line("[alpha] vm id=0 vcpus=2 ram=33554432");
    run.expect_line("[beta] vm id=1 vcpus=1 ram=33554432");
    let alpha_done = expect_testguest_pass(&run, "alpha", 2);
    let beta_done = expect_testguest_pass(&run, "beta", 1);
    // Concurrency: each VM printed something before the other finished.
    let alpha_first = run.expect_prefix("[alpha] TEST ");
    let beta_first = run.expect_prefix("[beta] TEST ");
    run.check(
        alpha_first < beta_done && beta_first < alpha_done,
        "the two VMs run at the same time",
    );
    run.expect_prefix("[tessera] summary vm alpha (powered-off");
    run.expect_prefix("[tessera] summary vm beta (powered-off");
    run.check(
        run.status == Some(0),
        "QEMU exits 0 after every VM powered off",
    );
}

#[test]
fn stop_policy_contains_the_vm_and_the_other_runs_on() {
    let image = build_ok("tests/configs/stop-policy.toml");
    let run = boot(&image, &[], DEADLINE);
    // The victim's first unhandled access (its abort-outside-ram probe)
    // stops it: it never prints that check's result.
    let stopped = run.expect_line("[tessera] vm victim: stopped");
    run.check(
        !run.console.contains("[victim] TEST abort-outside-ram"),
        "victim stopped at its first unhandled access",
    );
    run.check(
        !run.console.contains("[victim] RESULT"),
        "victim never finished",
    );
    let warn = run.expect_prefix("[tessera] WARN: vm victim: unhandled");
    run.check(
        run.lines()[warn].ends_with("stopping VM"),
        "the log names the outcome",
    );
    let done = expect_testguest_pass(&run, "bystander", 2);
    run.check(
        stopped < done || run.console.contains("[tessera] vm bystander: powered off"),
        "bystander kept running",
    );
    run.expect_prefix("[tessera] summary vm victim (stopped");
    run.expect_prefix("[tessera] summary vm bystander (powered-off");
    run.expect_line("[tessera] all VMs ended, not all by powering off; exiting with failure");
    run.check(
        run.status == Some(1),
        "a run where a VM was stopped exits non-zero",
    );
}

#[test]
fn system_reset_reloads_only_that_vm() {
    let image = build_ok("tests/configs/reset.toml");
    let run = boot(&image, &[], DEADLINE);
    let first = run.expect_line("[resetter] RESET first boot");
    let reset = run.expect_line("[tessera] vm resetter: reset #1");
    let second = run.expect_line("[resetter] RESET boot after reset 1");
    run.check(
        first < reset && reset < second,
        "first boot, reset, second boot, in order",
    );
    run.expect_line("[resetter] TEST reset-clears-memory: PASS");
    run.expect_line("[resetter] RESULT: pass=1 fail=0");
    run.expect_prefix("[tessera] summary vm resetter (powered-off, resets=1):");
    run.check(run.status == Some(0), "QEMU exits 0");
}

#[test]
fn passthrough_uart_reaches_the_second_serial_port() {
    let image = build_ok("tests/configs/passthrough.toml");
    let out = std::env::temp_dir().join(format!("tessera-uart1-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let serial = format!("file:{}", out.display());
    let run = boot(&image, &["-serial", &serial], DEADLINE);
    run.expect_line("[uartpt] TEST passthrough-uart-mapped: PASS");
    run.expect_line("[uartpt] RESULT: pass=1 fail=0");
    run.check(run.status == Some(0), "QEMU exits 0");
    let uart1 = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    run.check(
        uart1.replace('\r', "") == "hello from uartguest through passthrough uart1\n",
        &format!("second serial port got {uart1:?}"),
    );
    run.expect_absent("[uartpt] hello from uartguest");
}

#[test]
fn config_with_a_shared_cpu_fails_the_build_naming_both_vms() {
    let b = build("tests/configs/bad-shared-cpu.toml");
    assert!(!b.success, "the build must fail:\n{}", b.log);
    assert!(
        b.log.contains("error: tests/configs/bad-shared-cpu.toml: vm \"alpha\" and vm \"beta\": phys_cpu_ids: CPU 1 is given to both"),
        "unexpected build output:\n{}",
        b.log
    );
}

#[test]
fn config_with_overlapping_memory_fails_the_build_naming_both_vms() {
    let b = build("tests/configs/bad-overlap-memory.toml");
    assert!(!b.success, "the build must fail:\n{}", b.log);
    assert!(
        b.log.contains("tests/configs/bad-overlap-memory.toml: vm \"alpha\" and vm \"beta\": memory_regions: host ranges"),
        "unexpected build output:\n{}",
        b.log
    );
}

/// The trap-cost benchmark is exact under icount: two runs give the same
/// numbers, and the targets of the design hold.
#[test]
fn bench_is_deterministic_and_meets_targets() {
    let image = build_ok("configs/qemu-virt-bench.toml");
    let icount = ["-icount", "shift=0,sleep=off"];
    let first = boot(&image, &icount, DEADLINE);
    let second = boot(&image, &icount, DEADLINE);
    let numbers = |run: &Run| -> Vec<(String, f64)> {
        run.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("[bench] BENCH "))
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.parse().ok()?))
            })
            .collect()
    };
    let (a, b) = (numbers(&first), numbers(&second));
    first.check(a.len() == 8, "eight BENCH lines");
    first.check(a == b, &format!("runs differ: {a:?} vs {b:?}"));
    let get = |op: &str| a.iter().find(|(o, _)| o == op).map(|p| p.1).unwrap();
    first.check(
        get("null-hypercall") <= 90.0,
        "null hypercall <= 90 instructions",
    );
    first.check(get("mmio-read") <= 140.0, "MMIO read <= 140 instructions");
    first.check(
        get("gicd-typer-read") <= 140.0,
        "GICD_TYPER read through the virtual distributor <= 140 instructions",
    );
    first.check(
        get("vtimer-latency") <= 150.0,
        "virtual timer interrupt latency <= 150 instructions",
    );
    first.check(first.status == Some(0), "bench run powers off cleanly");
}

/// The hypervisor checks the firmware's device tree against its board
/// description and refuses a machine that is smaller, before any VM runs.
#[test]
fn machine_smaller_than_the_board_description_is_refused() {
    let image = build_ok("configs/qemu-virt-single.toml");
    // A later -m / -smp overrides the harness's 1 GiB, 4 CPUs.
    let run = boot(&image, &["-m", "512M"], DEADLINE);
    run.expect_prefix(
        "[tessera] boot error: board RAM [0x40000000, 0x80000000) is not in the firmware's memory map",
    );
    run.expect_absent("[solo]");
    run.check(run.status == Some(2), "a boot error exits with status 2");
    let run = boot(&image, &["-smp", "2"], DEADLINE);
    run.expect_line("[tessera] boot error: firmware reports 2 CPUs, board qemu-virt describes 4");
    run.expect_absent("[solo]");
    run.check(run.status == Some(2), "a boot error exits with status 2");
}

#[test]
fn restart_policy_resets_the_vm_and_the_other_runs_on() {
    let image = build_ok("tests/configs/restart-policy.toml");
    let run = boot_until(
        &image,
        &[],
        DEADLINE,
        Some("[tessera] vm bystander: powered off"),
    );
    run.check(!run.timed_out, "the bystander powers off in time");
    let warn = run.expect_prefix("[tessera] WARN: vm victim: unhandled");
    run.check(
        run.lines()[warn].ends_with("restarting VM"),
        "the log names the outcome",
    );
    // Each restart reruns the victim from its entry point with fresh RAM.
    let first = run.expect_line("[tessera] vm victim: reset #1");
    let rerun = run.lines()[first..].contains(&"[victim] TEST console: PASS");
    run.check(rerun, "the victim runs again after its reset");
    run.check(
        !run.console.contains("[victim] RESULT"),
        "the victim never gets past its bad access",
    );
    expect_testguest_pass(&run, "bystander", 2);
}

#[test]
fn vgic_delivers_timer_and_sgis_and_enforces_interrupt_ownership() {
    let image = build_ok("tests/configs/vgic.toml");
    let run = boot(&image, &[], DEADLINE);
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
    // The three odd-width accesses got the VM's outcome (abort), logged.
    for what in [
        "1-byte MMIO read at 0x8000004",
        "8-byte MMIO read at 0x8000000",
        "2-byte MMIO write at 0x8000000",
    ] {
        run.check(
            run.console
                .contains(&format!("WARN: vm irq: unhandled {what}")),
            what,
        );
    }
    // The neighbour ran its own checks meanwhile.
    expect_testguest_pass(&run, "beta", 1);
    run.check(run.status == Some(0), "QEMU exits 0");
}
