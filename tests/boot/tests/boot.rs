//! Boot tests: each builds a Tessera image for a config, boots it in QEMU
//! and checks what the guests printed. Failures print the whole console.

use std::time::Duration;
use tessera_boot_tests::*;

/// Generous for TCG on a loaded 2-core machine; a healthy run takes seconds.
const DEADLINE: Duration = Duration::from_secs(180);
/// Two Linux boots under TCG with the rest of the suite running beside.
const LINUX_DEADLINE: Duration = Duration::from_secs(600);

/// A fresh scratch directory for one test.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

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
    // The guest's own abort checks, its PMU read (undefined without the
    // `pmu` grant) and its implementation-defined register read (TIDCP;
    // the other hidden features are undefined natively on cortex-a72) are
    // the only unhandled exits.
    run.check(
        line.contains(" unhandled=5"),
        "summary counts the three injected aborts, the PMU and IMPDEF undefs",
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
    // The victim stops at its ninth check; the bystander runs all 24
    // after it started: it must still finish after the stop.
    let bystander_off = run.expect_line("[tessera] vm bystander: powered off");
    run.check(
        stopped < done && done < bystander_off,
        "bystander kept running after the victim was stopped",
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

/// A board whose spare SPIs (inter-VM doorbell lines) lie past what the
/// GIC implements is refused at boot with one line, before any VM runs.
#[test]
fn spare_spis_the_gic_lacks_are_refused_at_boot() {
    let image = build_ok("tests/configs/spare-beyond-gic.toml");
    let run = boot(&image, &[], DEADLINE);
    run.expect_line(
        "[tessera] boot error: board qemu-virt-spare-beyond-gic gives doorbells spare SPIs \
         900..919, but the GIC implements INTIDs below 288 only",
    );
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

/// The default system: two Debian Linux VMs (2 vCPUs with a virtio disk;
/// 1 vCPU with the second PL011) and the bare-metal test guest, side by
/// side. Each Linux VM's init prints what it sees as `TESSERA ...` lines.
#[test]
fn two_linux_vms_and_a_bare_metal_vm_share_the_machine() {
    check_linux_system(DEFAULT_CPU);
}

/// The same system on QEMU's `-cpu max` (SVE, SME, MTE, PAuth, FGT, HCX...
/// shown by the hardware): Linux must find only features that work.
#[test]
fn linux_vms_boot_on_cpu_max() {
    check_linux_system("max");
}

fn check_linux_system(cpu: &str) {
    let image = build_ok("configs/qemu-virt-linux.toml");
    let dir = tempdir(&format!("linux-{cpu}"));
    let disk = dir.join("disk.img");
    let mut pattern = b"TESSERA-DISK-PATTERN\n".to_vec();
    pattern.resize(4 << 20, 0);
    std::fs::write(&disk, &pattern).expect("write disk image");
    let uart1 = dir.join("uart1.log");
    let serial = format!("file:{}", uart1.display());
    let drive = format!("file={},if=none,format=raw,id=d0", disk.display());
    let run = boot_cpu_until_all(
        &image,
        cpu,
        &[
            "-serial",
            &serial,
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=d0",
        ],
        LINUX_DEADLINE,
        &[
            "[linux0] Enter 'help' for a list of built-in commands.",
            "[linux1] Enter 'help' for a list of built-in commands.",
        ],
    );
    run.check(!run.timed_out, "both Linux VMs reach their shell in time");
    let fact = |vm: &str, key: &str| -> String {
        let prefix = format!("[{vm}] TESSERA {key} ");
        let i = run.expect_prefix(&prefix);
        run.lines()[i][prefix.len()..].trim().to_string()
    };
    // What the config gave each VM.
    run.check(fact("linux0", "nproc") == "2", "linux0 has 2 CPUs");
    run.check(fact("linux1", "nproc") == "1", "linux1 has 1 CPU");
    for vm in ["linux0", "linux1"] {
        run.check(
            fact(vm, "mem_dt_kb") == "262144",
            "the device tree gives 256 MiB",
        );
        let total: u64 = fact(vm, "memtotal_kb").parse().unwrap_or(0);
        run.check(
            (200_000..=262_144).contains(&total),
            "MemTotal is the config's 256 MiB less the kernel's own",
        );
        run.check(
            fact(vm, "timer-irqs-advance") == "yes",
            "timer interrupts advance",
        );
        run.expect_line(&format!(
            "[{vm}] Enter 'help' for a list of built-in commands."
        ));
    }
    // Devices reach only their VM.
    run.check(
        fact("linux0", "vda") == "pattern-ok",
        "linux0 reads its disk",
    );
    run.check(fact("linux1", "vda") == "absent", "linux1 has no disk");
    run.check(fact("linux1", "ttyAMA1") == "present", "linux1 has uart1");
    run.check(fact("linux0", "ttyAMA1") == "absent", "linux0 has no uart1");
    let uart1_text = std::fs::read_to_string(&uart1).unwrap_or_default();
    run.check(
        uart1_text.contains("TESSERA passthrough-uart hello"),
        "linux1's line reached QEMU's second serial port",
    );
    // IPIs between linux0's two vCPUs are counted; linux1 has none.
    let ipis: u64 = fact("linux0", "ipi-count").parse().unwrap_or(0);
    run.check(ipis > 0, "IPIs counted on the 2-vCPU VM");
    run.check(fact("linux1", "ipi-count") == "0", "no IPIs on 1 vCPU");
    // The ID registers show only what works: neither kernel touches a
    // register the hypervisor traps without emulating, and each uses the
    // features shown (pointer authentication exists on `max` only).
    let mut features = vec!["GIC system register CPU interface"];
    if cpu == "max" {
        features.push("Address authentication (IMP DEF algorithm)");
    }
    for vm in ["linux0", "linux1"] {
        run.expect_absent(&format!("WARN: vm {vm}: unhandled"));
        for feature in &features {
            let used = run.lines().iter().any(|l| {
                l.starts_with(&format!("[{vm}] "))
                    && l.ends_with(&format!("CPU features: detected: {feature}"))
            });
            run.check(used, &format!("{vm} uses {feature}"));
        }
    }
    // The bare-metal VM ran all its checks beside them.
    expect_testguest_pass(&run, "bm", 1);
}

/// QEMU's `-cpu max` shows every feature QEMU implements (SVE, SME, MTE,
/// PAuth, MOPS, NMI, FGT, HCX, VHE, RAS...): the hypervisor must hide or
/// support each, and the test guests must pass every check as on
/// cortex-a72, including after a VM reset.
#[test]
fn every_check_passes_on_cpu_max() {
    let image = build_ok("configs/qemu-virt-demo.toml");
    let run = boot_cpu(&image, "max", &[], DEADLINE);
    // The EL2 map's W^X and guard pages, checked with the MMU's own
    // translation at boot.
    run.expect_line(
        "[tessera] EL2 map: text RX, rodata R, data and all RAM RW XN, WXN on, 9 stack guard pages",
    );
    expect_testguest_pass(&run, "alpha", 2);
    expect_testguest_pass(&run, "beta", 1);
    run.check(run.status == Some(0), "QEMU exits 0 on -cpu max");
    let image = build_ok("tests/configs/reset.toml");
    let run = boot_cpu(&image, "max", &[], DEADLINE);
    run.expect_line("[resetter] RESULT: pass=1 fail=0");
    run.check(
        run.status == Some(0),
        "the reset guest powers off on -cpu max",
    );
}

#[test]
fn typed_input_reaches_only_the_selected_vm_and_the_hotkeys_move_it() {
    let image = build_ok("tests/configs/console-input.toml");
    // Each step waits for a prompt, a partial line: it must be on the
    // console before its newline exists.
    let run = boot_typing(
        &image,
        &[],
        DEADLINE,
        &[],
        &[
            Typing {
                after: "[left] echo> ",
                bytes: b"",
            },
            Typing {
                after: "[right] echo> ",
                bytes: b"hello\r",
            },
            Typing {
                after: "[left] echo: got hello",
                bytes: b"\x1c",
            },
            // Longer than the 32-entry receive FIFO: the rest waits in
            // the hypervisor until the guest reads.
            Typing {
                after: "[tessera] input: right",
                bytes: b"world-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789\roff\r",
            },
            // The monitor: list the VMs, move input on, leave.
            Typing {
                after: "[tessera] vm right: powered off",
                bytes: b"\x1dl",
            },
            Typing {
                after: "[tessera]   vm right: off",
                bytes: b"nq",
            },
            Typing {
                after: "[tessera] monitor closed; input: left",
                bytes: b"off\r",
            },
        ],
    );
    run.expect_line("[tessera] input: left (Ctrl-\\ moves it to the next VM)");
    let hello = run.expect_line("[left] echo: got hello");
    let to_right = run.expect_line("[tessera] input: right");
    let world =
        run.expect_line("[right] echo: got world-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789");
    let monitor = run.expect_prefix("[tessera] monitor: l = list VMs");
    run.expect_line("[tessera]   vm left: running, 1 vCPU(s), resets=0");
    run.expect_line("[tessera]   vm right: off, 1 vCPU(s), resets=0, has input");
    let to_left = run.expect_line("[tessera] input: left");
    let closed = run.expect_line("[tessera] monitor closed; input: left");
    let off = run.expect_line("[left] echo: got off");
    run.check(
        monitor < to_left && to_left < closed && closed < off,
        "monitor opened, moved input, closed, then input reached left",
    );
    run.expect_absent("echo: got l");
    run.expect_absent("echo: got nq");
    run.check(
        hello < to_right && to_right < world && world < to_left && to_left < off,
        "input moves left, right, left in order",
    );
    run.expect_absent("[right] echo: got hello");
    run.expect_absent("[left] echo: got world");
    run.expect_absent("\x1c");
    // The typed bytes were echoed on the prompt's line, tagged.
    run.check(
        run.lines()
            .iter()
            .any(|l| l.ends_with("hello") && l.starts_with("[left] ")),
        "the echo of the typed line is tagged with its VM",
    );
    run.expect_absent("echo: timeout");
    run.check(run.status == Some(0), "QEMU exits 0");
}

/// `make run`'s interaction: typed commands reach the Linux VM that has
/// input and only it; `Ctrl-\` moves input to the other one. Both shells
/// run `uname -a` and read `/proc/interrupts`; then linux0 waits in `ivc
/// recv` (blocked in `read()` on `/dev/uio0`) for the text linux1 sends
/// over their channel with `ivc send` (docs/IVC.md).
#[test]
fn typed_commands_reach_only_the_linux_vm_that_has_input() {
    let image = build_ok("configs/qemu-virt-linux.toml");
    // QEMU's second PL011 must exist: linux1 is given it.
    let run = boot_typing(
        &image,
        &["-serial", "null"],
        LINUX_DEADLINE,
        &["[linux0] hello from linux1, over the chat channel"],
        &[
            Typing {
                after: "[linux0] linux0:/root# ",
                bytes: b"uname -a; grep -c uart-pl011 /proc/interrupts; echo MARK-$((6*7))\r",
            },
            Typing {
                after: "[linux0] MARK-42",
                bytes: b"ivc recv\r",
            },
            Typing {
                after: "[linux0] ivc: waiting on uio0 (channel 0)",
                bytes: b"\x1c",
            },
            Typing {
                after: "[tessera] input: linux1",
                bytes: b"",
            },
            Typing {
                after: "[linux1] linux1:/root# ",
                bytes: b"uname -n; grep -c arch_timer /proc/interrupts; echo TYPED-$((2+3))\r",
            },
            Typing {
                after: "[linux1] TYPED-5",
                bytes: b"ivc send hello from linux1, over the chat channel\r",
            },
        ],
    );
    run.check(!run.timed_out, "both commands ran in time");
    run.expect_line("[tessera] input: linux0 (Ctrl-\\ moves it to the next VM)");
    run.expect_prefix("[linux0] Linux linux0 6.1.0-");
    // The console UART's interrupt is counted in linux0's /proc/interrupts.
    // The other VM's complete lines may land between two of this VM's
    // lines (the console keeps lines whole, not VMs apart): compare with
    // the same VM's previous line.
    let previous_of = |at: usize, tag: &str| {
        run.lines()[..at]
            .iter()
            .rev()
            .find(|l| l.starts_with(tag))
            .cloned()
            .unwrap_or_default()
    };
    let mark = run.expect_line("[linux0] MARK-42");
    run.check(
        previous_of(mark, "[linux0] ") == "[linux0] 1",
        "linux0 sees 1 uart-pl011 interrupt line",
    );
    let typed = run.expect_line("[linux1] TYPED-5");
    let count = previous_of(typed, "[linux1] ");
    run.check(
        count
            .strip_prefix("[linux1] ")
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1)),
        "linux1 counts its arch_timer interrupt lines",
    );
    run.expect_line("[linux1] linux1");
    let sent = run.expect_line("[linux1] ivc: sent 40 bytes on channel 0");
    let received = run.expect_line("[linux0] hello from linux1, over the chat channel");
    run.check(
        sent < received,
        "linux0 prints the text after linux1 sent it",
    );
    run.expect_absent("[linux1] MARK-42");
    run.expect_absent("[linux0] TYPED-5");
    run.expect_absent("[linux1] Linux linux0");
}
