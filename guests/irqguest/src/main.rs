//! Virtual GIC checks: the virtual timer and SGIs arrive as interrupts, a
//! VM's writes to interrupts it does not own change nothing, and odd
//! accesses to the distributor get their defined outcome. Runs on 2 vCPUs;
//! prints `TEST <name>: PASS|FAIL <detail>` lines, `RESULT: ...`, powers off.

#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (no heap in the guest).
#![allow(clippy::result_large_err)]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use tessera_guest::exception::{guarded, set_irq_handler, Fault};
use tessera_guest::gic::{self, gicd, gicr, GICD_BASE, GICR_BASE};
use tessera_guest::{cpu, println, psci, smp, time, MAX_CPUS};

tessera_guest::entry!(main);

/// The EL1 virtual timer's PPI.
const VTIMER: u32 = 27;
/// The SGI sent between the vCPUs.
const SGI_OK: u32 = 3;
/// The SGI sent to CPUs the VM does not have.
const SGI_FOREIGN: u32 = 4;
/// A passthrough-capable SPI this VM is not given.
const UNOWNED_SPI: u32 = 40;
/// Bounded waits.
const TIMEOUT_MS: u64 = 2_000;

/// Interrupts taken, per vCPU and INTID class.
static TIMER_IRQS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SGI_OK_IRQS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SGI_FOREIGN_IRQS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static OTHER_IRQS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// vCPU 1 is ready (1) / told to stop (2).
static SECONDARY: AtomicU64 = AtomicU64::new(0);

fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    cpu::dmb();
}

fn irq_handler() {
    let intid = gic::ack();
    if intid >= 1020 {
        return;
    }
    let me = cpu::cpu_id() % MAX_CPUS;
    match intid {
        VTIMER => {
            // Level-triggered: silence the source before ending it.
            cpu::set_cntv_ctl(0);
            bump(&TIMER_IRQS[me]);
        }
        SGI_OK => bump(&SGI_OK_IRQS[me]),
        SGI_FOREIGN => bump(&SGI_FOREIGN_IRQS[me]),
        _ => bump(&OTHER_IRQS[me]),
    }
    gic::eoi(intid);
}

type Outcome = Result<(), heapless_msg::Msg>;

mod heapless_msg {
    use core::fmt::{self, Write};
    /// A fixed-size failure message.
    pub struct Msg {
        buf: [u8; 160],
        len: usize,
    }
    impl Msg {
        pub fn new(args: fmt::Arguments) -> Self {
            let mut m = Msg {
                buf: [0; 160],
                len: 0,
            };
            let _ = m.write_fmt(args);
            m
        }
        pub fn as_str(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
        }
    }
    impl Write for Msg {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for &b in s.as_bytes() {
                if self.len < self.buf.len() && b.is_ascii() {
                    self.buf[self.len] = b;
                    self.len += 1;
                }
            }
            Ok(())
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(heapless_msg::Msg::new(format_args!($($arg)*)));
        }
    };
}

fn rd32(addr: u64) -> u32 {
    // SAFETY: the VM's own GIC registers (aligned).
    unsafe { gic::read32(addr) }
}

fn wr32(addr: u64, v: u32) {
    // SAFETY: the VM's own GIC registers (aligned).
    unsafe { gic::write32(addr, v) }
}

/// GICv2 identity: ArchRev 2, CPUNumber 1, and the banked ITARGETSR0
/// naming the reading vCPU's own CPU interface.
fn check_gicv2_identity() -> Outcome {
    let pidr2 = rd32(GICD_BASE + gic::v2::GICD_PIDR2);
    ensure!(
        pidr2 >> 4 & 0xf == 2,
        "GICD_ICPIDR2={:#x}, ArchRev != 2",
        pidr2
    );
    let typer = rd32(GICD_BASE + gicd::TYPER);
    ensure!(
        typer >> 5 & 7 == 1,
        "GICD_TYPER={:#x}: CPUNumber != 1",
        typer
    );
    let own = 1u32 << cpu::cpu_id();
    let targets = rd32(GICD_BASE + gic::v2::GICD_ITARGETSR);
    ensure!(
        targets == own * 0x0101_0101,
        "ITARGETSR0={:#x}, expected this vCPU's interface {:#x}",
        targets,
        own
    );
    Ok(())
}

/// This vCPU's SGI/PPI registers: its redistributor's SGI frame (GICv3) or
/// the distributor's banked first words (GICv2); same offsets.
fn private_frame() -> u64 {
    if gic::is_gicv2() {
        GICD_BASE
    } else {
        gic::my_sgi_frame()
    }
}

fn check_gicd_identity() -> Outcome {
    if gic::is_gicv2() {
        return check_gicv2_identity();
    }
    let pidr2 = rd32(GICD_BASE + gicd::PIDR2);
    ensure!(
        pidr2 >> 4 & 0xf == 3,
        "GICD_PIDR2={:#x}, ArchRev != 3",
        pidr2
    );
    let typer = rd32(GICD_BASE + gicd::TYPER);
    ensure!(
        typer >> 5 & 7 == 1,
        "GICD_TYPER={:#x}: CPUNumber != 1",
        typer
    );
    ensure!(
        typer >> 19 & 0x1f == 9,
        "GICD_TYPER={:#x}: IDbits != 9",
        typer
    );
    // Redistributor of vCPU 1 is the last one, with affinity 1.
    let t1 = rd32(GICR_BASE + gic::GICR_STRIDE + gicr::TYPER + 4);
    let t1_lo = rd32(GICR_BASE + gic::GICR_STRIDE + gicr::TYPER);
    ensure!(
        t1 == 1 && t1_lo & 1 << 4 != 0,
        "GICR1_TYPER={:#x}{:08x}",
        t1,
        t1_lo
    );
    Ok(())
}

fn wait_timer_irq(me: usize, want: u64) -> Outcome {
    let cval = cpu::cntvct() + time::us_to_ticks(1000);
    cpu::set_cntv_cval(cval);
    cpu::set_cntv_ctl(cpu::CNTV_CTL_ENABLE);
    // Check, then sleep, with IRQs masked: WFI still wakes for a pending
    // interrupt, which is taken once they are unmasked. (Unmasked, an
    // interrupt taken between the check and the WFI would leave it asleep.)
    let arrived = time::wait_until(TIMEOUT_MS, || {
        gic::mask_irq();
        if TIMER_IRQS[me].load(Ordering::Relaxed) < want {
            cpu::wfi();
        }
        gic::unmask_irq();
        TIMER_IRQS[me].load(Ordering::Relaxed) >= want
    });
    ensure!(
        arrived,
        "timer interrupt #{} never arrived (ctl={:#x})",
        want,
        cpu::cntv_ctl()
    );
    ensure!(cpu::cntvct() >= cval, "interrupt before the deadline");
    Ok(())
}

fn check_vtimer_interrupt() -> Outcome {
    let me = cpu::cpu_id();
    gic::enable_private(VTIMER, 0x80);
    // Twice: the second only arrives if the guest's EOI deactivated the
    // physical interrupt (HW-linked list register).
    wait_timer_irq(me, 1)?;
    wait_timer_irq(me, 2)
}

fn secondary(_: u64) -> ! {
    gic::init_this_cpu();
    gic::enable_private(SGI_OK, 0x80);
    gic::enable_private(SGI_FOREIGN, 0x80);
    gic::unmask_irq();
    SECONDARY.store(1, Ordering::Relaxed);
    cpu::dmb();
    loop {
        gic::mask_irq();
        if SECONDARY.load(Ordering::Relaxed) == 2 {
            break;
        }
        cpu::wfi();
        gic::unmask_irq();
    }
    psci::cpu_off();
    loop {
        cpu::wfe();
    }
}

fn check_sgi_to_other_vcpu() -> Outcome {
    let r = smp::start_cpu(1, secondary, 0);
    ensure!(r == 0, "CPU_ON(1) returned {}", r);
    ensure!(
        time::wait_until(TIMEOUT_MS, || SECONDARY.load(Ordering::Relaxed) == 1),
        "vCPU 1 never got ready"
    );
    gic::send_sgi(SGI_OK, 0b10, 0, false);
    ensure!(
        time::wait_until(TIMEOUT_MS, || SGI_OK_IRQS[1].load(Ordering::Relaxed) == 1),
        "SGI {} never reached vCPU 1",
        SGI_OK
    );
    ensure!(
        SGI_OK_IRQS[0].load(Ordering::Relaxed) == 0,
        "SGI for vCPU 1 also arrived on vCPU 0"
    );
    Ok(())
}

fn check_sgi_to_foreign_cpus_ignored() -> Outcome {
    gic::enable_private(SGI_FOREIGN, 0x80);
    // CPUs 2 and 3 (not this VM's), and cluster 1: must reach nobody here.
    gic::send_sgi(SGI_FOREIGN, 0b1100, 0, false);
    gic::send_sgi(SGI_FOREIGN, 0b0011, 1, false);
    // Control: the same SGI to vCPU 1 does arrive, so the wait is long
    // enough for a wrongly delivered one to show.
    gic::send_sgi(SGI_FOREIGN, 0b10, 0, false);
    ensure!(
        time::wait_until(TIMEOUT_MS, || SGI_FOREIGN_IRQS[1].load(Ordering::Relaxed)
            >= 1),
        "control SGI never reached vCPU 1"
    );
    time::wait_until(20, || false);
    let (v0, v1) = (
        SGI_FOREIGN_IRQS[0].load(Ordering::Relaxed),
        SGI_FOREIGN_IRQS[1].load(Ordering::Relaxed),
    );
    ensure!(
        v0 == 0 && v1 == 1,
        "foreign SGIs arrived: vCPU0 {} vCPU1 {}",
        v0,
        v1
    );
    Ok(())
}

fn check_unowned_interrupts_ignored() -> Outcome {
    let word = GICD_BASE + gicd::ISENABLER + 4 * (UNOWNED_SPI / 32) as u64;
    wr32(word, u32::MAX);
    ensure!(
        rd32(word) == 0,
        "ISENABLER{} reads {:#x}",
        UNOWNED_SPI / 32,
        rd32(word)
    );
    let pend = GICD_BASE + gicd::ISPENDR + 4 * (UNOWNED_SPI / 32) as u64;
    wr32(pend, u32::MAX);
    ensure!(rd32(pend) == 0, "ISPENDR reads {:#x}", rd32(pend));
    let prio = GICD_BASE + gicd::IPRIORITYR + (UNOWNED_SPI & !3) as u64;
    wr32(prio, 0x8080_8080);
    ensure!(rd32(prio) == 0, "IPRIORITYR reads {:#x}", rd32(prio));
    let route = if gic::is_gicv2() {
        // ITARGETSR: the word holding the SPI's byte.
        GICD_BASE + gic::v2::GICD_ITARGETSR + (UNOWNED_SPI & !3) as u64
    } else {
        GICD_BASE + gicd::IROUTER + 8 * UNOWNED_SPI as u64
    };
    wr32(route, 1);
    ensure!(
        rd32(route) == 0,
        "routing of {} reads {:#x}",
        UNOWNED_SPI,
        rd32(route)
    );
    // PPIs 25 (maintenance) and 26 (hypervisor timer) are not the VM's.
    let en0 = private_frame() + gicr::ISENABLER0;
    wr32(en0, 1 << 25 | 1 << 26);
    ensure!(
        rd32(en0) & (3 << 25) == 0,
        "GICR_ISENABLER0 reads {:#x}",
        rd32(en0)
    );
    // Nothing unexpected was delivered meanwhile.
    let other = OTHER_IRQS[0].load(Ordering::Relaxed);
    ensure!(other == 0, "{} unexpected interrupts", other);
    Ok(())
}

fn check_gicd_odd_widths() -> Outcome {
    let ((), f) = guarded(|| {
        // SAFETY: a byte read of GICD_TYPER; expected to abort.
        unsafe { asm!("ldrb {v:w}, [{a}]", a = in(reg) GICD_BASE + gicd::TYPER, v = out(reg) _) };
    });
    ensure!(is_abort(f), "byte read of GICD_TYPER did not abort");
    let ((), f) = guarded(|| {
        // SAFETY: a 64-bit read of GICD_CTLR; expected to abort.
        unsafe { asm!("ldr {v}, [{a}]", a = in(reg) GICD_BASE + gicd::CTLR, v = out(reg) _) };
    });
    ensure!(is_abort(f), "64-bit read of GICD_CTLR did not abort");
    let ((), f) = guarded(|| {
        // SAFETY: a halfword write to GICD_CTLR; expected to abort.
        unsafe { asm!("strh {v:w}, [{a}]", a = in(reg) GICD_BASE + gicd::CTLR, v = in(reg) 2u32) };
    });
    ensure!(is_abort(f), "halfword write of GICD_CTLR did not abort");
    // Byte access to a priority register is architectural: allowed.
    let prio = private_frame() + gicr::IPRIORITYR + VTIMER as u64;
    let (v, f) = guarded(|| {
        let v: u32;
        // SAFETY: a byte read of this vCPU's own priority register.
        unsafe { asm!("ldrb {v:w}, [{a}]", a = in(reg) prio, v = out(reg) v) };
        v
    });
    ensure!(
        f.is_none() && v == 0x80,
        "byte read of IPRIORITYR: {:#x} {:?}",
        v,
        f
    );
    Ok(())
}

fn is_abort(f: Option<Fault>) -> bool {
    f.is_some_and(|f| f.ec() == tessera_guest::exception::EC_DATA_ABORT_CUR)
}

fn check_gicd_isv0_pair_and_writeback() -> Outcome {
    let ctlr = rd32(GICD_BASE + gicd::CTLR);
    let typer = rd32(GICD_BASE + gicd::TYPER);
    let (a, b): (u32, u32);
    // SAFETY: a pair load of GICD_CTLR and GICD_TYPER (no syndrome: the
    // hypervisor decodes the instruction).
    unsafe {
        asm!("ldp {a:w}, {b:w}, [{p}]", p = in(reg) GICD_BASE, a = out(reg) a, b = out(reg) b)
    };
    ensure!(
        (a, b) == (ctlr, typer),
        "ldp read {:#x} {:#x}, expected {:#x} {:#x}",
        a,
        b,
        ctlr,
        typer
    );
    let mut p = GICD_BASE;
    let c: u32;
    // SAFETY: pre-index load of GICD_TYPER with writeback.
    unsafe { asm!("ldr {c:w}, [{p}, #4]!", p = inout(reg) p, c = out(reg) c) };
    ensure!(
        c == typer && p == GICD_BASE + 4,
        "writeback load: {:#x} base {:#x}",
        c,
        p
    );
    Ok(())
}

fn run(name: &str, f: fn() -> Outcome, pass: &mut u32, fail: &mut u32) {
    match f() {
        Ok(()) => {
            println!("TEST {}: PASS", name);
            *pass += 1;
        }
        Err(m) => {
            println!("TEST {}: FAIL {}", name, m.as_str());
            *fail += 1;
        }
    }
}

fn main() -> ! {
    set_irq_handler(irq_handler);
    gic::init_this_cpu();
    gic::unmask_irq();
    let (mut pass, mut fail) = (0, 0);
    run("vgic-identity", check_gicd_identity, &mut pass, &mut fail);
    run(
        "vtimer-interrupt",
        check_vtimer_interrupt,
        &mut pass,
        &mut fail,
    );
    run(
        "sgi-to-other-vcpu",
        check_sgi_to_other_vcpu,
        &mut pass,
        &mut fail,
    );
    run(
        "sgi-to-foreign-cpus-ignored",
        check_sgi_to_foreign_cpus_ignored,
        &mut pass,
        &mut fail,
    );
    run(
        "unowned-interrupts-ignored",
        check_unowned_interrupts_ignored,
        &mut pass,
        &mut fail,
    );
    run(
        "gicd-odd-widths",
        check_gicd_odd_widths,
        &mut pass,
        &mut fail,
    );
    run(
        "gicd-isv0-pair-writeback",
        check_gicd_isv0_pair_and_writeback,
        &mut pass,
        &mut fail,
    );
    SECONDARY.store(2, Ordering::Relaxed);
    gic::send_sgi(SGI_OK, 0b10, 0, false);
    println!("RESULT: pass={} fail={}", pass, fail);
    psci::system_off()
}
