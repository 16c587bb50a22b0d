//! The console multiplexer: many byte streams (the hypervisor log and each
//! VM's virtual UART), one physical terminal. Pure logic, host-tested; the
//! bare-metal glue in `console/mod.rs` supplies the buffers, the UART and
//! the clock.
//!
//! Output is a byte stream, not lines: a partial line (a shell prompt, an
//! echoed key) is written as soon as it is drained. Every line starts with
//! its source's tag, `[<name>] `. When another source's output has to go
//! out while a line is open, the open line is ended and its source is
//! re-tagged when it continues, with `[<name>]+ ` so a reader (or a test)
//! can join the two parts again. To keep concurrent output readable, another
//! source waits while the open line is younger than `grace` ticks (its
//! source is probably about to finish it), unless the drain is forced, the
//! waiting buffer is filling up, or the open line's source has paused
//! (its driver said it has nothing more to send, or the VM stopped). The
//! wait is bounded per line, so a source that keeps a line open cannot hold
//! the others back for longer.

/// Output buffer of one source (a VM's TX ring): a fixed-size byte ring.
pub struct Ring<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Ring<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Appends `byte`; `false` (and the byte is dropped) when full.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.len == N {
            return false;
        }
        self.buf[(self.head + self.len) % N] = byte;
        self.len += 1;
        true
    }

    /// Appends as much of `bytes` as fits; returns how many.
    pub fn push_slice(&mut self, bytes: &[u8]) -> usize {
        bytes.iter().take_while(|&&b| self.push(b)).count()
    }

    /// Copies the oldest bytes into `out` without removing them.
    pub fn peek(&self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = self.buf[(self.head + i) % N];
        }
        n
    }

    /// Removes the `n` oldest bytes (at most all of them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % N;
        self.len -= n;
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free space.
    pub fn room(&self) -> usize {
        N - self.len
    }
}

/// One stream of output, as the multiplexer drains it.
pub trait Source {
    /// Name written in the tag, `[<tag>] `.
    fn tag(&self) -> &str;
    /// Copies the oldest pending bytes into `out` without removing them.
    fn peek(&self, out: &mut [u8]) -> usize;
    /// Removes the `n` oldest bytes (they have been written).
    fn consume(&self, n: usize);
    /// Bytes pending.
    fn pending(&self) -> usize;
    /// The producer has paused (nothing more to send for now, or a stopped
    /// VM): its open line holds nobody back.
    fn paused(&self) -> bool;
}

/// Where the multiplexed stream goes (the physical UART).
pub trait Sink {
    /// Whether a byte can be written now without waiting long.
    fn ready(&mut self) -> bool;
    /// Writes one byte (may wait for a few byte times).
    fn put(&mut self, byte: u8);
}

/// A source with this much pending is never held back by another's open
/// line: its producer would soon see a full buffer.
pub const PRESSURE: usize = 1024;

#[derive(Clone, Copy, Default)]
struct LineState {
    /// The source wrote bytes since its last newline.
    started: bool,
    /// A carriage return is held until we know whether a newline follows.
    cr: bool,
    /// Another source's output ended this line on the terminal before its
    /// newline: its next bytes continue it on a `[<name>]+ ` line.
    cut: bool,
}

/// Result of one [`Mux::drain`] pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drained {
    /// Some output is still pending (held back, or the sink was not ready).
    pub leftover: bool,
    /// The sink stopped being ready (as opposed to output held back).
    pub sink_full: bool,
    /// Bit `i` set: source `i` had bytes consumed (room was freed).
    pub consumed: u64,
}

/// Tagging state of the terminal and of every source (at most `N`, and at
/// most 64 so [`Drained::consumed`] can name them).
pub struct Mux<const N: usize> {
    /// Source whose line is open on the terminal (cursor after its text).
    open: Option<usize>,
    /// When the open line was opened (clock ticks).
    opened_at: u64,
    /// The time of the current drain pass.
    now: u64,
    lines: [LineState; N],
    grace: u64,
}

/// Bytes copied out of a source per step.
const CHUNK: usize = 64;

impl<const N: usize> Mux<N> {
    /// Terminal at the start of a line; another source waits at most
    /// until the open line is `grace` ticks old.
    pub const fn new(grace: u64) -> Self {
        Self {
            open: None,
            opened_at: 0,
            now: 0,
            lines: [LineState {
                started: false,
                cr: false,
                cut: false,
            }; N],
            grace,
        }
    }

    /// Sets the hold-back time (once the clock frequency is known).
    pub fn set_grace(&mut self, grace: u64) {
        self.grace = grace;
    }

    /// Writes what the sources hold, in order: first the source whose line
    /// is open, then the others by index, skipping those held back by an
    /// open line (unless `force`). Stops when the sink is not ready.
    pub fn drain(
        &mut self,
        sources: &[&dyn Source],
        sink: &mut dyn Sink,
        now: u64,
        force: bool,
    ) -> Drained {
        let mut d = Drained::default();
        self.now = now;
        let sources = &sources[..sources.len().min(N).min(64)];
        let first = self.open;
        let order = first
            .into_iter()
            .chain((0..sources.len()).filter(|&i| Some(i) != first));
        for i in order {
            let Some(src) = sources.get(i) else { continue };
            if src.pending() == 0 {
                continue;
            }
            if !force && self.held(sources, i) {
                d.leftover = true;
                continue;
            }
            if !self.drain_one(i, *src, sink, &mut d) {
                d.leftover = true;
                d.sink_full = true;
                return d;
            }
        }
        d
    }

    /// Whether source `i` must wait for the open line of another source.
    fn held(&self, sources: &[&dyn Source], i: usize) -> bool {
        let Some(o) = self.open.filter(|&o| o != i) else {
            return false;
        };
        let Some(owner) = sources.get(o) else {
            return false;
        };
        !owner.paused()
            && self.now.wrapping_sub(self.opened_at) < self.grace
            && sources[i].pending() < PRESSURE
    }

    /// Writes everything source `i` holds; `false` if the sink filled up.
    fn drain_one(
        &mut self,
        i: usize,
        src: &dyn Source,
        sink: &mut dyn Sink,
        d: &mut Drained,
    ) -> bool {
        let mut chunk = [0u8; CHUNK];
        loop {
            let n = src.peek(&mut chunk);
            if n == 0 {
                return true;
            }
            for (k, &b) in chunk[..n].iter().enumerate() {
                if !sink.ready() {
                    if k > 0 {
                        src.consume(k);
                        d.consumed |= 1 << i;
                    }
                    return false;
                }
                self.put(i, src.tag(), b, sink);
            }
            src.consume(n);
            d.consumed |= 1 << i;
        }
    }

    /// Writes one byte of source `i`, with whatever tagging it needs.
    fn put(&mut self, i: usize, tag: &str, byte: u8, sink: &mut dyn Sink) {
        if let Some(o) = self.open.filter(|&o| o != i) {
            // Another source's line is open: end it there.
            put_all(sink, b"\r\n");
            if let Some(cut) = self.lines.get_mut(o) {
                cut.cut = true;
            }
            self.open = None;
        }
        let line = &mut self.lines[i];
        match byte {
            b'\r' => line.cr = true,
            b'\n' => {
                if self.open == Some(i) {
                    put_all(sink, b"\r\n");
                    self.open = None;
                } else if !line.started {
                    // An empty line of its own.
                    put_tag(sink, tag);
                    put_all(sink, b"\r\n");
                }
                // Otherwise the line was already ended by another source.
                *line = LineState::default();
            }
            _ => {
                if core::mem::take(&mut line.cr) && self.open == Some(i) {
                    // A lone carriage return: back to column 0, tag again.
                    sink.put(b'\r');
                    put_tag(sink, tag);
                }
                if self.open != Some(i) {
                    if core::mem::take(&mut line.cut) {
                        put_continuation_tag(sink, tag);
                    } else {
                        put_tag(sink, tag);
                    }
                    self.open = Some(i);
                    self.opened_at = self.now;
                }
                sink.put(byte);
                line.started = true;
            }
        }
    }
}

fn put_all(sink: &mut dyn Sink, bytes: &[u8]) {
    for &b in bytes {
        sink.put(b);
    }
}

fn put_tag(sink: &mut dyn Sink, tag: &str) {
    sink.put(b'[');
    put_all(sink, tag.as_bytes());
    put_all(sink, b"] ");
}

/// The tag of a line that continues one another source's output cut.
fn put_continuation_tag(sink: &mut dyn Sink, tag: &str) {
    sink.put(b'[');
    put_all(sink, tag.as_bytes());
    put_all(sink, b"]+ ");
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};
    use std::string::String;
    use std::vec::Vec;

    struct Src {
        tag: &'static str,
        ring: RefCell<Ring<4096>>,
        paused: Cell<bool>,
    }

    impl Src {
        fn new(tag: &'static str) -> Self {
            Self {
                tag,
                ring: RefCell::new(Ring::new()),
                paused: Cell::new(false),
            }
        }
        /// The producer writes `bytes` (at time `_now`, for the reader).
        fn write(&self, bytes: &[u8], _now: u64) {
            assert_eq!(self.ring.borrow_mut().push_slice(bytes), bytes.len());
        }
    }

    impl Source for Src {
        fn tag(&self) -> &str {
            self.tag
        }
        fn peek(&self, out: &mut [u8]) -> usize {
            self.ring.borrow().peek(out)
        }
        fn consume(&self, n: usize) {
            self.ring.borrow_mut().consume(n)
        }
        fn pending(&self) -> usize {
            self.ring.borrow().len()
        }
        fn paused(&self) -> bool {
            self.paused.get()
        }
    }

    /// A terminal that takes `room` bytes, then is not ready.
    struct Term {
        out: Vec<u8>,
        room: usize,
    }

    impl Term {
        fn new() -> Self {
            Self {
                out: Vec::new(),
                room: usize::MAX,
            }
        }
        fn text(&mut self) -> String {
            String::from_utf8(core::mem::take(&mut self.out)).unwrap()
        }
    }

    impl Sink for Term {
        fn ready(&mut self) -> bool {
            self.room > 0
        }
        fn put(&mut self, byte: u8) {
            self.room = self.room.saturating_sub(1);
            self.out.push(byte);
        }
    }

    const GRACE: u64 = 100;

    fn drain(mux: &mut Mux<4>, srcs: &[&Src], term: &mut Term, now: u64) -> Drained {
        let dyns: Vec<&dyn Source> = srcs.iter().map(|s| *s as &dyn Source).collect();
        mux.drain(&dyns, term, now, false)
    }

    #[test]
    fn ring_wraps_and_reports_room() {
        let mut r: Ring<4> = Ring::new();
        assert_eq!(r.push_slice(b"abcde"), 4);
        assert_eq!(r.room(), 0);
        r.consume(3);
        assert_eq!(r.push_slice(b"xyz"), 3);
        let mut out = [0; 8];
        assert_eq!(r.peek(&mut out), 4);
        assert_eq!(&out[..4], b"dxyz");
        r.consume(10);
        assert!(r.is_empty());
    }

    #[test]
    fn whole_lines_are_tagged_and_crlf_is_one_line_end() {
        let a = Src::new("alpha");
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"hello\r\nworld\n\n", 1);
        let d = drain(&mut mux, &[&a], &mut term, 1);
        assert_eq!(
            term.text(),
            "[alpha] hello\r\n[alpha] world\r\n[alpha] \r\n"
        );
        assert!(!d.leftover);
        assert_eq!(d.consumed, 1);
    }

    #[test]
    fn a_partial_line_appears_at_once_and_continues_untagged() {
        let a = Src::new("alpha");
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"/ # ", 1);
        drain(&mut mux, &[&a], &mut term, 1);
        assert_eq!(term.text(), "[alpha] / # ");
        a.write(b"l", 2);
        drain(&mut mux, &[&a], &mut term, 2);
        a.write(b"s\r\n", 3);
        drain(&mut mux, &[&a], &mut term, 3);
        assert_eq!(term.text(), "ls\r\n");
    }

    #[test]
    fn a_lone_carriage_return_retags_the_line() {
        let a = Src::new("a");
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"10%\r20%\r\n", 1);
        drain(&mut mux, &[&a], &mut term, 1);
        assert_eq!(term.text(), "[a] 10%\r[a] 20%\r\n");
    }

    #[test]
    fn interleaving_ends_the_open_line_and_retags_on_continuation() {
        let (hyp, a) = (Src::new("tessera"), Src::new("alpha"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"/ # ", 10);
        drain(&mut mux, &[&hyp, &a], &mut term, 10);
        // Long after alpha's last write: no hold-back.
        hyp.write(b"input: beta\n", 500);
        drain(&mut mux, &[&hyp, &a], &mut term, 500);
        a.write(b"ls\n", 600);
        drain(&mut mux, &[&hyp, &a], &mut term, 600);
        assert_eq!(
            term.text(),
            "[alpha] / # \r\n[tessera] input: beta\r\n[alpha]+ ls\r\n"
        );
        a.write(b"pwd\n", 700);
        drain(&mut mux, &[&hyp, &a], &mut term, 700);
        assert_eq!(term.text(), "[alpha] pwd\r\n", "the next line is a new one");
    }

    #[test]
    fn an_interrupted_line_ended_by_its_own_newline_adds_no_empty_line() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"x\r", 1);
        drain(&mut mux, &[&a, &b], &mut term, 1);
        b.write(b"y\n", 1000);
        drain(&mut mux, &[&a, &b], &mut term, 1000);
        a.write(b"\n", 1001);
        drain(&mut mux, &[&a, &b], &mut term, 1001);
        assert_eq!(term.text(), "[a] x\r\n[b] y\r\n");
    }

    #[test]
    fn another_source_waits_while_the_open_line_is_being_written() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"TEST one: ", 10);
        drain(&mut mux, &[&a, &b], &mut term, 10);
        b.write(b"TEST two: PASS\n", 20);
        let d = drain(&mut mux, &[&a, &b], &mut term, 20);
        assert!(d.leftover && !d.sink_full, "b is held back");
        a.write(b"PASS\n", 30);
        drain(&mut mux, &[&a, &b], &mut term, 30);
        assert_eq!(
            term.text(),
            "[a] TEST one: PASS\r\n[b] TEST two: PASS\r\n",
            "both lines whole"
        );
    }

    #[test]
    fn the_hold_back_ends_after_the_grace_time_or_when_forced() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"/ # ", 10);
        b.write(b"late\n", 20);
        drain(&mut mux, &[&a, &b], &mut term, 20);
        assert_eq!(term.text(), "[a] / # ");
        let d = drain(&mut mux, &[&a, &b], &mut term, 20 + GRACE);
        assert!(!d.leftover);
        assert_eq!(term.text(), "\r\n[b] late\r\n");

        a.write(b"x", 200);
        drain(&mut mux, &[&a, &b], &mut term, 200);
        b.write(b"now\n", 201);
        let dyns: [&dyn Source; 2] = [&a, &b];
        mux.drain(&dyns, &mut term, 201, true);
        assert_eq!(term.text(), "[a]+ x\r\n[b] now\r\n", "a's prompt continues");
        a.write(b"y\n", 202);
        drain(&mut mux, &[&a, &b], &mut term, 202);
        assert_eq!(term.text(), "[a]+ y\r\n");
    }

    #[test]
    fn a_line_kept_open_holds_others_back_only_for_the_grace_time() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b".", 0);
        drain(&mut mux, &[&a, &b], &mut term, 0);
        b.write(b"b1\n", 10);
        for t in [50, 90] {
            a.write(b".", t);
            drain(&mut mux, &[&a, &b], &mut term, t);
        }
        assert_eq!(term.text(), "[a] ...", "b waits while a's line is young");
        a.write(b".", 120);
        drain(&mut mux, &[&a, &b], &mut term, 120);
        assert_eq!(
            term.text(),
            ".\r\n[b] b1\r\n",
            "a still writing, but its line is too old"
        );
        a.write(b".", 130);
        drain(&mut mux, &[&a, &b], &mut term, 130);
        assert_eq!(term.text(), "[a]+ .", "re-tagged as a continuation");
    }

    #[test]
    fn a_paused_source_holds_nobody_back() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"last words", 0);
        drain(&mut mux, &[&a, &b], &mut term, 0);
        a.paused.set(true);
        b.write(b"summary\n", 1);
        drain(&mut mux, &[&a, &b], &mut term, 1);
        assert_eq!(term.text(), "[a] last words\r\n[b] summary\r\n");
    }

    #[test]
    fn a_filling_buffer_is_not_held_back() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b">", 10);
        drain(&mut mux, &[&a, &b], &mut term, 10);
        b.write(&[b'y'; PRESSURE], 11);
        let d = drain(&mut mux, &[&a, &b], &mut term, 11);
        assert!(!d.leftover);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn a_full_sink_stops_the_pass_and_the_next_pass_resumes_exactly() {
        let (a, b) = (Src::new("a"), Src::new("b"));
        let (mut mux, mut term) = (Mux::<4>::new(GRACE), Term::new());
        a.write(b"abc\n", 1);
        b.write(b"def\n", 1);
        term.room = 6; // "[a] ab"
        let d = drain(&mut mux, &[&a, &b], &mut term, 1000);
        assert!(d.leftover && d.sink_full);
        assert_eq!(d.consumed, 0b01, "a freed room, b did not");
        assert_eq!(a.pending(), 2);
        term.room = usize::MAX;
        let d = drain(&mut mux, &[&a, &b], &mut term, 1000);
        assert!(!d.leftover);
        assert_eq!(term.text(), "[a] abc\r\n[b] def\r\n");
    }
}
