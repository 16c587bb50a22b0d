//! The physical 16550 UART (a PC COM port) the hypervisor prints on, at an
//! I/O port base (polled transmit and receive).

use x86::io::{inb, outb};

/// Line status register: transmit holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// Line status register: data ready.
const LSR_DR: u8 = 1 << 0;

/// Register offsets.
mod reg {
    pub const DATA: u16 = 0;
    pub const IER: u16 = 1;
    pub const FCR: u16 = 2;
    pub const LCR: u16 = 3;
    pub const MCR: u16 = 4;
    pub const LSR: u16 = 5;
}

/// A 16550 at a fixed port base.
pub struct Uart16550 {
    base: u16,
}

impl Uart16550 {
    /// The UART at port `base` (from the board description's console).
    pub const fn new(base: u64) -> Self {
        Self { base: base as u16 }
    }

    fn out(&self, offset: u16, value: u8) {
        // SAFETY: the board description gives the hypervisor this UART's
        // ports; no VM is given them (config validation).
        unsafe { outb(self.base + offset, value) }
    }

    fn inp(&self, offset: u16) -> u8 {
        // SAFETY: as for `out`; reading LSR has no side effect.
        unsafe { inb(self.base + offset) }
    }

    /// 115200 8N1, FIFOs on, interrupts off.
    pub fn enable(&self) {
        self.out(reg::IER, 0);
        self.out(reg::LCR, 0x80); // DLAB: divisor latch
        self.out(reg::DATA, 1); // 115200 = 1.8432 MHz / 16 / 1
        self.out(reg::IER, 0);
        self.out(reg::LCR, 0x03); // 8 bits, no parity, 1 stop bit
        self.out(reg::FCR, 0x07); // FIFOs enabled and cleared
        self.out(reg::MCR, 0x03); // DTR, RTS
    }

    /// A received byte, if one is waiting.
    pub fn get(&self) -> Option<u8> {
        (self.inp(reg::LSR) & LSR_DR != 0).then(|| self.inp(reg::DATA))
    }

    /// Sends one byte, waiting while the transmitter is busy.
    pub fn put(&self, byte: u8) {
        while self.inp(reg::LSR) & LSR_THRE == 0 {
            core::hint::spin_loop();
        }
        self.out(reg::DATA, byte);
    }
}
