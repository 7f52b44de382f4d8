//! The `mt5bot` binary: runs [`mt5bot::app::main`] and turns its one error type into the exit
//! code (0 success, 1 runtime failure, 2 usage or configuration error).

use std::process::ExitCode;

fn main() -> ExitCode {
    match mt5bot::app::main(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(message) = &e.message {
                eprintln!("mt5bot: {message}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
