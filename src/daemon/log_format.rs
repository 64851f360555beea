//! The text of a log line: tracing-subscriber's default ("full") format, written piece by piece.
//!
//! The default formatter passes every character of a message through a dynamically dispatched
//! escaping writer and every piece of the line through `format_args!`. Under load a Logging
//! event handler logs once per login: in the daemon the default formatter cost 5,950
//! instructions a line, this one 3,035 (callgrind, docs/performance.md). The text is the same,
//! byte for byte, including the escaping of the characters a terminal acts on (ESC, BEL, BS,
//! FF, DEL, C1); the tests below compare the two. Lines for a terminal (with colours) and
//! records that come from the `log` crate go to the default formatter.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::clock::{Clock, SystemClock};

/// The default timer's format (RFC 3339, microseconds, `Z`), written by
/// [`crate::clock::push_log_time`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LogTime;

impl FormatTime for LogTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let mut text = String::with_capacity(32);
        crate::clock::push_log_time(&mut text, SystemClock.now());
        w.write_str(&text)
    }
}

/// The event format: `time LEVEL span{fields}:span: target: fields`.
#[derive(Debug)]
pub struct LineFormat<T> {
    time: T,
    /// For terminals and `log` records.
    default: Format<Full, T>,
}

impl<T: FormatTime + Clone> LineFormat<T> {
    pub fn new(time: T) -> Self {
        Self {
            default: tracing_subscriber::fmt::format().with_timer(time.clone()),
            time,
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for LineFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // a `log` record's own target and level are in its fields
        if writer.has_ansi_escapes() || meta.fields().field("log.target").is_some() {
            return self.default.format_event(ctx, writer, event);
        }
        self.time.format_time(&mut writer)?;
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut any = false;
            for span in scope.from_root() {
                any = true;
                writer.write_str(span.metadata().name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions
                    .get::<FormattedFields<N>>()
                    .filter(|f| !f.is_empty())
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if any {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = LineFields.make_visitor(writer.by_ref());
        event.record(&mut fields);
        fields.finish()?;
        writer.write_char('\n')
    }
}

/// The field format: the message as it is, the other fields `name=value` (`Debug`), separated
/// by spaces. Also formats spans' fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFields;

impl<'a> MakeVisitor<Writer<'a>> for LineFields {
    type Visitor = FieldWriter<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        FieldWriter {
            writer: target,
            first: true,
            result: Ok(()),
        }
    }
}

/// [`LineFields`]' visitor: writes the fields of one event or span.
pub struct FieldWriter<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl<'a> FieldWriter<'a> {
    /// Write the separator and `name=` (nothing for the message); false when nothing more is
    /// to be written for this field.
    fn begin(&mut self, name: &str) -> bool {
        // a `log` record's metadata, written by the default formatter
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        if name != "message" && self.result.is_ok() {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = if self.writer.has_ansi_escapes() {
                write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")
            } else {
                self.writer
                    .write_str(name)
                    .and_then(|()| self.writer.write_char('='))
            };
        }
        self.result.is_ok()
    }

    fn message(&mut self) -> Escaped<'_, 'a> {
        let sanitize = self.writer.sanitizes_ansi_escapes();
        Escaped {
            out: &mut self.writer,
            sanitize,
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.begin(field.name()) {
            self.result = if field.name() == "message" {
                self.message().write_str(value)
            } else {
                write!(self.writer, "{value:?}")
            };
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.begin(field.name()) {
            return;
        }
        let name = field.name();
        self.result = write!(self.message(), "{value}").and_then(|()| {
            let Some(mut source) = value.source() else {
                return Ok(());
            };
            write!(self.writer, " {name}.sources=[")?;
            loop {
                write!(self.message(), "{source}")?;
                match source.source() {
                    Some(next) => source = next,
                    None => break self.writer.write_char(']'),
                }
                self.writer.write_str(", ")?;
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.begin(field.name()) {
            self.result = if field.name() == "message" {
                write!(self.message(), "{value:?}")
            } else {
                write!(self.writer, "{value:?}")
            };
        }
    }
}

impl VisitOutput<fmt::Result> for FieldWriter<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for FieldWriter<'_> {
    fn writer(&mut self) -> &mut dyn Write {
        &mut self.writer
    }
}

/// Text with the characters a terminal acts on escaped (as tracing-subscriber escapes them),
/// written in runs between them rather than character by character.
struct Escaped<'w, 'a> {
    out: &'w mut Writer<'a>,
    sanitize: bool,
}

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.sanitize {
            return self.out.write_str(s);
        }
        let bytes = s.as_bytes();
        let (mut run, mut i) = (0, 0);
        while i < bytes.len() {
            let escape = match bytes[i] {
                0x1b => "\\x1b",
                0x07 => "\\x07",
                0x08 => "\\x08",
                0x0c => "\\x0c",
                0x7f => "\\x7f",
                // C1 controls, U+0080–U+009F, are 0xC2 0x80–0x9F in UTF-8
                0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => {
                    self.out.write_str(&s[run..i])?;
                    write!(self.out, "\\u{{{:x}}}", bytes[i + 1])?;
                    i += 2;
                    run = i;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            self.out.write_str(&s[run..i])?;
            self.out.write_str(escape)?;
            i += 1;
            run = i;
        }
        self.out.write_str(&s[run..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Copy)]
    struct FixedTime;

    impl FormatTime for FixedTime {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-04T12:00:00.123456Z")
        }
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer \u{1b}[1m failure")]
    struct Outer(#[source] io::Error);

    fn log_everything() {
        let logger = "pi-eventlogger";
        let line = "event=validate_check triggered for user7 in realm bench".to_string();
        tracing::info!(target: "pi-eventlogger", logger, "{line}");
        tracing::warn!(user = %"a\u{1b}b", n = 3, r#type = "hotp", "odd \u{1b}[31m \u{85} é \u{7} {}", "x\ty");
        tracing::error!(
            error = &Outer(io::Error::other("inner \u{7f}")) as &(dyn std::error::Error + 'static),
            "store down"
        );
        tracing::debug!(plain = &io::Error::other("alone") as &(dyn std::error::Error + 'static));
        tracing::trace!(message = "an explicit \u{8}message", flag = true);
        let span = tracing::info_span!("request", client = "nas1", id = 7);
        let _outer = span.enter();
        let inner = tracing::debug_span!("lookup");
        let _inner = inner.enter();
        tracing::info!("in two spans \u{c}");
        tracing::info!("");
        // what `LogTracer` makes of a dependency's `log` record
        let record = log::Record::builder()
            .target("rustls::client")
            .level(log::Level::Warn)
            .module_path_static(Some("rustls::client::hs"))
            .file_static(Some("src/client/hs.rs"))
            .line(Some(42))
            .args(format_args!("a record \u{1b} from the log crate"))
            .build();
        tracing_log::format_trace(&record).unwrap();
    }

    fn lines_with<N, E>(fields: N, format: E, ansi: bool) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
        E: FormatEvent<tracing_subscriber::Registry, N> + Send + Sync + 'static,
    {
        let out = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(out.clone())
            .with_ansi(ansi)
            .fmt_fields(fields)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, log_everything);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_the_default_formatters_byte_for_byte() {
        let ours = lines_with(LineFields, LineFormat::new(FixedTime), false);
        let default = lines_with(
            tracing_subscriber::fmt::format::DefaultFields::new(),
            tracing_subscriber::fmt::format().with_timer(FixedTime),
            false,
        );
        assert_eq!(ours, default);
        assert_eq!(ours.lines().count(), 8, "{ours}");
        assert!(
            ours.contains(" WARN request{client=\"nas1\" id=7}:lookup: rustls::client: a record \\x1b from the log crate\n"),
            "{ours}"
        );
        assert!(ours.contains(r"odd \x1b[31m \u{85} é \x07 x"), "{ours}");
        assert!(
            ours.contains("request{client=\"nas1\" id=7}:lookup: "),
            "{ours}"
        );
    }

    #[test]
    fn terminal_lines_keep_the_default_colours() {
        let ours = lines_with(LineFields, LineFormat::new(FixedTime), true);
        assert!(ours.contains("\u{1b}[32m INFO\u{1b}[0m"), "{ours}");
        assert!(
            ours.contains("\u{1b}[3muser\u{1b}[0m\u{1b}[2m=\u{1b}[0m"),
            "{ours}"
        );
        assert!(ours.contains(r"odd \x1b[31m"), "{ours}");
    }
}
