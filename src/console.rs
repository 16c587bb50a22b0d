//! The physical console, shared by the hypervisor's log and every VM's
//! virtual UART. Each line is written whole under one lock and tagged with
//! who wrote it: `[tessera]` or `[<vm name>]`.

use crate::config::SYSTEM;
use crate::devices::pl011::LineSink;
use crate::platform::ConsoleUart;
use core::fmt::{self, Write};
use spin::Mutex;

struct Console {
    uart: ConsoleUart,
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
    uart: ConsoleUart::new(SYSTEM.board.console.base),
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
        uart: ConsoleUart::new(SYSTEM.board.console.base),
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

/// Console output of one VM's virtual UART, tagged with the VM name.
pub struct VmConsole {
    /// The VM name.
    pub name: &'static str,
}

impl LineSink for VmConsole {
    fn emit_line(&self, line: &[u8]) {
        write_line(self.name, line);
    }
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
