//! The PL011 baud-rate divisor: a 16.6 fixed-point `clock / (16 * baud)`
//! split into IBRD (integer part) and FBRD (64ths), rounded to nearest as
//! the PL011 TRM describes.

/// `(IBRD, FBRD)` for a PL011 clocked at `clock_hz` sending `baud`; `None`
/// when the rate cannot be reached (IBRD must be 1..=0xffff).
pub fn pl011_divisors(clock_hz: u32, baud: u32) -> Option<(u32, u32)> {
    if baud == 0 {
        return None;
    }
    // 64 * clock / (16 * baud), rounded: 4 * clock / baud.
    let scaled = (4 * u64::from(clock_hz) + u64::from(baud) / 2) / u64::from(baud);
    let ibrd = scaled >> 6;
    let fbrd = scaled & 0x3f;
    if ibrd == 0 || ibrd > 0xffff {
        return None;
    }
    Some((ibrd as u32, fbrd as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi4_uart_clock_at_115200() {
        // 48 MHz / (16 * 115200) = 26.042 -> 26 + 3/64 (0.047): 0.02 % fast.
        assert_eq!(pl011_divisors(48_000_000, 115_200), Some((26, 3)));
        // The PL011 TRM's worked example: 4 MHz, 230400 baud -> 1 + 5/64.
        assert_eq!(pl011_divisors(4_000_000, 230_400), Some((1, 5)));
        assert_eq!(pl011_divisors(24_000_000, 9_600), Some((156, 16)));
    }

    #[test]
    fn unreachable_rates_are_refused() {
        assert_eq!(pl011_divisors(48_000_000, 0), None);
        assert_eq!(pl011_divisors(1_000_000, 115_200), None, "IBRD 0");
        assert_eq!(pl011_divisors(u32::MAX, 1), None, "IBRD above 16 bits");
    }
}
