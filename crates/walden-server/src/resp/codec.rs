//! RESP2 framing, written by hand: a command is an array of bulk strings
//! (`*N\r\n$LEN\r\nBYTES\r\n...`), which is what every Redis client sends; replies are the
//! five RESP2 types. The parser is incremental (a command split across reads parses once
//! its last byte arrived, each argument once: [`Parser`]) and bounded: the argument count, each bulk length and the
//! command's running size are checked against the limits as soon as their headers are
//! read, so a client cannot make the server buffer more than `command_bytes_max`. Hand-written because the framing is a few dozen lines
//! and the crates that offer it (redis-protocol, resp) bring a frame type per argument and
//! their own buffer types, which the hot path would then convert.

use std::ops::Range;

/// Bounds on one command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameLimits {
    /// Most arguments (the command name included).
    pub args_max: usize,
    /// Largest bulk string, in bytes.
    pub bulk_bytes_max: usize,
    /// Largest whole command (headers included), in bytes: what one connection may make
    /// the server buffer.
    pub command_bytes_max: usize,
}

/// Input that is not a RESP command, or that exceeds a limit. The connection answers it
/// with `-ERR Protocol error: ...` and closes: after bad framing nothing later in the
/// stream can be trusted to start a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub String);

/// Longest header line (`*N` or `$LEN`): sign, digits, CR LF.
const HEADER_BYTES_MAX: usize = 24;

/// Parses one command at the start of `buf` (a fresh [`Parser`]; the tests' entry point).
/// `Ok(Some(n))`: a whole command of `n` bytes, its arguments' ranges (into `buf`) in
/// `args`. `Ok(None)`: `buf` holds the start of a command that is not complete yet.
#[cfg(test)]
pub(crate) fn parse_command(
    buf: &[u8],
    limits: &FrameLimits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let mut parser = Parser::default();
    let parsed = parser.parse(buf, limits)?;
    args.clear();
    args.extend_from_slice(parser.args());
    Ok(parsed)
}

/// An incremental parser of one connection's commands. A command cut short keeps what was
/// parsed of it (its argument count and its whole arguments), and the next call, given the
/// same bytes and more, goes on from the argument it stopped in: a command arriving in
/// many small reads is parsed once, not once per read (which, for a command of thousands
/// of arguments sent a byte at a time, was quadratic).
#[derive(Debug, Default)]
pub(crate) struct Parser {
    /// The arguments' ranges: of the command just parsed, or of the one under way.
    args: Vec<Range<usize>>,
    /// The command under way: its argument count, and where its next argument starts.
    partial: Option<(usize, usize)>,
}

impl Parser {
    /// The arguments of the command the last `Ok(Some(_))` parsed, as ranges into its buffer.
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// Parses one command at the start of `buf`. `Ok(Some(n))`: a whole command of `n`
    /// bytes (its arguments in [`Parser::args`]). `Ok(None)`: `buf` holds the start of a
    /// command that is not complete yet; call again with the same bytes and more.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &FrameLimits,
    ) -> Result<Option<usize>, ProtocolError> {
        let result = self.parse_inner(buf, limits);
        if !matches!(result, Ok(None)) {
            self.partial = None;
        }
        result
    }

    fn parse_inner(
        &mut self,
        buf: &[u8],
        limits: &FrameLimits,
    ) -> Result<Option<usize>, ProtocolError> {
        let (count, mut at) = match self.partial {
            Some(resumed) => resumed,
            None => {
                self.args.clear();
                let Some(first) = buf.first() else {
                    return Ok(None);
                };
                if *first != b'*' {
                    return Err(ProtocolError(format!(
                        "expected '*' (an array of bulk strings), got {}",
                        show_byte(*first)
                    )));
                }
                let Some((count, at)) = header(buf, 0)? else {
                    return Ok(None);
                };
                if count < 1 {
                    return Err(ProtocolError(format!(
                        "a command needs at least one argument, got an array of {count}"
                    )));
                }
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                if count > limits.args_max {
                    return Err(ProtocolError(format!(
                        "{count} arguments exceed the limit of {}",
                        limits.args_max
                    )));
                }
                (count, at)
            }
        };
        while self.args.len() < count {
            // Cut short here: the next call goes on from this argument.
            self.partial = Some((count, at));
            let Some(&tag) = buf.get(at) else {
                return Ok(None);
            };
            if tag != b'$' {
                return Err(ProtocolError(format!(
                    "expected '$' (a bulk string), got {}",
                    show_byte(tag)
                )));
            }
            let Some((len, body)) = header(buf, at)? else {
                return Ok(None);
            };
            if len < 0 {
                return Err(ProtocolError(
                    "a null bulk string is not an argument".into(),
                ));
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > limits.bulk_bytes_max {
                return Err(ProtocolError(format!(
                    "a bulk string of {len} bytes exceeds the limit of {} bytes",
                    limits.bulk_bytes_max
                )));
            }
            let end = body.saturating_add(len);
            if end.saturating_add(2) > limits.command_bytes_max {
                return Err(ProtocolError(format!(
                    "the command exceeds the limit of {} bytes",
                    limits.command_bytes_max
                )));
            }
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError(
                    "a bulk string is not followed by CR LF".into(),
                ));
            }
            self.args.push(body..end);
            at = end + 2;
        }
        Ok(Some(at))
    }
}

/// The number of a `*N\r\n` or `$N\r\n` header starting at `at`, and where its line ends.
fn header(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = &buf[at + 1..];
    let window = &rest[..rest.len().min(HEADER_BYTES_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if window.len() == HEADER_BYTES_MAX {
            return Err(ProtocolError("a length line is too long".into()));
        }
        return Ok(None);
    };
    // The LF may lie just past the window: look for it in the whole input.
    let Some(&lf) = rest.get(cr + 1) else {
        return Ok(None);
    };
    if lf != b'\n' {
        return Err(ProtocolError(
            "a length line does not end with CR LF".into(),
        ));
    }
    let digits = &window[..cr];
    let n = std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.is_empty() && !s.starts_with('+'))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            ProtocolError(format!("bad length {:?}", String::from_utf8_lossy(digits)))
        })?;
    Ok(Some((n, at + 1 + cr + 2)))
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// `+OK`-style simple string (no CR or LF inside).
pub(crate) fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `-CODE message` error; CR and LF in the message become spaces.
pub(crate) fn error(out: &mut Vec<u8>, code: &str, message: &str) {
    out.push(b'-');
    out.extend_from_slice(code.as_bytes());
    out.push(b' ');
    out.extend(message.bytes().map(|b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
    out.extend_from_slice(b"\r\n");
}

/// `:N` integer.
pub(crate) fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `$LEN` bulk string.
pub(crate) fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// `$-1`: the null bulk string (a missing key; a SET whose NX or XX did not hold).
pub(crate) fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*N` array header; the caller writes the N items.
pub(crate) fn array_header(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Encodes a command the way clients send it.
#[cfg(test)]
pub(crate) fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    array_header(out, args.len());
    for a in args {
        bulk(out, a);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const LIMITS: FrameLimits = FrameLimits {
        args_max: 8,
        bulk_bytes_max: 64,
        command_bytes_max: 300,
    };

    /// A whole command: its length and its arguments.
    type Parsed = (usize, Vec<Vec<u8>>);

    fn parse(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
        let mut ranges = Vec::new();
        Ok(parse_command(buf, &LIMITS, &mut ranges)?
            .map(|n| (n, ranges.iter().map(|r| buf[r.clone()].to_vec()).collect())))
    }

    #[test]
    fn a_command_parses_and_its_prefixes_wait() {
        let cmd = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        let (n, args) = parse(cmd).unwrap().unwrap();
        assert_eq!(n, cmd.len());
        assert_eq!(args, vec![b"SET".to_vec(), b"k".to_vec(), Vec::new()]);
        for cut in 0..cmd.len() {
            assert_eq!(parse(&cmd[..cut]).unwrap(), None, "prefix of {cut} bytes");
        }
        let mut two = cmd.to_vec();
        two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(parse(&two).unwrap().unwrap().0, cmd.len());
    }

    /// A command cut short keeps its whole arguments and goes on from the one it stopped
    /// in: the next call does not parse the others again.
    #[test]
    fn a_cut_command_resumes_at_the_argument_it_stopped_in() {
        let cmd = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        let third = cmd.len() - b"$5\r\nvalue\r\n".len();
        let mut parser = Parser::default();
        assert_eq!(parser.parse(&cmd[..third + 6], &LIMITS).unwrap(), None);
        assert_eq!(parser.partial, Some((3, third)));
        assert_eq!(parser.args().len(), 2);
        assert_eq!(parser.parse(cmd, &LIMITS).unwrap(), Some(cmd.len()));
        assert_eq!(parser.partial, None);
        let args: Vec<&[u8]> = parser.args().iter().map(|r| &cmd[r.clone()]).collect();
        assert_eq!(args, [&b"SET"[..], b"k", b"value"]);
    }

    #[test]
    fn bad_framing_and_limits_are_errors_before_the_body_arrives() {
        for bad in [
            &b"PING\r\n"[..],
            b"*0\r\n",
            b"*-1\r\n",
            b"*9\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$65\r\n",
            b"*1\r\n$x\r\n",
            b"*1\r\n$+1\r\n",
            b"*1\r\n$1\rX",
            b"*1\r\n$1\r\nab\r\n",
            b"*11111111111111111111111111\r\n",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_command_over_the_size_limit_is_refused_at_the_header_that_crosses_it() {
        // Five arguments of 60 bytes: each within the bulk limit, the whole over 300.
        let mut cmd = b"*5\r\n".to_vec();
        for _ in 0..4 {
            cmd.extend_from_slice(b"$60\r\n");
            cmd.extend_from_slice(&[b'x'; 60]);
            cmd.extend_from_slice(b"\r\n");
        }
        assert_eq!(parse(&cmd).unwrap(), None, "four arguments fit");
        cmd.extend_from_slice(b"$60\r\n");
        let e = parse(&cmd).unwrap_err();
        assert!(e.0.contains("exceeds the limit of 300 bytes"), "{e:?}");
    }

    #[test]
    fn a_length_line_ending_at_the_window_edge_parses() {
        // 23 characters before CR: the CR is the window's last byte, its LF just past it.
        let mut cmd = b"*00000000000000000000001\r\n$4\r\nPING\r\n".to_vec();
        assert_eq!(parse(&cmd).unwrap().unwrap().1, vec![b"PING".to_vec()]);
        // A line one character longer is refused, not waited on.
        cmd.insert(1, b'0');
        assert!(parse(&cmd).is_err());
        assert!(parse(b"*000000000000000000000000").is_err());
    }

    fn arb_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..5)
    }

    proptest! {
        /// Whatever the bytes, parsing returns (no panic), and never claims more than it has.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Some((n, args))) = parse(&bytes) {
                prop_assert!(n <= bytes.len());
                prop_assert!(!args.is_empty());
            }
        }

        /// Valid commands with bytes overwritten or cut off: parsing returns (no panic), an
        /// answer never claims more bytes than there are, and a prefix of a valid command
        /// never errs.
        #[test]
        fn mutated_commands_never_panic(
            args in arb_args(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut buf = Vec::new();
            encode_command(&mut buf, &refs);
            if buf.len() <= LIMITS.command_bytes_max {
                let prefix = &buf[..cut.index(buf.len())];
                prop_assert!(parse(prefix).is_ok());
            }
            for (at, byte) in edits {
                let i = at.index(buf.len());
                buf[i] = byte;
            }
            let cut = cut.index(buf.len() + 1);
            if let Ok(Some((n, _))) = parse(&buf[..cut]) {
                prop_assert!(n <= cut);
            }
        }

        /// An encoded command parses back whole, and so does every split of it: the first
        /// part waits, the whole parses.
        #[test]
        fn encoded_commands_round_trip(args in arb_args(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut buf = Vec::new();
            encode_command(&mut buf, &refs);
            let len = buf.len();
            for cut in 0..len {
                prop_assert_eq!(parse(&buf[..cut]).unwrap(), None);
            }
            buf.extend_from_slice(&tail);
            let (n, got) = parse(&buf).unwrap().unwrap();
            prop_assert_eq!(n, len);
            prop_assert_eq!(got, args);
        }

        /// A command fed in pieces to one parser (the bytes so far each time, as the
        /// connection does) ends exactly as a fresh parse of the whole: the same command
        /// and arguments, or an error, or waiting; and the parser then starts the next
        /// command afresh.
        #[test]
        fn resumed_parses_end_as_whole_ones(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            // Up to 10 arguments of up to 80 bytes: past LIMITS' 8 arguments, 64-byte
            // bulks and 300-byte commands, so that errors come after resumes too.
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..11),
            kind in 0..3u8,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let buf = if kind == 0 {
                bytes
            } else {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let mut buf = Vec::new();
                encode_command(&mut buf, &refs);
                buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
                // A valid encoding with bytes overwritten: bad tags, lengths and line ends
                // after the point a resume starts from.
                if kind == 2 {
                    for (at, byte) in edits {
                        let i = at.index(buf.len());
                        buf[i] = byte;
                    }
                }
                buf
            };
            let whole = parse(&buf);
            let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(buf.len() + 1)).collect();
            ends.push(buf.len());
            ends.sort_unstable();
            let mut parser = Parser::default();
            let mut pieced = Ok(None);
            for end in ends {
                pieced = parser.parse(&buf[..end], &LIMITS).map(|parsed| {
                    parsed.map(|n| (n, parser.args().iter().map(|r| buf[r.clone()].to_vec()).collect()))
                });
                if !matches!(pieced, Ok(None)) {
                    break;
                }
            }
            prop_assert_eq!(&pieced, &whole);
            if let Ok(Some((n, _))) = pieced {
                let next = parser.parse(&buf[n..], &LIMITS);
                prop_assert_eq!(next, parse(&buf[n..]).map(|p| p.map(|(m, _)| m)));
            }
        }
    }
}
