//! A hostile guest, and the guests that watch it. One image, three roles
//! chosen by the VM id that VM_INFO reports:
//!
//! - id 0, **attacker**: runs the attack list of docs/SECURITY.md one by
//!   one and prints `ATTACK <name>: contained <what happened>` or
//!   `ATTACK <name>: BREACH <what happened>` for each; its last attack
//!   (a fault with no vector table) gets the VM restarted by its `on_fault`
//!   policy, after which it proves its core still serves it, writes its
//!   memory pattern and prints `HOSTILE DONE`.
//! - id 1, **neighbour**: writes its memory pattern, takes any interrupt
//!   (none should come), and prints a `HEARTBEAT` line every second with
//!   its VM's reset count, the longest stretch its loop was kept from
//!   running, whether its pattern is intact and how long the previous
//!   heartbeat line took to print.
//! - id 2, **cycler**: the cross-core lifecycle cases: resets while its
//!   second vCPU spins, waits in WFI, and traps on a device without pause;
//!   20 resets in a row; then a stop while the second vCPU spins.
//! - id 3 and 4, **stopped**: a stop (its first unhandled access, policy
//!   `stop-vm`) while the second vCPU waits in WFI (3) or traps on its
//!   UART without pause (4).
//!
//! - id 6, **flooder**: prints as fast as it can — 4 s of whole lines,
//!   then 4 s of one line that never ends — and reports its rate, while a
//!   neighbour's heartbeat says how long its own prints take.
//! - id 5, **overflower**: asks the hypervisor to overflow its own stack
//!   (the `FAULT_INJECT` hypercall of test builds); a normal build refuses.
//!
//! Patterns sit at [`PATTERN_OFFSET`] in RAM so the host can read both
//! VMs' host memory (QEMU monitor) and check each holds only its own.

#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use tessera_guest::exception::{guarded, probe_read32, probe_write32, Fault};
use tessera_guest::{cpu, exception, gic, hypercall, println, psci, smccc, smp, time, RAM_BASE};

tessera_guest::entry!(main);

/// Where the memory pattern starts (16 MiB into RAM, above the image).
const PATTERN_OFFSET: u64 = 16 << 20;
/// Pattern words, one every [`PATTERN_STRIDE`] bytes.
const PATTERN_WORDS: u64 = 32;
/// Distance between pattern words.
const PATTERN_STRIDE: u64 = 256 << 10;
/// Pattern tag of the attacker (high half of each word; low half = index).
const ATTACKER_TAG: u64 = 0xA77A_C4E5;
/// Pattern tag of the neighbour.
const NEIGHBOUR_TAG: u64 = 0x4E16_4B0A;
/// The emulated PL011 of every VM.
const UART: u64 = 0x0900_0000;
/// Host-physical bases of the other VMs' RAM and of the hypervisor in the
/// test configs, tried as guest-physical addresses.
const FOREIGN_IPAS: [(&str, u64); 4] = [
    ("hypervisor-region", 0x4400_0000),
    ("hypervisor-heap-end", 0x47F0_0000),
    ("neighbour-ram", 0x4A00_0000),
    ("checker-ram", 0x4C00_0000),
];
/// Trapping accesses of the flood, at least.
const FLOOD: u32 = 100_000;
/// Seconds the flood lasts at least.
const FLOOD_MIN_S: u64 = 3;
/// Unknown SMCs of the call flood.
const SMC_FLOOD: u32 = 10_000;
/// An IPA no VM has anything at.
const UNMAPPED: u64 = 0x0A00_0000;

fn main() -> ! {
    cpu::mask_all_exceptions();
    let info = match hypercall::vm_info() {
        Ok(i) => i,
        Err(e) => {
            println!("VM_INFO failed: {:#x}", e);
            psci::system_off()
        }
    };
    match info.id {
        0 => attacker(info.resets),
        1 => neighbour(info.resets),
        2 => cycler(info.resets),
        3 => stopped_while(Busy::Wfi),
        5 => overflow_the_hypervisor(),
        6 => flood_the_console(),
        _ => stopped_while(Busy::Trap),
    }
}

// ---------------------------------------------------------------- patterns

fn pattern_addr(i: u64) -> u64 {
    RAM_BASE + PATTERN_OFFSET + i * PATTERN_STRIDE
}

fn write_pattern(tag: u64) {
    for i in 0..PATTERN_WORDS {
        // SAFETY: inside the VM's 32 MiB RAM, above the image, aligned.
        unsafe { (pattern_addr(i) as *mut u64).write_volatile(tag << 32 | i) };
    }
}

fn pattern_intact(tag: u64) -> bool {
    // SAFETY: as in write_pattern.
    (0..PATTERN_WORDS)
        .all(|i| unsafe { (pattern_addr(i) as *const u64).read_volatile() } == tag << 32 | i)
}

// ---------------------------------------------------------------- attacker

/// Prints one attack's outcome.
fn report(name: &str, contained: bool, what: core::fmt::Arguments) {
    let verdict = if contained { "contained" } else { "BREACH" };
    println!("ATTACK {}: {} {}", name, verdict, what);
}

fn ec_of(f: Option<Fault>) -> i64 {
    f.map_or(-1, |f| f.ec() as i64)
}

/// One faulting-or-not load through `f` (a single instruction), as a
/// short outcome: `ok` or the exception class.
fn outcome(f: Option<Fault>) -> &'static str {
    match f.map(|f| f.ec()) {
        None => "completed",
        Some(0x00) => "undefined-instruction",
        Some(0x25) => "data-abort",
        Some(0x21) => "instruction-abort",
        Some(_) => "other-exception",
    }
}

fn attacker(resets: u64) -> ! {
    if resets > 0 {
        after_restart(resets);
    }
    write_pattern(ATTACKER_TAG);
    println!("HOSTILE start");
    attack_foreign_memory();
    attack_gic_distributor();
    attack_foreign_redistributors();
    attack_sgis();
    attack_psci();
    attack_call_sweep();
    attack_odd_accesses();
    attack_set_way();
    attack_sysregs();
    attack_flood();
    // Last: this one ends in the VM's restart.
    println!("ATTACK no-vector-table: starting (expect the VM to be restarted)");
    // SAFETY: deliberately breaks this vCPU's exception handling: the
    // hypervisor's on_fault policy is what ends this.
    unsafe { asm!("msr vbar_el1, xzr", "isb", options(nostack)) };
    // SAFETY: faults (no RAM there); with no vectors the guest cannot take it.
    let _ = unsafe { probe_read32(UNMAPPED) };
    report(
        "no-vector-table",
        false,
        format_args!("the faulting load completed"),
    );
    psci::system_off()
}

fn after_restart(resets: u64) -> ! {
    report(
        "no-vector-table",
        resets == 1,
        format_args!("VM restarted by on_fault (resets={})", resets),
    );
    // The core keeps serving this VM: a call and a trapped access work.
    let null = hypercall::null();
    let (_, f) = guarded(|| unsafe { probe_read32(UNMAPPED) });
    report(
        "core-still-served",
        null == 0 && ec_of(f) == 0x25,
        format_args!("hvc NULL x0={} unmapped load -> {}", null, outcome(f)),
    );
    write_pattern(ATTACKER_TAG);
    println!("HOSTILE DONE");
    loop {
        cpu::wfi();
    }
}

fn attack_foreign_memory() {
    for (name, ipa) in FOREIGN_IPAS {
        // SAFETY: single-instruction probes that must fault.
        let (r, rf) = guarded(|| unsafe { probe_read32(ipa) });
        let (_, wf) = guarded(|| unsafe { probe_write32(ipa, 0xdead_beef) });
        let contained = ec_of(rf) == 0x25 && ec_of(wf) == 0x25;
        println!(
            "ATTACK read-write-{}: {} {:#x}: read {} ({:#x}), write {}",
            name,
            if contained { "contained" } else { "BREACH" },
            ipa,
            outcome(rf),
            r,
            outcome(wf)
        );
    }
    // A sweep of the IPA space outside RAM and devices, 16 MiB apart.
    let mut faulted = 0;
    let mut tried = 0;
    let mut ipa = 0x4200_0000u64;
    while ipa < 0x1_0000_0000 {
        // SAFETY: as above.
        let (_, f) = guarded(|| unsafe { probe_read32(ipa) });
        tried += 1;
        faulted += (ec_of(f) == 0x25) as u32;
        ipa += 16 << 20;
    }
    report(
        "ipa-sweep",
        faulted == tried,
        format_args!("{} of {} loads outside RAM faulted", faulted, tried),
    );
}

fn attack_gic_distributor() {
    // SPIs this VM does not own (the UART1 and virtio ones, and a high one).
    let mut leaked = 0;
    let mut faults = 0;
    for intid in [33u64, 40, 48, 79, 100] {
        let bit = 1u32 << (intid % 32);
        let word = intid / 32 * 4;
        let probes = [
            (gic::gicd::ISENABLER + word, bit),
            (gic::gicd::ISPENDR + word, bit),
            (
                gic::gicd::IPRIORITYR + intid / 4 * 4,
                0x80u32 << (intid % 4 * 8),
            ),
            (gic::gicd::IROUTER + intid * 8, 1),
        ];
        for (off, value) in probes {
            let addr = gic::GICD_BASE + off;
            // SAFETY: the VM's own distributor; the write must be ignored.
            let (_, wf) = guarded(|| unsafe { probe_write32(addr, value) });
            // SAFETY: as above.
            let (back, rf) = guarded(|| unsafe { probe_read32(addr) });
            faults += wf.is_some() as u32 + rf.is_some() as u32;
            if rf.is_none() && back & value != 0 {
                leaked += 1;
            }
        }
    }
    report(
        "gicd-foreign-spis",
        leaked == 0,
        format_args!(
            "enable/pend/prio/route of 5 SPIs: {} took effect, {} faulted",
            leaked, faults
        ),
    );
}

fn attack_foreign_redistributors() {
    let mut faulted = 0;
    for frame in 1..8u64 {
        let rd = gic::GICR_BASE + frame * gic::GICR_STRIDE;
        // SAFETY: beyond this VM's redistributors: must fault.
        let (_, rf) = guarded(|| unsafe { probe_read32(rd + 0x8) });
        // SAFETY: as above.
        let (_, wf) = guarded(|| unsafe { probe_write32(rd + 0x14, 0) });
        faulted += (ec_of(rf) == 0x25) as u32 + (ec_of(wf) == 0x25) as u32;
    }
    report(
        "gicr-foreign-frames",
        faulted == 14,
        format_args!("{} of 14 accesses to frames 1-7 faulted", faulted),
    );
}

fn sysreg_write(which: u8, v: u64) {
    // SAFETY: SGI generation only; IRQs are masked here.
    unsafe {
        match which {
            0 => asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nostack)),
            1 => asm!("msr icc_asgi1r_el1, {}", "isb", in(reg) v, options(nostack)),
            _ => asm!("msr icc_sgi0r_el1, {}", "isb", in(reg) v, options(nostack)),
        }
    }
}

fn attack_sgis() {
    let mut faults = 0;
    for which in 0..3u8 {
        for aff1 in 0..4u64 {
            for intid in [0u64, 1, 7, 15] {
                // Every target in the list, then broadcast (IRM).
                let list = intid << 24 | aff1 << 16 | 0xffff;
                let (_, f) = guarded(|| sysreg_write(which, list));
                let (_, g) = guarded(|| sysreg_write(which, intid << 24 | 1 << 40));
                faults += f.is_some() as u32 + g.is_some() as u32;
            }
        }
    }
    report(
        "sgi-to-foreign-cpus",
        faults == 0,
        format_args!(
            "96 SGIs via SGI1R/ASGI1R/SGI0R to all affinities, {} faulted",
            faults
        ),
    );
}

fn attack_psci() {
    let mut ok = true;
    for mpidr in [1u64, 2, 3, 0x100, 0x1_0000, 0x1_0000_0000] {
        // SAFETY: each call must be refused; no vCPU starts.
        let on = unsafe { psci::cpu_on(mpidr, RAM_BASE, 0) };
        let aff = psci::affinity_info(mpidr);
        ok &= on == psci::INVALID_PARAMETERS && aff == psci::INVALID_PARAMETERS;
    }
    let mut bad_entry = true;
    for (_, entry) in FOREIGN_IPAS {
        // SAFETY: refused: the entry point is not this VM's RAM.
        bad_entry &= unsafe { psci::cpu_on(0, entry, 0) } == psci::INVALID_ADDRESS;
    }
    report(
        "psci-foreign",
        ok && bad_entry,
        format_args!(
            "6 foreign MPIDRs refused: {}, foreign entry points refused: {}",
            ok, bad_entry
        ),
    );
}

/// Calls that end or suspend the caller by design (the sweep skips them).
fn ends_the_caller(fid: u64) -> bool {
    matches!(
        fid & !0x4000_0000,
        0x8400_0001 | 0x8400_0002 | 0x8400_0008 | 0x8400_0009 | 0x8400_000E | 0x8400_0012
    )
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
}

fn attack_call_sweep() {
    let mut rng = Lcg(0x7e55e4a);
    let mut calls = 0u32;
    let mut faults = 0u32;
    let mut not_supported = 0u32;
    let ranges = [
        (0x8000_0000u64, 0x100u64),
        (0x8400_0000, 0x40),
        (0xC400_0000, 0x40),
        (0x8600_0000, 0x40),
        (0xC600_0000, 0x40),
        (0xBF00_0000, 0x40),
    ];
    let mut one = |fid: u64, rng: &mut Lcg| {
        if ends_the_caller(fid) {
            return;
        }
        let (a, b, c) = (rng.next(), rng.next(), rng.next());
        // SAFETY: garbage calls; each must return with an error or a value.
        let (r, f) = guarded(|| unsafe { smccc::hvc(fid, a, b, c) });
        // SAFETY: as above, through the SMC conduit.
        let (s, g) = guarded(|| unsafe { smccc::smc(fid, a, b, c) });
        calls += 2;
        faults += f.is_some() as u32 + g.is_some() as u32;
        not_supported +=
            (r.x0 == smccc::NOT_SUPPORTED) as u32 + (s.x0 == smccc::NOT_SUPPORTED) as u32;
    };
    for (base, n) in ranges {
        for i in 0..n {
            one(base + i, &mut rng);
        }
    }
    for _ in 0..2000 {
        let fid = rng.next() & 0xffff_ffff;
        one(fid, &mut rng);
    }
    report(
        "smc-hvc-sweep",
        faults == 0,
        format_args!(
            "{} garbage calls returned ({} NOT_SUPPORTED), {} raised",
            calls, not_supported, faults
        ),
    );
}

/// One odd access kind at `addr`.
fn odd(kind: u8, addr: u64) -> Option<Fault> {
    // SAFETY: single-instruction accesses to this VM's own emulated devices
    // (reads, or writes of zero to a harmless register); a fault is skipped.
    let ((), f) = guarded(|| unsafe {
        match kind {
            0 => asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack)),
            1 => asm!("ldrh {v:w}, [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack)),
            2 => asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack)),
            3 => {
                asm!("ldp {v:w}, {w:w}, [{a}]", a = in(reg) addr, v = out(reg) _, w = out(reg) _, options(nostack))
            }
            4 => {
                asm!("ldr {v:w}, [{a}, #4]!", a = inout(reg) addr => _, v = out(reg) _, options(nostack))
            }
            5 => asm!("ldxr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack)),
            6 => asm!("ldr {v:w}, [{a}]", a = in(reg) addr + 1, v = out(reg) _, options(nostack)),
            7 => asm!("dc zva, {a}", a = in(reg) addr, options(nostack)),
            // LD1 {v0.16b}, [x9], as a raw encoding: the soft-float target
            // cannot name vector registers, and nothing here uses them.
            _ => asm!(".inst 0x4c407120", in("x9") addr, options(nostack)),
        }
    });
    f
}

const ODD_KINDS: [&str; 9] = [
    "ldrb",
    "ldrh",
    "ldr-x",
    "ldp",
    "ldr-writeback",
    "ldxr",
    "unaligned",
    "dc-zva",
    "simd-ld1",
];

fn attack_odd_accesses() {
    // LD1 needs FP/SIMD on at EL1 (CPACR_EL1.FPEN).
    // SAFETY: enables FP/SIMD for this vCPU; nothing else changes.
    unsafe {
        asm!("mrs {t}, cpacr_el1", "orr {t}, {t}, #(3 << 20)", "msr cpacr_el1, {t}", "isb", t = out(reg) _, options(nostack))
    };
    for (dev, base) in [
        ("uart", UART),
        ("gicd", gic::GICD_BASE),
        ("gicr", gic::GICR_BASE),
    ] {
        for (kind, name) in ODD_KINDS.iter().enumerate() {
            let f = odd(kind as u8, base + 0x40);
            println!(
                "ATTACK odd-access {} {}: contained {}",
                dev,
                name,
                outcome(f)
            );
        }
    }
}

fn attack_set_way() {
    let mut faults = 0;
    for level in 0..2u64 {
        for way_set in [0u64, 1 << 6, 3 << 30] {
            let op = level << 1 | way_set;
            // SAFETY: trapped set/way maintenance, served as clean+invalidate
            // of the VM's own memory.
            let ((), f) = guarded(|| unsafe {
                asm!("dc cisw, {}", "dc csw, {}", "dc isw, {}", in(reg) op, in(reg) op, in(reg) op, options(nostack))
            });
            faults += f.is_some() as u32;
        }
    }
    report(
        "set-way",
        faults == 0,
        format_args!("18 set/way operations served, {} faulted", faults),
    );
}

fn attack_sysregs() {
    // SAFETY (each): a read of a trapped or absent register; an
    // undefined-instruction exception is skipped.
    let impdef = [
        guarded(|| unsafe { asm!("mrs {}, s3_1_c15_c2_0", out(reg) _, options(nostack)) }).1,
        guarded(|| unsafe { asm!("mrs {}, s3_0_c15_c0_0", out(reg) _, options(nostack)) }).1,
        guarded(|| unsafe { asm!("msr s3_1_c15_c2_0, xzr", options(nostack)) }).1,
    ];
    let pmu = [
        guarded(|| unsafe { asm!("mrs {}, pmcr_el0", out(reg) _, options(nostack)) }).1,
        guarded(|| unsafe { asm!("mrs {}, pmccntr_el0", out(reg) _, options(nostack)) }).1,
    ];
    let mut dbg = 0u64;
    let (_, df) = guarded(|| unsafe {
        asm!("msr dbgbvr0_el1, {v}", "mrs {v}, dbgbvr0_el1", v = inout(reg) 0x4000_0000u64 => dbg, options(nostack))
    });
    let undef = |f: &Option<Fault>| ec_of(*f) == 0;
    report(
        "impdef-sysregs",
        impdef.iter().all(undef),
        format_args!(
            "3 accesses -> {} undefined",
            impdef.iter().filter(|f| undef(f)).count()
        ),
    );
    report(
        "pmu-sysregs",
        pmu.iter().all(undef),
        format_args!("PMCR/PMCCNTR -> {} {}", outcome(pmu[0]), outcome(pmu[1])),
    );
    report(
        "debug-sysregs",
        df.is_none() && dbg == 0,
        format_args!(
            "DBGBVR0 write then read -> {} value {:#x}",
            outcome(df),
            dbg
        ),
    );
}

fn attack_flood() {
    println!("ATTACK trap-flood: starting");
    let start = cpu::cntvct();
    let min_ticks = FLOOD_MIN_S * cpu::cntfrq();
    let (mut loads, mut aborts) = (0u32, 0u32);
    // At least FLOOD loads, and for at least FLOOD_MIN_S seconds, so the
    // neighbour's once-a-second heartbeat must come during the flood.
    while loads < FLOOD || cpu::cntvct() - start < min_ticks {
        // SAFETY: faults (no RAM or device there).
        let (_, f) = guarded(|| unsafe { probe_read32(UNMAPPED) });
        aborts += (ec_of(f) == 0x25) as u32;
        loads += 1;
    }
    let mid = cpu::cntvct();
    let mut refused = 0u32;
    for i in 0..SMC_FLOOD {
        // SAFETY: an unknown call; must return NOT_SUPPORTED.
        let r = unsafe { smccc::smc(0xC200_0000 + u64::from(i % 0x100), 0, 0, 0) };
        refused += (r.x0 == smccc::NOT_SUPPORTED) as u32;
    }
    let end = cpu::cntvct();
    let us = |t: u64| t * 1_000_000 / cpu::cntfrq();
    report(
        "trap-flood",
        aborts == loads && refused == SMC_FLOOD,
        format_args!(
            "{} loads -> {} aborts in {} us, {} SMCs -> {} refused in {} us",
            loads,
            aborts,
            us(mid - start),
            SMC_FLOOD,
            refused,
            us(end - mid)
        ),
    );
}

// --------------------------------------------------------------- neighbour

static IRQS: AtomicU64 = AtomicU64::new(0);

fn count_irq() {
    let intid = gic::ack();
    if intid < 1020 {
        // Single writer, and no exclusives on Device memory (MMU off).
        IRQS.store(IRQS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        gic::eoi(intid);
    }
}

fn neighbour(resets: u64) -> ! {
    write_pattern(NEIGHBOUR_TAG);
    // Any interrupt that reaches this VM is counted: it has none of its own.
    exception::set_irq_handler(count_irq);
    gic::init_this_cpu();
    for sgi in 0..16 {
        gic::enable_private(sgi, 0x80);
    }
    gic::unmask_irq();
    let freq = cpu::cntfrq();
    let mut last = cpu::cntvct();
    let mut next = last + freq;
    let mut max_gap = 0;
    let mut beat = 0u64;
    let mut print_ticks = 0;
    loop {
        let now = cpu::cntvct();
        max_gap = max_gap.max(now - last);
        last = now;
        if now >= next {
            beat += 1;
            println!(
                "HEARTBEAT {} resets={} max-gap-us={} irqs={} pattern={} print-us={}",
                beat,
                resets,
                max_gap * 1_000_000 / freq,
                IRQS.load(Ordering::Relaxed),
                if pattern_intact(NEIGHBOUR_TAG) {
                    "intact"
                } else {
                    "CHANGED"
                },
                print_ticks * 1_000_000 / freq
            );
            next += freq;
            // The print is the neighbour's own work, not a gap; how long
            // it took goes in the next line.
            last = cpu::cntvct();
            print_ticks = last - now;
        }
    }
}

// ----------------------------------------------------------------- flooder

/// How long each flood phase lasts, in seconds.
const FLOOD_PHASE_S: u64 = 4;

/// Prints as fast as the console takes it: whole lines, then one line that
/// never ends (the worst case for the console's hold-back of other VMs'
/// lines behind an open one), then the counts.
fn flood_the_console() -> ! {
    let freq = cpu::cntfrq();
    // Let the neighbour print a few heartbeats undisturbed first.
    time::wait_until(2_500, || false);
    println!("FLOOD lines start");
    let start = cpu::cntvct();
    let mut lines = 0u64;
    while cpu::cntvct() - start < FLOOD_PHASE_S * freq {
        println!(
            "FLOOD {:08} abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            lines
        );
        lines += 1;
    }
    println!("FLOOD open-line start");
    let open = cpu::cntvct();
    let mut chunks = 0u64;
    while cpu::cntvct() - open < FLOOD_PHASE_S * freq {
        tessera_guest::print!("0123456789abcdef");
        chunks += 1;
    }
    println!();
    let line_bytes = lines * 79;
    println!(
        "FLOOD DONE lines={} line-bytes-per-s={} open-line-bytes={} open-bytes-per-s={}",
        lines,
        line_bytes / FLOOD_PHASE_S,
        chunks * 16,
        chunks * 16 / FLOOD_PHASE_S
    );
    psci::system_off()
}

// -------------------------------------------------------------- overflower

/// The test-only `FAULT_INJECT` hypercall: a hypervisor built with the
/// `fault-injection` feature overflows its stack and stops the machine
/// with its report; a normal build answers NOT_SUPPORTED.
fn overflow_the_hypervisor() -> ! {
    use hypercall::{fault_inject, FAULT_INJECT};
    println!("OVERFLOW asking the hypervisor to overflow its stack");
    let r = hypercall::call(FAULT_INJECT, fault_inject::STACK_OVERFLOW, 0, 0);
    if r.x0 == smccc::NOT_SUPPORTED {
        println!("OVERFLOW refused: not a fault-injection build");
    } else {
        println!("OVERFLOW returned {:#x}", r.x0);
    }
    psci::system_off()
}

// ------------------------------------------------------------------ cycler

/// What vCPU 1 does while vCPU 0 resets or stops the VM.
#[derive(Clone, Copy)]
enum Busy {
    Spin = 0,
    Wfi = 1,
    Trap = 2,
}

/// vCPU 1's progress word (single writer) in RAM outside the image, so a
/// reset that does not scrub RAM would leave it non-zero.
const TICKS: u64 = RAM_BASE + (20 << 20);

fn ticks() -> u64 {
    // SAFETY: aligned, inside the VM's RAM, above the image.
    unsafe { (TICKS as *const u64).read_volatile() }
}

fn busy(mode: u64) -> ! {
    loop {
        match mode {
            0 => {}
            1 => cpu::wfi(),
            // SAFETY: the VM's own UART flag register: a trapped read.
            _ => drop(unsafe { probe_read32(UART + 0x18) }),
        }
        // SAFETY: as in ticks(); only vCPU 1 writes it.
        unsafe { (TICKS as *mut u64).write_volatile(ticks() + 1) };
    }
}

/// Starts vCPU 1 in `mode` and waits until it runs.
fn start_busy(mode: Busy) -> bool {
    if smp::start_cpu(1, busy, mode as u64) != psci::SUCCESS {
        return false;
    }
    time::wait_until(5_000, || psci::affinity_info(1) == psci::AFFINITY_ON)
        && (matches!(mode, Busy::Wfi) || time::wait_until(5_000, || ticks() > 10))
}

const BUSY_NAMES: [&str; 3] = ["spinning", "in-wfi", "mid-trap"];

/// Starts vCPU 1 in `mode`, then makes an access the VM's `stop-vm` policy
/// stops it at.
fn stopped_while(mode: Busy) -> ! {
    let ok = start_busy(mode);
    println!(
        "CYCLE stop while vCPU 1 is {}: started={}",
        BUSY_NAMES[mode as usize], ok
    );
    // SAFETY: unhandled: the VM's stop-vm policy stops it here.
    let _ = unsafe { probe_read32(UNMAPPED) };
    println!("TEST stop: FAIL the VM was not stopped");
    psci::system_off()
}

fn cycler(resets: u64) -> ! {
    // After any reset: vCPU 1 is off and RAM was scrubbed.
    if resets > 0 {
        let off = psci::affinity_info(1) == psci::AFFINITY_OFF;
        let clean = ticks() == 0;
        println!(
            "TEST after-reset-{}: {} secondary-off={} ticks-zeroed={}",
            resets,
            if off && clean { "PASS" } else { "FAIL" },
            off,
            clean
        );
    }
    let mode = match resets {
        0 => Some(Busy::Spin),
        1 => Some(Busy::Wfi),
        2 => Some(Busy::Trap),
        _ => None,
    };
    if let Some(mode) = mode {
        let name = BUSY_NAMES[mode as usize];
        let ok = start_busy(mode);
        println!("CYCLE reset while vCPU 1 is {}: started={}", name, ok);
        psci::system_reset()
    }
    if resets < 23 {
        // 20 resets in a row, vCPU 1 spinning each time.
        let _ = start_busy(Busy::Spin);
        psci::system_reset()
    }
    println!("CYCLE 20 resets in a row done");
    let ok = start_busy(Busy::Spin);
    println!("CYCLE stop while vCPU 1 is spinning: started={}", ok);
    // SAFETY: unhandled: the VM's stop-vm policy stops it here.
    let _ = unsafe { probe_read32(UNMAPPED) };
    println!("TEST stop: FAIL the VM was not stopped");
    psci::system_off()
}
