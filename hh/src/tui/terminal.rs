//! The terminal: raw mode and the alternate screen on the way in, restored on the way out,
//! on panic (ratatui's hook) and on SIGTERM or SIGHUP (a flag the run loop checks every tick,
//! since restoring from inside a signal handler is not async-signal-safe). Also hands the
//! terminal to a child process (attach) and takes it back, dropping the input queued meanwhile.

use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
};

use ratatui::DefaultTerminal;

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signal: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Does nothing, but unlike `SIG_IGN` it is reset to the default in a child at `exec`: while an
/// attached shell owns the terminal, its Ctrl-C must stop the shell's program, not hh.
extern "C" fn on_interrupt(_signal: libc::c_int) {}

fn handle(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid empty one; the handlers only store to an atomic
    // (or nothing), which is async-signal-safe.
    let result = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut())
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raw mode, alternate screen, the panic hook that restores both, and the signal handlers.
pub fn enter() -> io::Result<DefaultTerminal> {
    handle(libc::SIGTERM, on_terminate)?;
    handle(libc::SIGHUP, on_terminate)?;
    handle(libc::SIGINT, on_interrupt)?;
    ratatui::try_init()
}

/// Leaves raw mode and the alternate screen.
pub fn restore() {
    ratatui::restore();
}

/// Whether SIGTERM or SIGHUP arrived: the loop then quits and restores the terminal.
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

/// Gives the terminal back to the user for `run` (a child process that reads it), then takes it
/// again, discards whatever input is queued ([`discard_queued_input`]) and redraws everything.
pub fn suspend<T>(terminal: &mut DefaultTerminal, run: impl FnOnce() -> T) -> io::Result<T> {
    ratatui::try_restore()?;
    let result = run();
    // try_init would install a second panic hook; only the modes are set again.
    ratatui::crossterm::terminal::enable_raw_mode()?;
    ratatui::crossterm::execute!(
        io::stdout(),
        ratatui::crossterm::terminal::EnterAlternateScreen
    )?;
    discard_queued_input()?;
    terminal.clear()?;
    Ok(result)
}

/// Throws away input nobody has read yet: what the terminal queued while another program had it
/// (keys meant for `hh shell`, or typed as it exited) and keys crossterm already read ahead.
/// Such a key must not answer a prompt the person has not seen.
pub fn discard_queued_input() -> io::Result<()> {
    // crossterm reads stdin when it is a terminal, else /dev/tty: flush the one it reads.
    // SAFETY: isatty only inspects the descriptor.
    let tty = if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
        None
    } else {
        std::fs::File::open("/dev/tty").ok()
    };
    let fd = tty.as_ref().map_or(libc::STDIN_FILENO, |file| {
        std::os::fd::AsRawFd::as_raw_fd(file)
    });
    // SAFETY: tcflush on a descriptor this process holds open; TCIFLUSH drops unread input.
    if unsafe { libc::tcflush(fd, libc::TCIFLUSH) } != 0 {
        let error = io::Error::last_os_error();
        // Not a terminal (tests drive the loop without one): nothing queued there.
        if error.raw_os_error() != Some(libc::ENOTTY) {
            return Err(error);
        }
    }
    // crossterm spins on a hung-up terminal ([`wait_for_input`]): ask the kernel first.
    while wait_for_input(std::time::Duration::ZERO)? == Input::Check
        && ratatui::crossterm::event::poll(std::time::Duration::ZERO)?
    {
        let _ = ratatui::crossterm::event::read()?;
    }
    Ok(())
}

/// What waiting on the terminal gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes to read (or nothing yet): ask crossterm, without waiting.
    Check,
    /// The terminal went away (the pane or SSH connection closed).
    HungUp,
}

/// Waits up to `timeout` for the terminal on stdin to have input.
///
/// Why not `crossterm::event::poll(timeout)` alone: on a hung-up terminal its reader loops on
/// a read that fails forever (crossterm 0.29 `event/source/unix/mio.rs` leaves the inner loop
/// only on `WouldBlock`), so hh would spin at 100% CPU instead of exiting. Checking `POLLHUP`
/// here first catches the hangup before crossterm reads.
pub fn wait_for_input(timeout: std::time::Duration) -> io::Result<Input> {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
        // A terminal that hung up answers EIO: it was one, and is gone.
        if io::Error::last_os_error().raw_os_error() == Some(libc::EIO) {
            return Ok(Input::HungUp);
        }
        // crossterm then reads /dev/tty, which hh does not hold: let crossterm wait.
        std::thread::sleep(timeout);
        return Ok(Input::Check);
    }
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, its count, a finite timeout.
    let ready = unsafe { libc::poll(&mut fd, 1, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(Input::Check)
        } else {
            Err(error)
        };
    }
    if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Ok(Input::HungUp);
    }
    Ok(Input::Check)
}
