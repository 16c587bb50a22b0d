//! x86_64 boot tests: each builds a GRUB ISO for a config, boots it in
//! Bochs (a CPU model with VMX and EPT) or QEMU, and checks the console.
//! Failures print the whole console. A Bochs boot takes about 7 s here.

use std::time::Duration;
use tessera_boot_tests::bochs::{boot_bochs, boot_bochs_typing, boot_qemu_x86, iso_ok};
use tessera_boot_tests::Run;

/// Generous for Bochs on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(240);

/// Every check of the x86 test guest, in order.
const GUEST_CHECKS: &[&str] = &[
    "cpuid-hypervisor-bit",
    "cpuid-vmx-hidden",
    "cpuid-apic-id",
    "cpuid-tessera-leaf",
    "port-io-uart-lsr",
    "port-io-uart-scratch",
    "port-io-absent-reads-ones",
    "port-io-rep-outsb",
    "vmcall-null",
    "vmcall-vm-info",
    "vmcall-unknown",
    "msr-disallowed-gp",
    "msr-efer-read",
    "msr-efer-write-nxe",
    "msr-efer-lme-refused",
    "outside-ram-gp",
    "mmio-load-32",
    "mmio-load-8-16",
    "mmio-store-32",
    "mmio-width-refused-gp",
    "mmio-unsupported-gp",
    "lapic-x2apic-mode",
    "mmio-xapic-gone-in-x2apic-mode",
    "timer-periodic-interrupts",
    "timer-held-while-cli",
    "timer-interrupts-busy-loop",
    "timer-tsc-deadline",
];

#[track_caller]
fn expect_no_failed_check(run: &Run, vm: &str) {
    let failed: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.starts_with(&format!("[{vm}] TEST ")) && !l.ends_with(": PASS"))
        .collect();
    run.check(
        failed.is_empty(),
        &format!("failed checks in {vm}: {failed:?}"),
    );
}

/// The checks of VM `vm`, in order; returns the index of its last check.
#[track_caller]
fn expect_guest_checks(run: &Run, vm: &str) -> usize {
    let mut last = run.expect_line(&format!("[{vm}] x86guest: hello from 64-bit mode"));
    run.expect_line(&format!(
        "[{vm}] x86guest: this line went out through rep outsb"
    ));
    for c in GUEST_CHECKS {
        let at = run.expect_line(&format!("[{vm}] TEST {c}: PASS"));
        run.check(at > last, &format!("check {c} of {vm} out of order"));
        last = at;
    }
    expect_no_failed_check(run, vm);
    // The deliberate faults are contained and logged, then #GP.
    run.expect_prefix(&format!(
        "[tessera] WARN: vm {vm}: unhandled RDMSR 0x3a (exit reason 31)"
    ));
    run.expect_prefix(&format!(
        "[tessera] WARN: vm {vm}: unhandled WRMSR 0xc0000080 <- 0x"
    ));
    run.expect_prefix(&format!(
        "[tessera] WARN: vm {vm}: unhandled EPT violation (read) at 0x2000000 (exit reason 48)"
    ));
    run.expect_prefix(&format!(
        "[tessera] WARN: vm {vm}: unhandled EPT violation (read) at 0xfee00030 (exit reason 48) at rip 0x"
    ));
    for why in [
        "(1-byte access refused by the device): #GP injected",
        "(8-byte access refused by the device): #GP injected",
        "(unsupported instruction Add): #GP injected",
    ] {
        run.check(
            run.lines().iter().any(|l| {
                l.starts_with(&format!("[tessera] WARN: vm {vm}: unhandled EPT violation"))
                    && l.ends_with(why)
            }),
            &format!("{vm}: an MMIO line ending {why:?}"),
        );
    }
    let off = run.expect_line(&format!("[tessera] vm {vm}: powered off"));
    run.check(off > last, "powered off after the checks");
    let summary = run.expect_prefix(&format!(
        "[tessera] summary vm {vm} (powered-off, resets=0):"
    ));
    let line = run.lines()[summary];
    // Emulated MMIO: 12 loads and 4 stores decoded (one of each width
    // refused by the xAPIC page, one load after the switch to x2APIC);
    // unhandled: 3 probes, 3 refused MMIO accesses and an ADD.
    for counter in [
        " hypercall=3",
        " power=1",
        " unhandled=7",
        " mmio_read=12",
        " mmio_write=4",
    ] {
        run.check(
            line.contains(counter),
            &format!("summary of {vm} has{counter}"),
        );
    }
    // CPUID x3, RDMSR x3 (one refused), WRMSR x2 (one refused), 17 APIC
    // MSR accesses and one EOI per timer interrupt (at least 8).
    run.check(
        counter(line, "sysreg").is_some_and(|n| n >= 33),
        "CPUID and every MSR access exit",
    );
    // At least 5 HLTs in the periodic check and one for the deadline.
    run.check(counter(line, "halt").is_some_and(|n| n >= 6), "HLT exits");
    // The held-back and busy-loop timers are preemption-timer exits.
    run.check(
        counter(line, "irq").is_some_and(|n| n >= 2),
        "preemption-timer exits",
    );
    run.check(
        counter(line, "port_io").is_some_and(|n| n > 100),
        "every COM1 byte and LSR poll is a port exit",
    );
    last
}

/// The value of `name=N` in a summary line.
fn counter(line: &str, name: &str) -> Option<u64> {
    line.split(&format!(" {name}="))
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn two_x86_vms_run_every_check_on_their_own_cpus_and_power_off() {
    let iso = iso_ok("configs/bochs-x86-demo.toml");
    let (run, took) = boot_bochs(&iso, DEADLINE);
    eprintln!("bochs boot of bochs-x86-demo took {took:?}");
    run.expect_line("[tessera] Tessera 0.1.0 on bochs-pc (2 CPUs, 2 VMs)");
    run.expect_line("[tessera] VMX root operation on CPU 0");
    run.expect_line("[tessera] VMX root operation on CPU 1");
    run.expect_line("[tessera] 1 of 1 other CPUs started");
    run.expect_line("[tessera] vm x86a: vCPU 0 starting on CPU 0 at 0x200000");
    run.expect_line("[tessera] vm x86b: vCPU 0 starting on CPU 1 at 0x200000");
    let a_done = expect_guest_checks(&run, "x86a");
    let b_done = expect_guest_checks(&run, "x86b");
    // Concurrency: each VM printed a check before the other finished.
    let a_first = run.expect_prefix("[x86a] TEST ");
    let b_first = run.expect_prefix("[x86b] TEST ");
    run.check(
        a_first < b_done && b_first < a_done,
        "the two VMs run at the same time",
    );
    run.expect_absent("still running after SYSTEM_OFF");
    run.expect_line("[tessera] all VMs powered off; system off");
    run.check(
        run.status == Some(0),
        "the run ends with every VM powered off",
    );
}

#[test]
fn x86_triple_fault_restarts_the_vm_alone() {
    let iso = iso_ok("tests/configs/x86-triple-fault-restart.toml");
    let (run, _) = boot_bochs(&iso, DEADLINE);
    let first = run.expect_line("[x86f] x86fault: first boot, triple-faulting");
    let warn = run
        .expect_prefix("[tessera] WARN: vm x86f: unhandled triple fault (exit reason 2) at rip 0x");
    run.check(
        run.lines()[warn].ends_with(": restarting VM"),
        "the policy is applied",
    );
    let reset = run.expect_line("[tessera] vm x86f: reset #1");
    let again = run.expect_line("[x86f] x86fault: boot after reset 1");
    run.expect_line("[x86f] TEST triple-fault-contained: PASS");
    run.check(
        first < warn && warn < reset && reset < again,
        "fault, reset, boot again",
    );
    run.expect_prefix("[tessera] summary vm x86f (powered-off, resets=1):");
    run.check(run.status == Some(0), "the VM powered off after its reset");
}

#[test]
fn x86_triple_fault_stops_the_vm_and_the_other_runs_on() {
    let iso = iso_ok("tests/configs/x86-triple-fault-stop.toml");
    let (run, _) = boot_bochs(&iso, DEADLINE);
    run.expect_line("[x86f] x86fault: first boot, triple-faulting");
    run.expect_prefix("[tessera] WARN: vm x86f: unhandled triple fault (exit reason 2)");
    run.expect_line("[tessera] vm x86f: stopped");
    run.expect_absent("boot after reset");
    // The VM on the other CPU is not disturbed.
    expect_guest_checks(&run, "bystander");
    run.expect_prefix("[tessera] summary vm x86f (stopped, resets=0):");
    run.expect_line("[tessera] all VMs ended, not all by powering off; exiting with failure");
    run.check(run.status == Some(1), "a stopped VM makes the run fail");
}

/// QEMU's TCG has no VMX: booted from the ISO by GRUB (BIOS or UEFI), the
/// hypervisor must say so in one line and halt.
#[track_caller]
fn expect_missing_vmx_reported(firmware: &[&str]) {
    let iso = iso_ok("configs/bochs-x86-demo.toml");
    let marker = "[tessera] boot error: this CPU has no VMX";
    let run = boot_qemu_x86(&iso, firmware, DEADLINE, marker);
    run.expect_line("[tessera] Tessera 0.1.0 on bochs-pc (2 CPUs, 2 VMs)");
    run.expect_line("[tessera] boot error: this CPU has no VMX (Intel VT-x): Tessera needs it");
    run.expect_absent("PANIC");
}

#[test]
fn x86_iso_boots_with_grub_on_seabios_and_reports_missing_vmx() {
    expect_missing_vmx_reported(&[]);
}

#[test]
fn x86_iso_boots_with_grub_on_uefi_and_reports_missing_vmx() {
    expect_missing_vmx_reported(&["-bios", "/usr/share/ovmf/OVMF.fd"]);
}

/// Bochs's TSC counts instructions, so the x86 bench guest's numbers are
/// exact: two runs print the same, and a VMCALL round trip stays cheap.
#[test]
fn x86_bench_is_deterministic() {
    let iso = iso_ok("configs/bochs-x86-bench.toml");
    let numbers = |run: &Run| -> Vec<(String, u64)> {
        run.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("[bench] BENCH "))
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.parse().ok()?))
            })
            .collect()
    };
    let (first, _) = boot_bochs(&iso, DEADLINE);
    let (second, _) = boot_bochs(&iso, DEADLINE);
    let (a, b) = (numbers(&first), numbers(&second));
    first.check(a.len() == 4, "four BENCH lines");
    first.check(a == b, &format!("runs differ: {a:?} vs {b:?}"));
    let vmcall = a.iter().find(|(op, _)| op == "vmcall-null").map(|p| p.1);
    first.check(
        vmcall.is_some_and(|n| (50..=200).contains(&n)),
        "a VMCALL round trip costs 50-200 instructions",
    );
    first.check(first.status == Some(0), "the bench VM powers off");
}

/// A VM with two vCPUs on two CPUs: vCPU 0 starts vCPU 1 with INIT and a
/// start-up IPI (real mode, through protected mode to long mode), IPIs go
/// both ways (one into a loop that never exits: only the hypervisor's
/// kick brings it in), and the VM powers off while vCPU 1 spins.
#[test]
fn x86_vm_starts_its_ap_with_init_sipi_and_exchanges_ipis() {
    let iso = iso_ok("tests/configs/x86-smp.toml");
    let (run, _) = boot_bochs(&iso, DEADLINE);
    run.expect_line("[smp] x86smp: vCPU 0 up, 2 vCPUs");
    let mut last = 0;
    for c in [
        "smp-ap-started-by-init-sipi",
        "smp-ipi-wakes-halted-ap",
        "smp-ipi-kicks-running-ap",
        "smp-ipi-to-bsp",
    ] {
        let at = run.expect_line(&format!("[smp] TEST {c}: PASS"));
        run.check(at > last, &format!("check {c} in order"));
        last = at;
    }
    expect_no_failed_check(&run, "smp");
    run.expect_line("[smp] x86smp: done, powering off with vCPU 1 spinning");
    run.expect_absent("still running after SYSTEM_OFF");
    let summary = run.expect_prefix("[tessera] summary vm smp (powered-off, resets=0):");
    // The kicks: one for the IPI into the spinning vCPU, one for the stop.
    run.check(
        counter(run.lines()[summary], "irq").is_some_and(|n| n >= 2),
        "kick exits counted",
    );
    run.expect_line("[tessera] all VMs powered off; system off");
    run.check(run.status == Some(0), "the VM powered off");
}

/// Console input on x86: bytes typed on the console's COM1 reach only the
/// VM that has input (the first one); Ctrl-\ moves input to the next.
#[test]
fn x86_typed_input_reaches_only_the_selected_vm_and_the_hotkey_moves_it() {
    let iso = iso_ok("tests/configs/x86-input.toml");
    let script = "expect [echoa] x86echo: ready\n\
                  expect [echob] x86echo: ready\n\
                  send hello\\r\n\
                  expect [echoa] x86echo: got 'hello'\n\
                  send \\x1c\n\
                  expect [tessera] input: echob\n\
                  send world\\r\n";
    let (run, _) = boot_bochs_typing(&iso, DEADLINE, Some(script));
    run.expect_line("[tessera] input: echoa (Ctrl-\\ moves it to the next VM)");
    let a = run.expect_line("[echoa] x86echo: got 'hello'");
    let switched = run.expect_line("[tessera] input: echob");
    let b = run.expect_line("[echob] x86echo: got 'world'");
    run.check(a < switched && switched < b, "hello, switch, world");
    run.expect_absent("[echob] x86echo: got 'hello'");
    run.check(run.status == Some(0), "both VMs powered off");
}

/// A VM given the machine's COM2 with its interrupt line (GSI 3) takes
/// COM2's transmit interrupts through its virtual I/O APIC, edge- and then
/// level-triggered, and writes a message to COM2 one byte per interrupt
/// from its handler: Bochs's COM2 file must hold it (only the handler
/// writes it, so it is there only if the interrupts arrived). The VM
/// beside it, without COM2, cannot program GSI 3 and gets no interrupt.
#[test]
fn x86_passthrough_com2_interrupts_reach_only_their_vm() {
    let iso = iso_ok("tests/configs/x86-irq.toml");
    let com2 = iso.with_extension("com2.log");
    let _ = std::fs::remove_file(&com2);
    let (run, _) = boot_bochs(&iso, DEADLINE);
    let written = std::fs::read(&com2)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    run.expect_line("[tessera] I/O APIC: 24 inputs, all masked until a VM unmasks its own");
    run.expect_line("[irqa] x86irq: COM2 is mine");
    run.expect_line("[irqb] x86irq: no COM2 here");
    let mut last = 0;
    for c in [
        "ioapic-version",
        "ioapic-entry-starts-masked",
        "ioapic-entry-programmed",
        "irq-edge-delivered",
        "irq-level-remote-irr-until-eoi",
        "irq-level-again-after-eoi",
        "irq-level-eoi-clears-remote-irr",
        "no-gp",
    ] {
        let at = run.expect_line(&format!("[irqa] TEST {c}: PASS"));
        run.check(at > last, &format!("check {c} of irqa in order"));
        last = at;
    }
    run.expect_line("[irqa] x86irq: 50 COM2 interrupts (edge), 49 bytes written by the handler");
    run.expect_line(
        "[irqa] x86irq: 2 COM2 interrupts (level), 2 with remote IRR set in the handler",
    );
    for c in [
        "ioapic-version",
        "ioapic-foreign-entry-reads-zero",
        "irq-not-delivered-to-other-vm",
        "no-gp",
    ] {
        run.expect_line(&format!("[irqb] TEST {c}: PASS"));
    }
    expect_no_failed_check(&run, "irqa");
    expect_no_failed_check(&run, "irqb");
    run.check(
        written == "tessera: COM2 written from its interrupt handler\n",
        &format!("Bochs's COM2 holds the handler's message, got {written:?}"),
    );
    // COM2's interrupts were external-interrupt exits of irqa only.
    let a = run.expect_prefix("[tessera] summary vm irqa (powered-off, resets=0):");
    run.check(
        counter(run.lines()[a], "irq").is_some_and(|n| n >= 52),
        "every COM2 interrupt is an exit of irqa",
    );
    // The edge phase halts before each next byte's interrupt (9600 baud):
    // a line arriving while the core waits in HLT must end it (without
    // that, the guest hangs after its first byte).
    run.check(
        counter(run.lines()[a], "halt").is_some_and(|n| n >= 25),
        "irqa halted while waiting for COM2",
    );
    let b = run.expect_prefix("[tessera] summary vm irqb (powered-off, resets=0):");
    run.check(
        counter(run.lines()[b], "irq") == Some(0),
        "no interrupt exit in irqb",
    );
    run.expect_line("[tessera] all VMs powered off; system off");
    run.check(run.status == Some(0), "both VMs powered off");
}

/// Two VMs play ping-pong over a static inter-VM channel for 1,000 rounds
/// (`tests/configs/x86-ivc.toml`, `guests/x86guest/src/bin/x86ivc.rs`):
/// each ring is an emulated MMIO write to the doorbell page that raises
/// the channel's vector in the peer's local APIC, waking it from HLT; every
/// message word is checked, every ring acknowledged through PENDING/ACK,
/// exactly one interrupt per ring, and a ring naming no member is refused
/// (#GP by the VMs' policy) without raising anything.
#[test]
fn x86_vms_play_ping_pong_over_a_static_channel() {
    let iso = iso_ok("tests/configs/x86-ivc.toml");
    let (run, _) = boot_bochs(&iso, DEADLINE);
    for (vm, me) in [("ping", 0), ("pong", 1)] {
        for c in [
            "doorbell-identity",
            "ping-pong",
            "one-interrupt-per-ring",
            "bad-ring-refused",
            "no-other-gp",
        ] {
            run.expect_line(&format!("[{vm}] TEST {c}: PASS"));
        }
        run.expect_line(&format!(
            "[{vm}] x86ivc: member {me}: 1000/1000 messages right, 1000 acknowledged, 1000 \
             doorbell interrupts"
        ));
        expect_no_failed_check(&run, vm);
        let at = run.expect_prefix(&format!(
            "[tessera] summary vm {vm} (powered-off, resets=0):"
        ));
        run.check(
            counter(run.lines()[at], "unhandled") == Some(1),
            &format!("{vm}: the bad ring is its one unhandled exit"),
        );
    }
    run.check(run.status == Some(0), "both VMs powered off");
}
