//! The loader's Event Viewer messages, in one table.
//!
//! Owns: each message's ID (the `NTSTATUS`-shaped value the driver puts in
//! `IO_ERROR_LOG_PACKET::ErrorCode` and the message table resource is
//! keyed by), its severity, its text and the names of its insertion
//! strings; the event source's registry facts; and the one renderer of a
//! message with its strings. `loader.sys` takes the IDs from here, `cargo
//! xtask build` writes the message compiler's input from here
//! ([`write_mc`]), and the image check compares the message table inside
//! the built `loader.sys` with this table.
//!
//! Must never: allocate, panic on any input, or hold logic beyond naming
//! and rendering (it is linked into the kernel image).
//!
//! Text conventions are `FormatMessage`'s: `%1` is the driver's name (the
//! I/O manager fills it in), `%2`.. are the strings the driver supplies,
//! `%%` is a percent sign, `%n` a line break.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

/// The event source: the loader's service name, under which the I/O
/// manager files the driver's entries (the driver object is `\Driver\SerialLoader`).
pub const EVENT_SOURCE: &str = "SerialLoader";
/// The log the entries go to.
pub const EVENT_LOG: &str = "System";
/// The event source's key under `HKLM`.
pub const EVENT_SOURCE_KEY: &str = "System\\CurrentControlSet\\Services\\EventLog\\System\\SerialLoader";
/// `EventMessageFile`: the loader image, which carries the message table.
/// (`REG_EXPAND_SZ`.)
pub const EVENT_MESSAGE_FILE: &str = "%SystemRoot%\\System32\\drivers\\loader.sys";
/// `TypesSupported`: error, warning and information.
pub const TYPES_SUPPORTED: u32 = 7;

/// The facility of every message (12 bits, with the customer bit set: the
/// codes are the driver's own, not Microsoft's).
pub const FACILITY: u32 = 0x0CA;
/// The customer bit of an `NTSTATUS`-shaped ID.
pub const CUSTOMER_BIT: u32 = 0x2000_0000;

/// `ERROR_LOG_MAXIMUM_SIZE` for Windows 7 (x86 and x64): an entry, packet
/// and strings together, is at most this many bytes.
pub const ERROR_LOG_MAXIMUM_SIZE: usize = 240;
/// `sizeof(IO_ERROR_LOG_PACKET)` on x64 (it ends in `ULONG DumpData[1]`,
/// padded to 8): where the strings start when there is no dump data.
pub const PACKET_HEADER_SIZE: usize = 48;
/// UTF-16 units left for the insertion strings, their NULs included.
pub const MAX_STRING_UNITS: usize = (ERROR_LOG_MAXIMUM_SIZE - PACKET_HEADER_SIZE) / 2;

/// How serious an event is; the top two bits of the ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Success,
    Informational,
    Warning,
    Error,
}

impl Severity {
    /// The two-bit value.
    #[must_use]
    pub const fn bits(self) -> u32 {
        match self {
            Severity::Success => 0,
            Severity::Informational => 1,
            Severity::Warning => 2,
            Severity::Error => 3,
        }
    }

    /// The name the message compiler input uses.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Success => "Success",
            Severity::Informational => "Informational",
            Severity::Warning => "Warning",
            Severity::Error => "Error",
        }
    }
}

/// A message ID as the driver writes it: severity, customer bit, facility
/// and the event code (the "Event ID" Event Viewer shows).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(pub u32);

impl MessageId {
    /// The ID of event `code` with `severity`.
    #[must_use]
    pub const fn new(severity: Severity, code: u16) -> MessageId {
        MessageId((severity.bits() << 30) | CUSTOMER_BIT | (FACILITY << 16) | code as u32)
    }

    /// The event code: the "Event ID" column of Event Viewer.
    #[must_use]
    pub const fn code(self) -> u16 {
        (self.0 & 0xFFFF) as u16
    }

    /// The severity bits.
    #[must_use]
    pub const fn severity(self) -> Severity {
        match self.0 >> 30 {
            0 => Severity::Success,
            1 => Severity::Informational,
            2 => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The raw bits as the `NTSTATUS` field (`ErrorCode`) holds them.
    #[must_use]
    #[allow(clippy::cast_possible_wrap)] // the bit pattern is the point
    pub const fn as_status(self) -> i32 {
        self.0 as i32
    }
}

/// The loader service started.
pub const LOADER_STARTED: MessageId = MessageId::new(Severity::Informational, 1);
/// The loader's `Parameters` are unusable: it serves status only.
pub const CONFIG_INVALID: MessageId = MessageId::new(Severity::Error, 2);
/// The loader service stopped (after retiring its payloads).
pub const LOADER_STOPPED: MessageId = MessageId::new(Severity::Informational, 3);
/// A payload was loaded and registered (start or `loaderctl load`).
pub const PAYLOAD_LOADED: MessageId = MessageId::new(Severity::Informational, 4);
/// A live upgrade switched slots and retired the old one.
pub const PAYLOAD_UPGRADED: MessageId = MessageId::new(Severity::Informational, 5);
/// A rollback switched back and retired the other slot.
pub const PAYLOAD_ROLLED_BACK: MessageId = MessageId::new(Severity::Informational, 6);
/// The active payload was retired; none is active.
pub const PAYLOAD_UNLOADED: MessageId = MessageId::new(Severity::Informational, 7);
/// An upgrade (or rollback, load, unload) was refused; the reason is in it.
pub const OPERATION_REFUSED: MessageId = MessageId::new(Severity::Warning, 8);
/// A payload's teardown outlasted the bound: it is stuck in memory.
pub const PAYLOAD_STUCK: MessageId = MessageId::new(Severity::Error, 9);

/// One message of the table.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub id: MessageId,
    /// The symbolic name (the message compiler's `SymbolicName`).
    pub symbol: &'static str,
    /// The text, in `FormatMessage` syntax.
    pub text: &'static str,
    /// What `%2`, `%3`, ... stand for, in order.
    pub inserts: &'static [&'static str],
}

/// Every message, in code order.
pub const MESSAGES: &[Message] = &[
    Message {
        id: LOADER_STARTED,
        symbol: "SLDR_LOADER_STARTED",
        text: "%1 version %2 started. Slot A loads service %3 and slot B service %4; the slot to start with is %5.",
        inserts: &["loader version", "slot A service", "slot B service", "slot to start with (A, B or none)"],
    },
    Message {
        id: CONFIG_INVALID,
        symbol: "SLDR_CONFIG_INVALID",
        text: "%1 cannot use the configuration in the Parameters key of its service: %2. It answers status requests only and loads no payload until the values are corrected and the service is restarted.",
        inserts: &["status"],
    },
    Message {
        id: LOADER_STOPPED,
        symbol: "SLDR_LOADER_STOPPED",
        text: "%1 stopped. It retired every payload it had loaded first.",
        inserts: &[],
    },
    Message {
        id: PAYLOAD_LOADED,
        symbol: "SLDR_PAYLOAD_LOADED",
        text: "%1 loaded %2 into slot %3 (service %4) and registered it with the Filter Manager; it is the active payload.",
        inserts: &["payload name and version", "slot", "service"],
    },
    Message {
        id: PAYLOAD_UPGRADED,
        symbol: "SLDR_PAYLOAD_UPGRADED",
        text: "%1 upgraded the payload: %2 in slot %3 (service %4) is now active, and slot %5 was retired.",
        inserts: &["payload name and version", "slot", "service", "retired slot"],
    },
    Message {
        id: PAYLOAD_ROLLED_BACK,
        symbol: "SLDR_PAYLOAD_ROLLED_BACK",
        text: "%1 rolled back: %2 in slot %3 (service %4) is active again, and slot %5 was retired.",
        inserts: &["payload name and version", "slot", "service", "retired slot"],
    },
    Message {
        id: PAYLOAD_UNLOADED,
        symbol: "SLDR_PAYLOAD_UNLOADED",
        text: "%1 unloaded the payload of slot %2 (service %3). No payload is active until 'loaderctl load'.",
        inserts: &["slot", "service"],
    },
    Message {
        id: OPERATION_REFUSED,
        symbol: "SLDR_OPERATION_REFUSED",
        text: "%1 refused the %2 (slot %3, service %4): %5. The active payload is unchanged: %6.",
        inserts: &["operation", "slot", "service", "status", "active payload"],
    },
    Message {
        id: PAYLOAD_STUCK,
        symbol: "SLDR_PAYLOAD_STUCK",
        text: "The payload of slot %2 (service %3) did not finish its teardown within %4 ms. Its image stays loaded until what it holds is released; 'loaderctl diagnose' shows what that is.",
        inserts: &["slot", "service", "bound in ms"],
    },
];

/// The message with this ID.
#[must_use]
pub fn message(id: MessageId) -> Option<&'static Message> {
    MESSAGES.iter().find(|m| m.id == id)
}

/// Writes `text` as Event Viewer shows it (`FormatMessage` with an array of
/// strings): `%1` is `driver`, `%2`.. are `strings`, `%%` `%`, `%n` a line
/// break, `%.` and `%!` the character, `%0` ends the text. An insert with
/// no string stays as written.
pub fn render(text: &str, driver: &str, strings: &[&str], out: &mut dyn Write) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.write_str(rest.get(..at).unwrap_or(""))?;
        let after = rest.get(at + 1..).unwrap_or("");
        let digits = after.bytes().take(2).take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let number: usize = after.get(..digits).and_then(|d| d.parse().ok()).unwrap_or(0);
            if number == 0 {
                return Ok(());
            }
            let insert = if number == 1 { Some(driver) } else { strings.get(number - 2).copied() };
            match insert {
                Some(s) => out.write_str(s)?,
                None => out.write_str(rest.get(at..=at + digits).unwrap_or(""))?,
            }
            rest = after.get(digits..).unwrap_or("");
            continue;
        }
        let mut chars = after.chars();
        match chars.next() {
            Some('n') => out.write_str("\r\n")?,
            Some(c @ ('%' | '.' | '!')) => out.write_char(c)?,
            Some(c) => {
                out.write_char('%')?;
                out.write_char(c)?;
            }
            None => out.write_char('%')?,
        }
        rest = chars.as_str();
    }
    out.write_str(rest)
}

/// Writes the message compiler's input (`windmc`/`mc.exe` syntax) for the
/// whole table. Compile it with the customer flag (`windmc -c`, `mc -c`),
/// which the IDs here carry.
pub fn write_mc(out: &mut dyn Write) -> fmt::Result {
    writeln!(
        out,
        "; // The SerialLoader event messages. Generated from loader-events (events/src/lib.rs); do not edit."
    )?;
    writeln!(out, "MessageIdTypedef=NTSTATUS")?;
    writeln!(
        out,
        "SeverityNames=(Success=0x0:STATUS_SEVERITY_SUCCESS Informational=0x1:STATUS_SEVERITY_INFORMATIONAL Warning=0x2:STATUS_SEVERITY_WARNING Error=0x3:STATUS_SEVERITY_ERROR)"
    )?;
    writeln!(out, "FacilityNames=(SerialLoader=0x{FACILITY:03X}:FACILITY_SERIAL_LOADER)")?;
    writeln!(out, "LanguageNames=(English=0x409:MSG00409)")?;
    for m in MESSAGES {
        writeln!(out)?;
        writeln!(out, "MessageId=0x{:04X}", m.id.code())?;
        writeln!(out, "Facility=SerialLoader")?;
        writeln!(out, "Severity={}", m.id.severity().name())?;
        writeln!(out, "SymbolicName={}", m.symbol)?;
        writeln!(out, "Language=English")?;
        writeln!(out, "{}", m.text)?;
        writeln!(out, ".")?;
    }
    Ok(())
}

/// A fixed-capacity text buffer for building insertion strings without a
/// heap. Writes past the capacity are cut at a character boundary and
/// remembered in [`Text::truncated`].
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Text<N> {
    #[must_use]
    pub const fn new() -> Self {
        Text { buf: [0; N], len: 0, truncated: false }
    }

    /// The text written so far.
    #[must_use]
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or(&[]);
        // Only whole characters are ever copied in, so this always succeeds.
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// Whether something did not fit.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0u8; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            let end = self.len + bytes.len();
            let Some(dst) = self.buf.get_mut(self.len..end) else {
                self.truncated = true;
                return Ok(());
            };
            dst.copy_from_slice(bytes);
            self.len = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn rendered(text: &str, strings: &[&str]) -> String {
        let mut s = String::new();
        render(text, EVENT_SOURCE, strings, &mut s).expect("render");
        s
    }

    #[test]
    fn ids_carry_severity_customer_bit_facility_and_code() {
        assert_eq!(LOADER_STARTED.0, 0x60CA_0001);
        assert_eq!(PAYLOAD_STUCK.0, 0xE0CA_0009);
        assert_eq!(OPERATION_REFUSED.0, 0xA0CA_0008);
        assert_eq!(PAYLOAD_STUCK.code(), 9);
        assert_eq!(PAYLOAD_STUCK.severity(), Severity::Error);
        assert!(OPERATION_REFUSED.as_status() < 0, "a warning or error ID is a failure NTSTATUS");
    }

    #[test]
    fn the_table_has_unique_ids_and_symbols_and_every_insert_is_named() {
        for (i, m) in MESSAGES.iter().enumerate() {
            assert_eq!(usize::from(m.id.code()), i + 1, "{} is out of order", m.symbol);
            assert!(m.symbol.starts_with("SLDR_"));
            for other in &MESSAGES[i + 1..] {
                assert_ne!(m.id, other.id);
                assert_ne!(m.symbol, other.symbol);
            }
            // Every %k the text uses has a name, and every name is used.
            for k in 2..m.inserts.len() + 4 {
                let used = m.text.contains(&std::format!("%{k}"));
                assert_eq!(used, k - 2 < m.inserts.len(), "{}: %{k}", m.symbol);
            }
            // A line made only of "." would end the message in the .mc file.
            assert!(m.text.lines().all(|l| l.trim() != "."), "{}", m.symbol);
            assert_eq!(message(m.id).map(|f| f.symbol), Some(m.symbol));
        }
        assert!(message(MessageId(0x60CA_0000)).is_none());
    }

    #[test]
    fn render_follows_format_message() {
        assert_eq!(rendered("%1 and %2, %3 at 100%% %4.", &["a", "b"]), "SerialLoader and a, b at 100% %4.");
        assert_eq!(rendered("x%ny%0z", &[]), "x\r\ny");
        assert_eq!(rendered("end%", &[]), "end%");
        assert_eq!(rendered("%12 %q %. %!", &[]), "%12 %q . !");
        let many: std::vec::Vec<&str> = (0..12).map(|_| "s").collect();
        assert_eq!(rendered("%13|%2", &many), "s|s");
    }

    #[test]
    fn every_message_renders_in_plain_words() {
        let samples: [(&MessageId, &[&str], &str); 9] = [
            (
                &LOADER_STARTED,
                &["0.1.0", "CounterFilterA", "CounterFilterB", "A"],
                "SerialLoader version 0.1.0 started. Slot A loads service CounterFilterA and slot B service CounterFilterB; the slot to start with is A.",
            ),
            (
                &CONFIG_INVALID,
                &["STATUS_INVALID_PARAMETER (0xC000000D)"],
                "SerialLoader cannot use the configuration in the Parameters key of its service: STATUS_INVALID_PARAMETER (0xC000000D). It answers status requests only and loads no payload until the values are corrected and the service is restarted.",
            ),
            (&LOADER_STOPPED, &[], "SerialLoader stopped. It retired every payload it had loaded first."),
            (
                &PAYLOAD_LOADED,
                &["CounterFilter v1", "A", "CounterFilterA"],
                "SerialLoader loaded CounterFilter v1 into slot A (service CounterFilterA) and registered it with the Filter Manager; it is the active payload.",
            ),
            (
                &PAYLOAD_UPGRADED,
                &["CounterFilter v2", "B", "CounterFilterB", "A"],
                "SerialLoader upgraded the payload: CounterFilter v2 in slot B (service CounterFilterB) is now active, and slot A was retired.",
            ),
            (
                &PAYLOAD_ROLLED_BACK,
                &["CounterFilter v1", "A", "CounterFilterA", "B"],
                "SerialLoader rolled back: CounterFilter v1 in slot A (service CounterFilterA) is active again, and slot B was retired.",
            ),
            (
                &PAYLOAD_UNLOADED,
                &["A", "CounterFilterA"],
                "SerialLoader unloaded the payload of slot A (service CounterFilterA). No payload is active until 'loaderctl load'.",
            ),
            (
                &OPERATION_REFUSED,
                &["upgrade", "B", "CounterFilterB", "STATUS_PROCEDURE_NOT_FOUND (0xC000007A)", "slot A, CounterFilter v1"],
                "SerialLoader refused the upgrade (slot B, service CounterFilterB): STATUS_PROCEDURE_NOT_FOUND (0xC000007A). The active payload is unchanged: slot A, CounterFilter v1.",
            ),
            (
                &PAYLOAD_STUCK,
                &["A", "CounterFilterA", "5000"],
                "The payload of slot A (service CounterFilterA) did not finish its teardown within 5000 ms. Its image stays loaded until what it holds is released; 'loaderctl diagnose' shows what that is.",
            ),
        ];
        assert_eq!(samples.len(), MESSAGES.len(), "a message without a rendering test");
        for (id, strings, want) in samples {
            let m = message(*id).expect("in the table");
            assert_eq!(strings.len(), m.inserts.len(), "{}", m.symbol);
            assert_eq!(rendered(m.text, strings), want, "{}", m.symbol);
            // The samples are as long as real ones get; they fit one entry.
            let units: usize = strings.iter().map(|s| s.encode_utf16().count() + 1).sum();
            assert!(units <= MAX_STRING_UNITS, "{}: {units} units", m.symbol);
        }
    }

    #[test]
    fn the_mc_source_lists_every_message() {
        let mut mc = String::new();
        write_mc(&mut mc).expect("write");
        for m in MESSAGES {
            assert!(mc.contains(&std::format!("MessageId=0x{:04X}\n", m.id.code())), "{}", m.symbol);
            assert!(mc.contains(&std::format!("SymbolicName={}\n", m.symbol)));
            assert!(mc.contains(&std::format!("\n{}\n.\n", m.text)));
        }
        assert!(mc.contains("FacilityNames=(SerialLoader=0x0CA:"));
    }

    #[test]
    fn text_buffer_cuts_at_a_character_boundary() {
        let mut t: Text<5> = Text::new();
        write!(t, "ab\u{e9}cd").expect("write");
        assert_eq!(t.as_str(), "ab\u{e9}c");
        assert!(t.truncated());
        let mut u: Text<8> = Text::default();
        write!(u, "{}", 42).expect("write");
        assert_eq!((u.as_str(), u.truncated()), ("42", false));
    }
}
