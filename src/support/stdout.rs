//! What a command prints on standard output. A reader that goes away (`mt5bot ctl status | head`)
//! ends the command quietly, as ripgrep and cargo do, instead of the panic `println!` makes of a
//! broken pipe; any other failure to write is an error on stderr and exit code 1. The commands
//! print through `out!` and `outln!` (`crate::app`), which call [`write()`].

use std::io::Write;

/// Writes `args` to standard output and flushes it.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        // No log here: the commands that print do not run the logger.
        let _ = writeln!(std::io::stderr(), "mt5bot: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
