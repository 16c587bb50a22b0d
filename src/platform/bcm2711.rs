//! The BCM2711's blocks the hypervisor drives itself on a Raspberry Pi 4:
//! the power-management watchdog (machine power-off, as Linux's
//! `bcm2835_wdt` does it, since the Pi has no PSCI firmware) and the GPIO
//! function select that puts the console PL011 on GPIO14/15. Addresses come
//! from the board's `[bcm2711]` table.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::ReadWrite;
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// Every PM write carries the password in the top byte, or is ignored.
    PM_RSTC [
        /// Watchdog reset configuration.
        WRCFG OFFSET(4) NUMBITS(2) [
            FullReset = 0b10
        ],
        PASSWORD OFFSET(24) NUMBITS(8) []
    ],
    PM_RSTS [
        /// The boot partition the firmware reads after a watchdog reset,
        /// its six bits spread over the even bits 0..10. Partition 63
        /// (0x555) tells the firmware to halt: Linux's power-off.
        PARTITION OFFSET(0) NUMBITS(12) [
            Halt = 0x555
        ],
        PASSWORD OFFSET(24) NUMBITS(8) []
    ],
    PM_WDOG [
        /// Ticks (of 1/65536 s) until the watchdog fires.
        TIME OFFSET(0) NUMBITS(20) [],
        PASSWORD OFFSET(24) NUMBITS(8) []
    ]
}

register_structs! {
    PmRegs {
        (0x00 => _reserved),
        (0x1c => rstc: ReadWrite<u32, PM_RSTC::Register>),
        (0x20 => rsts: ReadWrite<u32, PM_RSTS::Register>),
        (0x24 => wdog: ReadWrite<u32, PM_WDOG::Register>),
        (0x28 => @END),
    }
}

register_structs! {
    GpioRegs {
        /// GPFSEL0..5: three bits per pin, ten pins per register.
        (0x00 => gpfsel: [ReadWrite<u32>; 6]),
        (0x18 => @END),
    }
}

/// The PM password (`0x5a` in the top byte).
const PASSWORD: u32 = 0x5a;
/// Watchdog ticks before the reset: as Linux, 10 (about 150 us).
const RESET_TICKS: u32 = 10;
/// GPIO function select value of alternate function 0.
pub const ALT0: u32 = 0b100;
/// GPIO function select value of a plain input.
pub const INPUT: u32 = 0b000;

fn pm(base: u64) -> &'static PmRegs {
    // SAFETY: the board's `[bcm2711] pm_base` page holds the PM block; the
    // EL2 map maps the low 4 GiB outside RAM as device memory, and no VM is
    // given a device in that page (config rule).
    unsafe { &*(base as *const PmRegs) }
}

fn gpio(base: u64) -> &'static GpioRegs {
    // SAFETY: as for `pm`, for the board's `gpio_base` page.
    unsafe { &*(base as *const GpioRegs) }
}

/// Halts the machine as Linux's `bcm2835_power_off` does: boot partition
/// 63 in `PM_RSTS`, then a full watchdog reset; the firmware reads the
/// partition and stays halted (on QEMU `raspi4b` the emulator exits).
pub fn halt(pm_base: u64) {
    let regs = pm(pm_base);
    regs.rsts
        .modify(PM_RSTS::PASSWORD.val(PASSWORD) + PM_RSTS::PARTITION::Halt);
    full_reset(regs);
}

/// Arms the watchdog to fire in [`RESET_TICKS`] with a full reset.
fn full_reset(regs: &PmRegs) {
    regs.wdog
        .write(PM_WDOG::PASSWORD.val(PASSWORD) + PM_WDOG::TIME.val(RESET_TICKS));
    regs.rstc
        .modify(PM_RSTC::PASSWORD.val(PASSWORD) + PM_RSTC::WRCFG::FullReset);
}

/// Gives GPIO `pin` function `func` ([`ALT0`] on GPIO14/15: PL011 UART0
/// TXD/RXD; [`INPUT`]).
pub fn set_function(gpio_base: u64, pin: usize, func: u32) {
    let Some(reg) = gpio(gpio_base).gpfsel.get(pin / 10) else {
        return;
    };
    let shift = (pin % 10) * 3;
    let v = reg.get() & !(0b111 << shift) | (func & 0b111) << shift;
    reg.set(v);
}

/// Reads back GPIO `pin`'s function select (for the boot log).
pub fn function(gpio_base: u64, pin: usize) -> u32 {
    gpio(gpio_base)
        .gpfsel
        .get(pin / 10)
        .map_or(0, |r| r.get() >> ((pin % 10) * 3) & 0b111)
}
