//! Functional checks of the Tessera guest ABI.
//!
//! Prints one `TEST <name>: PASS` or `TEST <name>: FAIL <detail>` line per
//! check, then `RESULT: pass=<n> fail=<m>`, and powers the VM off. Every wait
//! is bounded, so a broken hypervisor yields FAIL lines rather than a hang.

#![no_std]
#![no_main]
// A check failure carries its message in a fixed-capacity string (no heap
// in the guest), so a large Err variant is the point, not a mistake.
#![allow(clippy::result_large_err)]

use core::arch::asm;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use tessera_guest::exception::{
    guarded, probe_read32, probe_write32, Fault, EC_DATA_ABORT_CUR, EC_UNKNOWN,
};
use tessera_guest::hypercall::{self, VmInfo};
use tessera_guest::{boot, cpu, println, psci, smccc, smp, time, MAX_CPUS, RAM_BASE};

tessera_guest::entry!(main);

/// A function id in Tessera's vendor range that is not assigned.
const UNASSIGNED_HYPERCALL: u64 = 0xC600_1234;
/// A PSCI function id that PSCI 1.1 does not define.
const UNDEFINED_PSCI_FID: u64 = 0x8400_00FF;
/// PSCI 1.1 as returned by PSCI_VERSION.
const PSCI_1_1: u64 = 0x0001_0001;
/// An MPIDR no Tessera test VM owns.
const FOREIGN_MPIDR: u64 = 7;
/// An IPA in no VM's RAM or device windows.
const UNOWNED_DEVICE_IPA: u64 = 0x0A00_0000;
/// How long secondary-vCPU handshakes may take before the check fails.
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// RAM size assumed by the `plain-qemu` build (run QEMU with `-m 64M`).
const PLAIN_QEMU_RAM: u64 = 64 << 20;
/// The emulated PL011 every test VM has.
const UART_BASE: u64 = 0x0900_0000;
/// PL011 flag register.
const UART_FR: u64 = UART_BASE + 0x18;
/// PL011 control register (the pre-index store's base: IMSC is CR + 8).
const UART_CR: u64 = UART_BASE + 0x30;
/// PL011 interrupt mask set/clear register.
const UART_IMSC: u64 = UART_BASE + 0x38;
/// PL011 PeriphID0 (PeriphID1 follows at + 4).
const UART_PERIPH_ID0: u64 = UART_BASE + 0xfe0;
/// FR as the emulated UART reports it with nothing received: RXFE, plus
/// TXFE once the console has written our output out.
const FR_RXFE: u64 = 0x10;
/// FR.TXFE: follows the console's progress.
const FR_TXFE: u64 = 0x80;
/// PeriphID0 and PeriphID1 of a PL011 r1p5.
const PERIPH_ID0_1: (u64, u64) = (0x11, 0x10);
/// IMSC value written and read back (RXIM).
const IMSC_RXIM: u32 = 0x10;
/// The EL1 virtual timer's interrupt (PPI).
const VTIMER_PPI: u32 = 27;
/// A CPU_ON entry point below the VM's RAM (which starts at 0x4000_0000).
const BAD_ENTRY: u64 = 0x1000;

/// Failure detail of a check, formatted into a fixed buffer (no heap).
struct Detail {
    buf: [u8; 200],
    len: usize,
}

impl Detail {
    fn new(args: fmt::Arguments) -> Self {
        let mut d = Detail {
            buf: [0; 200],
            len: 0,
        };
        // Detail::write_str truncates instead of failing.
        let _ = d.write_fmt(args);
        d
    }

    fn as_str(&self) -> &str {
        let bytes = &self.buf[..self.len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Write for Detail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// What a check returns.
type Outcome = Result<(), Detail>;

/// Fails the current check with a formatted detail.
macro_rules! fail {
    ($($arg:tt)*) => { return Err(Detail::new(format_args!($($arg)*))) };
}

/// Fails the current check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !$cond { fail!($($arg)*) } };
}

/// Runs `f`, turning an exception it raises into a failure detail.
fn no_fault<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, Detail> {
    match guarded(f) {
        (r, None) => Ok(r),
        (_, Some(fault)) => Err(Detail::new(format_args!(
            "{} raised an exception: ec={:#x} esr={:#x} elr={:#x}",
            what,
            fault.ec(),
            fault.esr,
            fault.elr
        ))),
    }
}

/// Pass/fail tally.
#[derive(Default)]
struct Report {
    pass: u32,
    fail: u32,
}

impl Report {
    fn run(&mut self, name: &str, check: impl FnOnce() -> Outcome) {
        match check() {
            Ok(()) => {
                self.pass += 1;
                println!("TEST {}: PASS", name);
            }
            Err(detail) => {
                self.fail += 1;
                println!("TEST {}: FAIL {}", name, detail.as_str());
            }
        }
    }
}

/// The VM's shape, from VM_INFO (or the plain-QEMU fallback).
#[derive(Clone, Copy)]
struct Vm {
    info: VmInfo,
    /// Whether `info` came from the hypervisor.
    reported: bool,
}

impl Vm {
    fn ram_end(&self) -> u64 {
        RAM_BASE + self.info.ram_size
    }
}

fn main() -> ! {
    cpu::mask_all_exceptions();
    let mut report = Report::default();

    report.run("console", || Ok(()));
    report.run("hypercall-null", check_hypercall_null);
    report.run("hypercall-unknown", check_hypercall_unknown);

    let mut vm = None;
    report.run("vm-info", || {
        let v = check_vm_info()?;
        vm = Some(v);
        Ok(())
    });
    let vm = vm.or_else(fallback_vm);

    report.run("psci-version", check_psci_version);
    report.run("psci-features", check_psci_features);
    report.run("psci-smc", check_psci_smc);
    report.run("psci-cpu-on-invalid", || check_cpu_on_invalid(vm));

    match vm {
        Some(vm) if vm.info.vcpus >= 2 => {
            report.run("psci-cpu-on", || check_secondary_start(GEN_FIRST));
            report.run("psci-already-on", check_already_on);
            report.run("psci-affinity-info", || check_affinity_info(GEN_FIRST));
            report.run("psci-cpu-on-again", || {
                check_secondary_start(GEN_AGAIN)?;
                release_and_wait_off(GEN_AGAIN)
            });
            report.run("psci-cpu-on-bad-entry", check_cpu_on_bad_entry);
        }
        Some(_) => println!("info: 1 vCPU, skipping the multi-vCPU PSCI checks"),
        None => println!("info: vCPU count unknown, skipping the multi-vCPU PSCI checks"),
    }

    report.run("abort-outside-ram", || check_abort_outside_ram(vm));
    report.run("abort-unowned-device", check_abort_unowned_device);
    report.run("abort-write", || check_abort_write(vm));
    report.run("memory-private", || check_memory_private(vm));
    report.run("mmio-decode-writeback", check_mmio_decode_writeback);
    report.run("mmio-decode-pair", check_mmio_decode_pair);
    report.run("sysreg-id", check_sysreg_id);
    report.run("pmu-undefined", check_pmu_undefined);
    report.run("set-way-handled", check_set_way_handled);
    report.run("debug-regs-contained", check_debug_regs_contained);
    report.run("hidden-features-undefined", check_hidden_features_undefined);
    report.run("wfi-timer", check_wfi_timer);

    println!("RESULT: pass={} fail={}", report.pass, report.fail);
    psci::system_off()
}

fn check_hypercall_null() -> Outcome {
    let x0 = no_fault("hvc NULL", hypercall::null)?;
    ensure!(x0 == 0, "x0={:#x}, expected 0", x0);
    Ok(())
}

fn check_hypercall_unknown() -> Outcome {
    for fid in [UNASSIGNED_HYPERCALL, hypercall::VM_INFO + 1] {
        let x0 = no_fault("hvc", || hypercall::call(fid, 0, 0, 0).x0)?;
        ensure!(
            x0 == smccc::NOT_SUPPORTED,
            "fid {:#x}: x0={:#x}, expected NOT_SUPPORTED (-1)",
            fid,
            x0
        );
    }
    Ok(())
}

fn check_vm_info() -> Result<Vm, Detail> {
    let info = match no_fault("hvc VM_INFO", hypercall::vm_info)? {
        Ok(info) => info,
        Err(status) => fail!("x0={:#x}, expected 0", status),
    };
    println!(
        "vm id={} vcpus={} ram={}",
        info.id, info.vcpus, info.ram_size
    );
    let image = boot::image_end() - RAM_BASE;
    ensure!(info.vcpus >= 1, "vcpus={}", info.vcpus);
    ensure!(
        info.ram_size >= image && info.ram_size % 4096 == 0,
        "ram={:#x} is not page aligned or smaller than the image ({:#x})",
        info.ram_size,
        image
    );
    Ok(Vm {
        info,
        reported: true,
    })
}

/// Without VM_INFO: only the `plain-qemu` development build carries on, with
/// the vCPU count probed through AFFINITY_INFO and a fixed RAM size.
fn fallback_vm() -> Option<Vm> {
    if !cfg!(feature = "plain-qemu") {
        return None;
    }
    let vcpus = (0..MAX_CPUS as u64)
        .take_while(|&mpidr| psci::affinity_info(mpidr) != psci::INVALID_PARAMETERS)
        .count() as u64;
    println!(
        "info: plain-qemu fallback: vcpus={} ram={}",
        vcpus, PLAIN_QEMU_RAM
    );
    Some(Vm {
        info: VmInfo {
            id: 0,
            vcpus,
            ram_size: PLAIN_QEMU_RAM,
            resets: 0,
        },
        reported: false,
    })
}

fn check_psci_version() -> Outcome {
    let v = no_fault("hvc PSCI_VERSION", psci::version)?;
    ensure!(v == PSCI_1_1, "version={:#x}, expected {:#x}", v, PSCI_1_1);
    Ok(())
}

fn check_psci_features() -> Outcome {
    let on = no_fault("hvc PSCI_FEATURES", || psci::features(psci::CPU_ON))?;
    ensure!(on == 0, "PSCI_FEATURES(CPU_ON)={}, expected 0", on);
    let undefined = no_fault("hvc PSCI_FEATURES", || psci::features(UNDEFINED_PSCI_FID))?;
    ensure!(
        undefined == psci::NOT_SUPPORTED,
        "PSCI_FEATURES({:#x})={}, expected -1",
        UNDEFINED_PSCI_FID,
        undefined
    );
    Ok(())
}

fn check_psci_smc() -> Outcome {
    let v = no_fault("smc PSCI_VERSION", psci::version_smc)?;
    ensure!(v == PSCI_1_1, "version={:#x}, expected {:#x}", v, PSCI_1_1);
    Ok(())
}

/// CPU_ON through the raw wrapper, entering at `_start` (which parks vCPUs
/// beyond the runtime's limit and turns off any it has no function for).
fn raw_cpu_on(mpidr: u64, context_id: u64) -> Result<i64, Detail> {
    // SAFETY: `_start` is a correct entry for any vCPU.
    no_fault("hvc CPU_ON", || unsafe {
        psci::cpu_on(mpidr, boot::entry_address(), context_id)
    })
}

fn check_cpu_on_invalid(vm: Option<Vm>) -> Outcome {
    let r = raw_cpu_on(FOREIGN_MPIDR, 0)?;
    ensure!(
        r == psci::INVALID_PARAMETERS,
        "CPU_ON(mpidr {:#x})={}, expected -2",
        FOREIGN_MPIDR,
        r
    );
    if vm.is_some_and(|vm| vm.info.vcpus == 1) {
        let r = raw_cpu_on(1, 0)?;
        ensure!(
            r == psci::INVALID_PARAMETERS,
            "CPU_ON(mpidr 1)={} with 1 vCPU, expected -2",
            r
        );
    }
    Ok(())
}

// Secondary-vCPU handshake. Each word has a single writer: vCPU 1 writes the
// SEEN_* words and ARRIVED, vCPU 0 writes RELEASE. Context ids carry a
// generation so no word ever needs resetting.

/// Context id base for CPU_ON; the low byte is the generation.
const CONTEXT_MAGIC: u64 = 0x7E55_E2A0_0000_0000;
/// Generation of the first CPU_ON.
const GEN_FIRST: u64 = 1;
/// Generation of the CPU_ON after CPU_OFF.
const GEN_AGAIN: u64 = 2;

static SEEN_CONTEXT: AtomicU64 = AtomicU64::new(0);
static SEEN_AFF0: AtomicU64 = AtomicU64::new(u64::MAX);
static ARRIVED: AtomicU64 = AtomicU64::new(0);
static RELEASE: AtomicU64 = AtomicU64::new(0);
static CPU_OFF_STATUS: AtomicU64 = AtomicU64::new(0);

fn context(generation: u64) -> u64 {
    CONTEXT_MAGIC | generation
}

/// Runs on vCPU 1: report in, wait (bounded) to be released, then CPU_OFF.
fn secondary(context_id: u64) -> ! {
    SEEN_CONTEXT.store(context_id, Ordering::Relaxed);
    SEEN_AFF0.store(cpu::mpidr() & 0xff, Ordering::Relaxed);
    cpu::dmb();
    ARRIVED.store(context_id, Ordering::Relaxed);
    cpu::sev();
    time::wait_until(4 * HANDSHAKE_TIMEOUT_MS, || {
        cpu::dmb();
        RELEASE.load(Ordering::Relaxed) == context_id
    });
    let status = psci::cpu_off();
    // Only reached if CPU_OFF failed.
    CPU_OFF_STATUS.store(status as u64, Ordering::Relaxed);
    cpu::dmb();
    loop {
        cpu::wfe();
    }
}

fn check_secondary_start(generation: u64) -> Outcome {
    let ctx = context(generation);
    let r = smp::start_cpu(1, secondary, ctx);
    ensure!(r == psci::SUCCESS, "CPU_ON(mpidr 1)={}, expected 0", r);
    let arrived = time::wait_until(HANDSHAKE_TIMEOUT_MS, || {
        cpu::dmb();
        ARRIVED.load(Ordering::Relaxed) == ctx
    });
    ensure!(
        arrived,
        "vCPU 1 did not run within {} ms",
        HANDSHAKE_TIMEOUT_MS
    );
    let seen = SEEN_CONTEXT.load(Ordering::Relaxed);
    ensure!(
        seen == ctx,
        "vCPU 1 got context {:#x}, expected {:#x}",
        seen,
        ctx
    );
    let aff0 = SEEN_AFF0.load(Ordering::Relaxed);
    ensure!(aff0 == 1, "vCPU 1 has MPIDR aff0 {}, expected 1", aff0);
    Ok(())
}

fn check_already_on() -> Outcome {
    let r = raw_cpu_on(1, context(GEN_FIRST))?;
    ensure!(
        r == psci::ALREADY_ON,
        "CPU_ON(mpidr 1) while on={}, expected -4",
        r
    );
    Ok(())
}

fn check_affinity_info(generation: u64) -> Outcome {
    let me = no_fault("hvc AFFINITY_INFO", || psci::affinity_info(0))?;
    ensure!(
        me == psci::AFFINITY_ON,
        "AFFINITY_INFO(0)={}, expected 0 (ON)",
        me
    );
    let running = no_fault("hvc AFFINITY_INFO", || psci::affinity_info(1))?;
    ensure!(
        running == psci::AFFINITY_ON,
        "AFFINITY_INFO(1) while running={}, expected 0 (ON)",
        running
    );
    let invalid = no_fault("hvc AFFINITY_INFO", || psci::affinity_info(FOREIGN_MPIDR))?;
    ensure!(
        invalid == psci::INVALID_PARAMETERS,
        "AFFINITY_INFO({:#x})={}, expected -2",
        FOREIGN_MPIDR,
        invalid
    );
    release_and_wait_off(generation)
}

/// Lets vCPU 1 call CPU_OFF and waits (bounded) for AFFINITY_INFO to say OFF.
fn release_and_wait_off(generation: u64) -> Outcome {
    cpu::dmb();
    RELEASE.store(context(generation), Ordering::Relaxed);
    cpu::sev();
    let mut last = psci::AFFINITY_ON;
    let off = time::wait_until(HANDSHAKE_TIMEOUT_MS, || {
        last = psci::affinity_info(1);
        last == psci::AFFINITY_OFF
    });
    cpu::dmb();
    let status = CPU_OFF_STATUS.load(Ordering::Relaxed);
    ensure!(
        off,
        "AFFINITY_INFO(1)={} {} ms after CPU_OFF, expected 1 (OFF); CPU_OFF status {}",
        last,
        HANDSHAKE_TIMEOUT_MS,
        status as i64
    );
    Ok(())
}

fn check_cpu_on_bad_entry() -> Outcome {
    let before = no_fault("hvc AFFINITY_INFO", || psci::affinity_info(1))?;
    ensure!(
        before == psci::AFFINITY_OFF,
        "AFFINITY_INFO(1)={} before CPU_ON, expected 1 (OFF)",
        before
    );
    // SAFETY: the entry point is outside the VM's RAM, so the hypervisor must
    // refuse it; had it started vCPU 1 there anyway, that vCPU could only
    // fault on an address the VM does not own.
    let r = no_fault("hvc CPU_ON", || unsafe { psci::cpu_on(1, BAD_ENTRY, 0) })?;
    ensure!(
        r == psci::INVALID_ADDRESS,
        "CPU_ON(mpidr 1, entry {:#x})={}, expected -9 (INVALID_ADDRESS)",
        BAD_ENTRY,
        r
    );
    let after = no_fault("hvc AFFINITY_INFO", || psci::affinity_info(1))?;
    ensure!(
        after == psci::AFFINITY_OFF,
        "AFFINITY_INFO(1)={} after the refused CPU_ON, expected 1 (OFF)",
        after
    );
    Ok(())
}

fn vm_or_fail(vm: Option<Vm>) -> Result<Vm, Detail> {
    vm.ok_or_else(|| Detail::new(format_args!("RAM size unknown (vm-info failed)")))
}

/// Expects one data abort from the current EL when `access` runs.
fn expect_data_abort(what: &str, access: impl FnOnce()) -> Result<Fault, Detail> {
    match guarded(access) {
        ((), None) => fail!("{} completed without an exception", what),
        ((), Some(f)) => {
            ensure!(
                f.ec() == EC_DATA_ABORT_CUR,
                "{}: ec={:#x} esr={:#x} far={:#x}, expected ec 0x25",
                what,
                f.ec(),
                f.esr,
                f.far
            );
            Ok(f)
        }
    }
}

fn check_abort_outside_ram(vm: Option<Vm>) -> Outcome {
    let addr = vm_or_fail(vm)?.ram_end();
    // SAFETY: the address is outside the VM's RAM; the access faults or reads
    // a harmless value, and runs inside `guarded`.
    let f = expect_data_abort("load at RAM end", || unsafe {
        probe_read32(addr);
    })?;
    ensure!(f.far == addr, "far={:#x}, expected {:#x}", f.far, addr);
    Ok(())
}

fn check_abort_unowned_device() -> Outcome {
    // SAFETY: no device of the VM is at this address; the access runs inside
    // `guarded`.
    expect_data_abort("load from 0x0A00_0000", || unsafe {
        probe_read32(UNOWNED_DEVICE_IPA);
    })?;
    Ok(())
}

fn check_abort_write(vm: Option<Vm>) -> Outcome {
    let addr = vm_or_fail(vm)?.ram_end() + 0x1000;
    // SAFETY: the address is outside the VM's RAM; the access runs inside
    // `guarded`.
    let f = expect_data_abort("store past RAM end", || unsafe {
        probe_write32(addr, 0xDEAD_BEEF);
    })?;
    ensure!(
        f.is_write(),
        "esr={:#x} has WnR clear (far={:#x})",
        f.esr,
        f.far
    );
    Ok(())
}

fn check_memory_private(vm: Option<Vm>) -> Outcome {
    let vm = vm_or_fail(vm)?;
    let start = boot::image_end();
    let end = vm.ram_end();
    ensure!(
        end > start,
        "no RAM above the image (end {:#x}, image end {:#x})",
        end,
        start
    );
    let seed = (vm.info.id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let pattern = |addr: u64| seed ^ addr.rotate_left(17);
    let t0 = cpu::cntvct();
    let mut addr = start;
    while addr < end {
        // SAFETY: [start, end) is this VM's RAM above the image, BSS and
        // stacks, used by nothing else; the address is 8-byte aligned.
        unsafe { (addr as *mut u64).write_volatile(pattern(addr)) };
        addr += 8;
    }
    cpu::dmb();
    let mut bad = 0u64;
    let mut first = None;
    let mut addr = start;
    while addr < end {
        // SAFETY: as for the fill loop above.
        let got = unsafe { (addr as *const u64).read_volatile() };
        if got != pattern(addr) {
            bad += 1;
            first.get_or_insert((addr, got));
        }
        addr += 8;
    }
    let ms = (cpu::cntvct() - t0) * 1000 / time::ticks_per_second();
    println!(
        "info: memory-private checked {} KiB in {} ms{}",
        (end - start) / 1024,
        ms,
        if vm.reported {
            ""
        } else {
            " (assumed RAM size)"
        }
    );
    if let Some((addr, got)) = first {
        fail!(
            "{} words differ; first at {:#x}: got {:#x}, expected {:#x}",
            bad,
            addr,
            got,
            pattern(addr)
        );
    }
    Ok(())
}

// MMIO accesses whose data-abort syndrome is not valid (ESR.ISV = 0), so
// the hypervisor has to decode the instruction: writeback and pair forms.
// Each is one instruction run inside `guarded`, so an injected abort skips
// it and the check fails instead of crashing.

/// `ldr w1, [x0], #4`: returns x1 and x0 afterwards.
///
/// # Safety
/// `base` must be 4-byte aligned and reading it harmless.
unsafe fn ldr_post_index(base: u64) -> (u64, u64) {
    let mut x0 = base;
    let x1: u64;
    // SAFETY: upheld by the caller; one instruction, so ELR += 4 skips it.
    unsafe { asm!("ldr w1, [x0], #4", inout("x0") x0, out("x1") x1, options(nostack)) };
    (x1, x0)
}

/// `str w1, [x0, #8]!`: stores `value` at `base + 8`; returns x0 afterwards.
///
/// # Safety
/// `base + 8` must be 4-byte aligned and writing `value` there harmless.
unsafe fn str_pre_index(base: u64, value: u32) -> u64 {
    let mut x0 = base;
    // SAFETY: upheld by the caller; one instruction, so ELR += 4 skips it.
    unsafe { asm!("str w1, [x0, #8]!", inout("x0") x0, in("x1") value as u64, options(nostack)) };
    x0
}

/// `ldp w1, w2, [x0]`: returns x1 and x2.
///
/// # Safety
/// `base` must be 8-byte aligned and reading 8 bytes there harmless.
unsafe fn ldp_offset(base: u64) -> (u64, u64) {
    let (x1, x2): (u64, u64);
    // SAFETY: upheld by the caller; one instruction, so ELR += 4 skips it.
    unsafe {
        asm!("ldp w1, w2, [x0]", in("x0") base, out("x1") x1, out("x2") x2, options(nostack))
    };
    (x1, x2)
}

/// `ldp w1, w2, [x0], #8`: returns x1, x2 and x0 afterwards.
///
/// # Safety
/// As for [`ldp_offset`].
unsafe fn ldp_post_index(base: u64) -> (u64, u64, u64) {
    let mut x0 = base;
    let (x1, x2): (u64, u64);
    // SAFETY: upheld by the caller; one instruction, so ELR += 4 skips it.
    unsafe {
        asm!(
            "ldp w1, w2, [x0], #8",
            inout("x0") x0,
            out("x1") x1,
            out("x2") x2,
            options(nostack)
        )
    };
    (x1, x2, x0)
}

fn read_imsc() -> Result<u64, Detail> {
    // SAFETY: reading the emulated UART's IMSC has no side effects.
    no_fault("ldr w, [IMSC]", || unsafe {
        probe_read32(UART_IMSC) as u64
    })
}

/// Writes `value` to IMSC with `str w1, [x0, #8]!` from CR, checks the base
/// register and reads IMSC back with a plain `ldr`.
fn imsc_pre_index(value: u32) -> Outcome {
    // SAFETY: IMSC only masks UART interrupts, which the guest never unmasks.
    let x0 = no_fault("str w1, [x0, #8]!", || unsafe {
        str_pre_index(UART_CR, value)
    })?;
    ensure!(
        x0 == UART_IMSC,
        "str w1, [x0, #8]! (x0={:#x}, w1={:#x}): x0={:#x} afterwards, expected {:#x}",
        UART_CR,
        value,
        x0,
        UART_IMSC
    );
    let got = read_imsc()?;
    ensure!(
        got == value as u64,
        "IMSC={:#x} after str w1, [x0, #8]! of {:#x}",
        got,
        value
    );
    Ok(())
}

fn check_mmio_decode_writeback() -> Outcome {
    // SAFETY: reading FR has no side effects.
    let (x1, x0) = no_fault("ldr w1, [x0], #4", || unsafe { ldr_post_index(UART_FR) })?;
    ensure!(
        x1 & !FR_TXFE == FR_RXFE && x0 == UART_FR + 4,
        "ldr w1, [x0], #4 (x0={:#x}): x1={:#x} x0={:#x}, expected x1={:#x} (| TXFE) x0={:#x}",
        UART_FR,
        x1,
        x0,
        FR_RXFE,
        UART_FR + 4
    );
    let result = imsc_pre_index(0).and_then(|()| imsc_pre_index(IMSC_RXIM));
    // Leave IMSC at its reset value whatever happened above.
    // SAFETY: as in `imsc_pre_index`.
    let restored = no_fault("str w, [IMSC]", || unsafe { probe_write32(UART_IMSC, 0) });
    result?;
    restored?;
    Ok(())
}

fn check_mmio_decode_pair() -> Outcome {
    let (id0, id1) = PERIPH_ID0_1;
    // SAFETY: the identification registers are read-only and side-effect free.
    let (x1, x2) = no_fault("ldp w1, w2, [x0]", || unsafe {
        ldp_offset(UART_PERIPH_ID0)
    })?;
    ensure!(
        (x1, x2) == (id0, id1),
        "ldp w1, w2, [x0] (x0={:#x}): x1={:#x} x2={:#x}, expected {:#x} {:#x}",
        UART_PERIPH_ID0,
        x1,
        x2,
        id0,
        id1
    );
    // SAFETY: as above.
    let (x1, x2, x0) = no_fault("ldp w1, w2, [x0], #8", || unsafe {
        ldp_post_index(UART_PERIPH_ID0)
    })?;
    ensure!(
        (x1, x2, x0) == (id0, id1, UART_PERIPH_ID0 + 8),
        "ldp w1, w2, [x0], #8 (x0={:#x}): x1={:#x} x2={:#x} x0={:#x}, expected {:#x} {:#x} {:#x}",
        UART_PERIPH_ID0,
        x1,
        x2,
        x0,
        id0,
        id1,
        UART_PERIPH_ID0 + 8
    );
    Ok(())
}

fn check_sysreg_id() -> Outcome {
    let a = no_fault("mrs ID_AA64PFR0_EL1", cpu::id_aa64pfr0)?;
    let b = no_fault("mrs ID_AA64PFR0_EL1", cpu::id_aa64pfr0)?;
    ensure!(a == b, "two reads differ: {:#x} then {:#x}", a, b);
    let sve = (a >> 32) & 0xf;
    let gic = (a >> 24) & 0xf;
    // SVE is hidden; GIC = 1: the VM's GICv3 CPU interface is virtual.
    ensure!(
        sve == 0 && gic == 1,
        "ID_AA64PFR0_EL1={:#x}: SVE={} GIC={}, expected SVE=0 GIC=1",
        a,
        sve,
        gic
    );
    Ok(())
}

/// ESR.IL: the instruction that raised the exception was 32 bits.
const ESR_IL: u64 = 1 << 25;
/// MDSCR_EL1.KDE | MDE: what a debugger would set.
const MDSCR_KDE_MDE: u64 = 1 << 13 | 1 << 15;

/// `mrs x, pmccntr_el0` (one instruction: a skipped fault leaves 0).
fn read_pmccntr() -> u64 {
    let v: u64;
    // SAFETY: reads a counter, or raises an exception handled by `guarded`.
    unsafe { asm!("mrs {}, pmccntr_el0", out(reg) v, options(nostack)) };
    v
}

/// Without the `pmu` grant the PMU is hidden and trapped: the ID register
/// shows no PMU and reading the cycle counter is an undefined instruction
/// (EC 0 with IL, at the instruction), not an abort and not a hang.
fn check_pmu_undefined() -> Outcome {
    let dfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nostack)) };
    let pmuver = dfr0 >> 8 & 0xf;
    ensure!(
        pmuver == 0,
        "ID_AA64DFR0_EL1={:#x}: PMUVer={}, expected 0",
        dfr0,
        pmuver
    );
    match guarded(read_pmccntr) {
        (v, None) => fail!("PMCCNTR_EL0 read {:#x} without an exception", v),
        (_, Some(f)) => ensure!(
            f.ec() == EC_UNKNOWN && f.esr & ESR_IL != 0,
            "PMCCNTR_EL0: esr={:#x} elr={:#x}, expected EC 0 with IL",
            f.esr,
            f.elr
        ),
    }
    Ok(())
}

/// Set/way maintenance traps (HCR_EL2.TSW) and is served: no exception,
/// for the whole-cache walk's first operation and any other.
fn check_set_way_handled() -> Outcome {
    for operand in [0u64, 1 << 1, 0x40, 0x8000_0042] {
        // SAFETY: set/way maintenance only changes cache state.
        no_fault("dc cisw", || unsafe {
            asm!("dc cisw, {}", in(reg) operand, options(nostack))
        })?;
        // SAFETY: as above.
        no_fault("dc csw", || unsafe {
            asm!("dc csw, {}", in(reg) operand, options(nostack))
        })?;
    }
    Ok(())
}

/// Debug registers and ACTLR_EL1 trap and read as zero: a breakpoint or
/// watchpoint the guest writes never reaches the hardware.
fn check_debug_regs_contained() -> Outcome {
    let (mdscr, bvr, actlr) = no_fault("debug registers", || {
        let (mdscr, bvr, actlr): (u64, u64, u64);
        // SAFETY: with the registers trapped and ignored these writes change
        // nothing; even untrapped, a breakpoint at address 0 with its control
        // register left disabled never fires.
        unsafe {
            asm!(
                "msr mdscr_el1, {kde}",
                "msr dbgbvr0_el1, {addr}",
                "isb",
                "mrs {mdscr}, mdscr_el1",
                "mrs {bvr}, dbgbvr0_el1",
                "mrs {actlr}, actlr_el1",
                "msr mdscr_el1, xzr",
                kde = in(reg) MDSCR_KDE_MDE,
                addr = in(reg) 0x4000_0000u64,
                mdscr = out(reg) mdscr,
                bvr = out(reg) bvr,
                actlr = out(reg) actlr,
                options(nostack)
            )
        };
        (mdscr, bvr, actlr)
    })?;
    ensure!(
        mdscr == 0 && bvr == 0 && actlr == 0,
        "MDSCR_EL1={:#x} DBGBVR0_EL1={:#x} ACTLR_EL1={:#x}, expected all 0",
        mdscr,
        bvr,
        actlr
    );
    Ok(())
}

/// Features the ID registers hide are unusable, whether the core lacks
/// them (undefined natively) or has them (trapped by the hypervisor and
/// answered with an undefined instruction): SVE (CPTR_EL2.TZ), the MTE tag
/// control register (HCR_EL2.ATA clear), LORegions (TLOR), RAS error
/// records (TERR), and a cluster-wide implementation-defined register
/// (TIDCP; L2ACTLR_EL1 exists on Cortex-A72).
fn check_hidden_features_undefined() -> Outcome {
    fn expect_undefined(what: &str, probe: fn()) -> Outcome {
        match guarded(probe) {
            ((), None) => fail!("{} ran without an exception", what),
            ((), Some(f)) => ensure!(
                f.ec() == EC_UNKNOWN,
                "{}: esr={:#x} elr={:#x}, expected EC 0 (undefined)",
                what,
                f.esr,
                f.elr
            ),
        }
        Ok(())
    }
    // Each probe is one instruction, skipped if it raises an exception.
    // SAFETY (all): reading an identification or control register, or the
    // vector length, has no side effect; an exception is caught by `guarded`.
    // The guest first enables FP and SVE for itself (CPACR_EL1.FPEN and
    // ZEN = 0b11; ZEN is RES0 on a core without SVE), so a core that has SVE
    // reaches the EL2 trap rather than the guest's own EC 0x07/0x19 traps.
    let cpacr: u64;
    // SAFETY: CPACR_EL1 only enables FP/SIMD/SVE access for this guest; the
    // probe touches no FP register.
    unsafe {
        asm!("mrs {0}, cpacr_el1", "orr {1}, {0}, #(3 << 16)", "orr {1}, {1}, #(3 << 20)",
            "msr cpacr_el1, {1}", "isb",
            out(reg) cpacr, out(reg) _, options(nostack))
    };
    let sve = expect_undefined("rdvl x0, #1 (SVE)", || unsafe {
        asm!(".inst 0x04bf5020", out("x0") _, options(nostack))
    });
    // SAFETY: restores the guest's own setting.
    unsafe { asm!("msr cpacr_el1, {}", "isb", in(reg) cpacr, options(nostack)) };
    sve?;
    expect_undefined("mrs GCR_EL1 (MTE)", || unsafe {
        asm!("mrs {}, S3_0_C1_C0_6", out(reg) _, options(nostack))
    })?;
    expect_undefined("mrs LORID_EL1 (LOR)", || unsafe {
        asm!("mrs {}, S3_0_C10_C4_7", out(reg) _, options(nostack))
    })?;
    expect_undefined("mrs ERRIDR_EL1 (RAS)", || unsafe {
        asm!("mrs {}, S3_0_C5_C3_0", out(reg) _, options(nostack))
    })?;
    expect_undefined("mrs L2ACTLR_EL1 (IMPDEF)", || unsafe {
        asm!("mrs {}, S3_1_C15_C0_0", out(reg) _, options(nostack))
    })?;
    Ok(())
}

fn check_wfi_timer() -> Outcome {
    if cfg!(feature = "plain-qemu") {
        fail!("not run in the plain-qemu build");
    }
    // WFI wakes on an interrupt the GIC signals, masked by PSTATE or not:
    // enable the timer PPI at this vCPU's redistributor, keep IRQs masked.
    tessera_guest::gic::init_this_cpu();
    tessera_guest::gic::enable_private(VTIMER_PPI, 0x80);
    cpu::mask_all_exceptions();
    let daif = cpu::daif();
    ensure!(
        daif & (0xf << 6) == 0xf << 6,
        "DAIF={:#x}, expected all masked",
        daif
    );
    let cval = cpu::cntvct() + time::us_to_ticks(1000);
    cpu::set_cntv_cval(cval);
    cpu::set_cntv_ctl(cpu::CNTV_CTL_ENABLE);
    // Bounded: a WFI that wakes for nothing loops; one that never wakes is
    // a hang the harness's deadline reports.
    let woke = time::wait_until(HANDSHAKE_TIMEOUT_MS, || {
        cpu::wfi();
        cpu::cntvct() >= cval
    });
    let now = cpu::cntvct();
    let intid = tessera_guest::gic::ack();
    cpu::set_cntv_ctl(0);
    if intid < 1020 {
        tessera_guest::gic::eoi(intid);
    }
    ensure!(woke, "WFI never saw the deadline (cval={:#x})", cval);
    ensure!(
        now >= cval,
        "WFI returned at cntvct={:#x} before cval={:#x}",
        now,
        cval
    );
    ensure!(
        intid == VTIMER_PPI,
        "acknowledged INTID {} after the timer fired, expected {}",
        intid,
        VTIMER_PPI
    );
    Ok(())
}
