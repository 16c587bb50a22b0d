//! The physical PL011 UART of the hypervisor console: polled transmit,
//! receive by interrupt (or polled).

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    DR [
        /// The received or transmitted byte.
        DATA OFFSET(0) NUMBITS(8) []
    ],
    FR [
        /// Busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) []
    ],
    LCR_H [
        /// FIFOs enabled.
        FEN OFFSET(4) NUMBITS(1) [],
        /// Word length.
        WLEN OFFSET(5) NUMBITS(2) [
            Bits8 = 3
        ]
    ],
    CR [
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) []
    ],
    INT [
        /// Receive (FIFO at its trigger level).
        RX OFFSET(4) NUMBITS(1) [],
        /// Transmit (FIFO at or below its trigger level).
        TX OFFSET(5) NUMBITS(1) [],
        /// Receive timeout (data waiting below the trigger level).
        RT OFFSET(6) NUMBITS(1) []
    ]
}

register_structs! {
    Pl011Regs {
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: ReadWrite<u32>),
        (0x28 => fbrd: ReadWrite<u32>),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => imsc: ReadWrite<u32, INT::Register>),
        (0x3c => _reserved3),
        (0x40 => mis: ReadOnly<u32, INT::Register>),
        (0x44 => icr: WriteOnly<u32, INT::Register>),
        (0x48 => _reserved4),
        (0x1000 => @END),
    }
}

/// A PL011 at a fixed address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// The UART at `base` (from the board description).
    ///
    /// # Safety
    /// A PL011's registers must be at `base`, mapped as device memory for
    /// as long as the value is used (every method accesses them).
    pub const unsafe fn new(base: u64) -> Self {
        Self {
            base: base as usize,
        }
    }

    fn regs(&self) -> &Pl011Regs {
        // SAFETY: `new`'s contract: a PL011 is mapped at `base`.
        unsafe { &*(self.base as *const Pl011Regs) }
    }

    /// Enables the UART, its transmitter, receiver and FIFOs (8N1), keeping
    /// the baud rate firmware programmed. The TRM wants the UART disabled
    /// and idle while the line control changes.
    pub fn enable(&self) {
        let regs = self.regs();
        while regs.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
        regs.cr.set(0);
        regs.lcr_h.write(LCR_H::FEN::SET + LCR_H::WLEN::Bits8);
        regs.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    /// Sets the baud-rate divisors (integer and 64ths, see
    /// `platform::uart_divisor`) with the UART disabled; they take effect
    /// with the next line-control write ([`Self::enable`] makes it).
    pub fn set_divisors(&self, ibrd: u32, fbrd: u32) {
        let regs = self.regs();
        while regs.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
        regs.cr.set(0);
        regs.ibrd.set(ibrd);
        regs.fbrd.set(fbrd);
    }

    /// Whether the transmit FIFO has room (a [`Self::put`] will not wait).
    pub fn tx_ready(&self) -> bool {
        !self.regs().fr.is_set(FR::TXFF)
    }

    /// Sends one byte, waiting while the FIFO is full.
    pub fn put(&self, byte: u8) {
        let regs = self.regs();
        while regs.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        regs.dr.write(DR::DATA.val(byte as u32));
    }

    /// Whether the receive FIFO holds data.
    #[inline(always)]
    pub fn rx_ready(&self) -> bool {
        !self.regs().fr.is_set(FR::RXFE)
    }

    /// The next received byte, if any (errors are dropped with their byte's
    /// flags: a console has no use for them).
    pub fn get(&self) -> Option<u8> {
        let regs = self.regs();
        if regs.fr.is_set(FR::RXFE) {
            return None;
        }
        Some(regs.dr.read(DR::DATA) as u8)
    }

    /// Unmasks the receive and receive-timeout interrupts (the interrupt
    /// controller side is the caller's).
    pub fn enable_rx_interrupt(&self) {
        self.regs().imsc.modify(INT::RX::SET + INT::RT::SET);
    }

    /// Clears the receive interrupts (before reading the FIFO empty, so a
    /// byte arriving meanwhile raises them again).
    pub fn clear_rx_interrupt(&self) {
        self.regs().icr.write(INT::RX::SET + INT::RT::SET);
    }

    /// Unmasks (`true`) or masks the transmit interrupt: it fires when the
    /// FIFO has drained to its trigger level. Masking also clears it.
    pub fn set_tx_interrupt(&self, on: bool) {
        let regs = self.regs();
        if on {
            regs.imsc.modify(INT::TX::SET);
        } else {
            regs.imsc.modify(INT::TX::CLEAR);
            regs.icr.write(INT::TX::SET);
        }
    }

    /// Whether the transmit interrupt is pending and unmasked.
    pub fn tx_interrupt(&self) -> bool {
        self.regs().mis.is_set(INT::TX)
    }
}
