//! What a virtual UART does with transmitted bytes: collects them into
//! lines and hands each whole line to a [`LineSink`] (the hypervisor
//! console, which tags it with the VM name). Used by the 16550 model and
//! the x86 line console.

use spin::Mutex;

/// Longest line buffered before it is flushed without a newline.
pub const LINE_MAX: usize = 120;

/// Where completed output lines go.
pub trait LineSink: Send + Sync {
    /// Emits one line (without its newline).
    fn emit_line(&self, line: &[u8]);
}

/// Bytes of the line being written, and where lines go.
pub struct LineBuffer<S: LineSink> {
    sink: S,
    line: Mutex<heapless::Vec<u8, LINE_MAX>>,
}

impl<S: LineSink> LineBuffer<S> {
    /// An empty line for `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            line: Mutex::new(heapless::Vec::new()),
        }
    }

    /// One transmitted byte: a newline ends the line, carriage returns are
    /// dropped, a full buffer is emitted as a line of its own.
    pub fn push(&self, byte: u8) {
        let mut line = self.line.lock();
        match byte {
            b'\n' => {
                self.sink.emit_line(&line);
                line.clear();
            }
            b'\r' => {}
            _ => {
                if line.push(byte).is_err() {
                    self.sink.emit_line(&line);
                    line.clear();
                    let _ = line.push(byte);
                }
            }
        }
    }

    /// Emits whatever is buffered (used when the VM stops).
    pub fn flush(&self) {
        let mut line = self.line.lock();
        if !line.is_empty() {
            self.sink.emit_line(&line);
            line.clear();
        }
    }
}
