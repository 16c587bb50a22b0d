//! The x86 console (for now): whole lines, tagged with who wrote them
//! (`[tessera]`, `[<vm>]`), written to the board's 16550 under one lock.
//! Output only; the byte-stream multiplexer with input of the AArch64
//! console (`physical.rs`) is not ported to x86 yet. The API is the same,
//! so the neutral core does not know which one it has.

use crate::config::SYSTEM;
use crate::devices::line::{LineBuffer, LineSink};
use crate::devices::pl011::{SerialBackend, VirtualPl011};
use crate::devices::InterruptLine;
use crate::drivers::uart16550::Uart16550;
use alloc::boxed::Box;
use core::fmt::{self, Write};
use spin::Mutex;

struct Console {
    uart: Uart16550,
}

impl Console {
    fn put_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.uart.put(b'\r');
            }
            self.uart.put(b);
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_bytes(s.as_bytes());
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: Uart16550::new(SYSTEM.board.console.base),
});

/// Writes one tagged line.
pub fn write_line(tag: &str, line: &[u8]) {
    let mut c = CONSOLE.lock();
    c.put_bytes(b"[");
    c.put_bytes(tag.as_bytes());
    c.put_bytes(b"] ");
    c.put_bytes(line);
    c.put_bytes(b"\n");
}

/// Writes one `[tessera]` line from format arguments.
pub fn print_hyp(args: fmt::Arguments) {
    let mut c = CONSOLE.lock();
    let _ = c.write_str("[tessera] ");
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
}

/// Writes straight to the UART even if another core holds the console lock
/// (it may have died holding it). Panic path only.
pub fn print_emergency(args: fmt::Arguments) {
    let mut c = Console {
        uart: Uart16550::new(SYSTEM.board.console.base),
    };
    let _ = c.write_str("[tessera] ");
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
}

/// Prints a `[tessera]` line.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print_hyp(format_args!($($arg)*)) };
}

/// Nothing is buffered between lines.
pub fn poll() {}

/// Nothing is buffered between lines.
pub fn flush() {}

/// A VM's console lines, tagged with its name.
pub struct VmLines {
    /// The VM name.
    pub name: &'static str,
}

impl LineSink for VmLines {
    fn emit_line(&self, line: &[u8]) {
        write_line(self.name, line);
    }
}

/// The console side of a VM's virtual PL011 (x86 configs have none yet:
/// their COM ports are 16550s on [`VmLines`]).
pub struct VmConsole {
    out: LineBuffer<VmLines>,
}

impl SerialBackend for VmConsole {
    fn transmit(&self, byte: u8) -> bool {
        self.out.push(byte);
        true
    }
    fn tx_level(&self) -> (usize, usize) {
        (0, usize::MAX)
    }
    fn flush(&self) {
        self.out.flush();
    }
}

/// A virtual PL011 whose output goes to the console as `name`'s lines.
pub fn vm_uart(
    name: &'static str,
    irq: &'static dyn InterruptLine,
) -> Result<&'static VirtualPl011<VmConsole>, &'static str> {
    let backend = VmConsole {
        out: LineBuffer::new(VmLines { name }),
    };
    Ok(Box::leak(Box::new(VirtualPl011::new(backend, irq))))
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        print_hyp(format_args!("{}: {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Enables the UART and routes the `log` crate to the console.
pub fn init() {
    CONSOLE.lock().uart.enable();
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
