//! The physical PL011 UART the hypervisor prints on (polled transmit only).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    CR [
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) []
    ],
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) []
    ]
}

register_structs! {
    Pl011Regs {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x1000 => @END),
    }
}

/// A PL011 at a fixed address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// The UART at `base` (from the board description).
    pub const fn new(base: u64) -> Self {
        Self {
            base: base as usize,
        }
    }

    fn regs(&self) -> &Pl011Regs {
        // SAFETY: the board description gives a PL011 at `base`, mapped as
        // device memory by the EL2 identity map (and by firmware before it).
        unsafe { &*(self.base as *const Pl011Regs) }
    }

    /// Enables the UART and its transmitter, keeping the baud rate firmware
    /// programmed.
    pub fn enable(&self) {
        self.regs()
            .cr
            .write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    /// Sends one byte, waiting while the FIFO is full.
    pub fn put(&self, byte: u8) {
        let regs = self.regs();
        while regs.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        regs.dr.set(byte as u32);
    }
}
